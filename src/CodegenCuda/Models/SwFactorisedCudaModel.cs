using ShiftWise.IR;
using ShiftWise.Passes.Lowering;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// All index arithmetic and tables of the CUDA factorised kernel. A block handles fact_rows output rows (full width)
/// of one rep channel: it loads the input rows it needs into shared memory (zero-padded by k−1), then for each kept
/// sub-kernel of the channel computes that sub-kernel's k×k map X on the rows the shifts reach, and every thread
/// gathers its outputs from X at the 2·N_rep shifted positions and the identity picks. Blocks past the rep
/// channels copy the ghost channels.
/// </summary>
public sealed class SwFactorisedCudaModel : SwCudaModel
{
    /// <summary>Builds the model; throws when the tunables break a limit.</summary>
    public SwFactorisedCudaModel(SwLayerSpec spec, IReadOnlyDictionary<string, int> t, string name) : base(spec, name)
    {
        var s = spec.Op.Shift;
        var subs = spec.Op.Subs;
        Pad = s.Small - 1;
        Extra = s.Extra;
        NRep = s.NRep;
        InHeight = Height + 2 * Extra;
        InWidth = Width + 2 * Extra;
        Threads = t["fact_threads"];
        Rows = Math.Clamp(t["fact_rows"], 1, Height);
        RowTiles = (Height + Rows - 1) / Rows;
        Outputs = Rows * Width;
        PerThread = (Outputs + Threads - 1) / Threads;
        if (PerThread > 16)
        {
            throw new IrException($"fact_rows {Rows} gives {PerThread} outputs per thread (at most 16)");
        }
        (Lo, Hi) = RowReach(spec);
        MapRows = Rows + Hi - Lo;
        InRows = MapRows + Pad;
        InCols = InWidth + Pad;
        SharedBytes = SharedFloats(spec, Rows) * 4;
        if (SharedBytes > SwCrossCudaModel.MaxShared)
        {
            throw new IrException(
                $"fact_rows {Rows} needs {SharedBytes} bytes of shared memory, more than {SwCrossCudaModel.MaxShared}");
        }
        var slot = spec.KeptSlots();
        Subs = subs.Count;
        TableSubs = Math.Max(1, subs.Count);
        SubStart = string.Join(", ", spec.SubStart());
        // (one dummy entry when every sub-kernel is pruned: C arrays cannot be empty)
        ShiftsH = subs.Count == 0 ? "0" : string.Join(", ", spec.KeptShifts(vertical: false));
        ShiftsV = subs.Count == 0 ? "0" : string.Join(", ", spec.KeptShifts(vertical: true));
        // per kept sub-kernel, how many replicas pick it as the identity (the identity path adds X there once per
        // pick)
        var picks = new int[Math.Max(1, subs.Count)];
        for (int o = 0; o < Rep; o++)
        {
            for (int g = 0; g < NRep; g++)
            {
                if (slot.TryGetValue(s.Identity(o, g), out int i)) picks[i]++;
            }
        }
        IdentityPicks = string.Join(", ", picks);
    }

    /// <summary>
    /// Rows of X that output rows y0..y0+rows−1 read, relative to y0: from <c>Lo</c> (inclusive) to
    /// <c>rows − 1 + Hi</c>: the horizontal path and the identity read row y + e, the vertical path row y − s_v.
    /// </summary>
    public static (int Lo, int Hi) RowReach(SwLayerSpec spec)
    {
        var s = spec.Op.Shift;
        int e = s.Extra, lo = e, hi = e;
        foreach (var q in spec.Op.Subs)
        {
            for (int g = 0; g < s.NRep; g++)
            {
                lo = Math.Min(lo, -s.ShiftV(q, g));
                hi = Math.Max(hi, -s.ShiftV(q, g));
            }
        }
        return (lo, hi);
    }

    /// <summary>Shared floats of one block for <paramref name="rows"/> output rows.</summary>
    public static int SharedFloats(SwLayerSpec spec, int rows)
    {
        var s = spec.Op.Shift;
        var (lo, hi) = RowReach(spec);
        int xrows = rows + hi - lo, p = s.Small - 1, win = spec.Input[3] + 2 * s.Extra;
        return (xrows + p) * (win + p) + xrows * win;
    }

    /// <summary>
    /// Whether the 16-bit kernel moves the input window and the ghost copies two values per 32-bit access (issue 22):
    /// the width and the window's left padding even (so a pair never straddles the plane's edge) and the window's
    /// columns even; the kernel still checks at run time that x and y are 4-byte aligned.
    /// </summary>
    public bool Paired => Is16 && Width % 2 == 0 && Pad % 2 == 0 && InCols % 2 == 0;

    /// <summary>p = k−1, the small conv's padding.</summary>
    public int Pad { get; }

    /// <summary>e = (k−1) − ⌊k/2⌋.</summary>
    public int Extra { get; }

    /// <summary>N_rep.</summary>
    public int NRep { get; }

    /// <summary>H + 2e.</summary>
    public int InHeight { get; }

    /// <summary>W + 2e.</summary>
    public int InWidth { get; }

    /// <summary>Threads per block.</summary>
    public int Threads { get; }

    /// <summary>Output rows per block.</summary>
    public int Rows { get; }

    /// <summary>Row tiles per plane.</summary>
    public int RowTiles { get; }

    /// <summary>Outputs per block.</summary>
    public int Outputs { get; }

    /// <summary>Outputs per thread (registers).</summary>
    public int PerThread { get; }

    /// <summary>First X row read, relative to the tile's first output row (settable so a test can break it).</summary>
    public int Lo { get; set; }

    /// <summary>Last X row read past the tile's last output row.</summary>
    public int Hi { get; set; }

    /// <summary>Rows of X kept in shared memory.</summary>
    public int MapRows { get; }

    /// <summary>Rows of the zero-padded input window.</summary>
    public int InRows { get; }

    /// <summary>Columns of the zero-padded input window (W + 2e + k − 1).</summary>
    public int InCols { get; }

    /// <summary>Static shared memory of a block.</summary>
    public int SharedBytes { get; }

    /// <summary>Kept sub-kernels.</summary>
    public int Subs { get; }

    /// <summary>Rows of the per-sub-kernel tables (at least 1).</summary>
    public int TableSubs { get; }

    /// <summary>Per rep channel, its first kept sub-kernel (R + 1 entries).</summary>
    public string SubStart { get; }

    /// <summary>Horizontal shift per kept sub-kernel and replica.</summary>
    public string ShiftsH { get; }

    /// <summary>Vertical shift per kept sub-kernel and replica.</summary>
    public string ShiftsV { get; }

    /// <summary>Identity picks per kept sub-kernel.</summary>
    public string IdentityPicks { get; }

    /// <summary>Launch grid: row tiles, channels, batch.</summary>
    public Dim3 Grid => new(RowTiles, Rep + Ghost, Batch);

    /// <summary>Block shape.</summary>
    public Dim3 Block => new(Threads);
}
