using ShiftWise.IR;
using ShiftWise.Passes.Lowering;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// The CUDA tunables of an SW layer and their defaults. "lowering" means what it means on the CPU (0 the collapsed
/// cross, 1 the factorised form); the cross tiles outputs as tile_h × tile_w per channel with rows_per_thread
/// outputs in registers per thread and ch_per_block channels side by side in a block; the factorised form runs
/// fact_threads threads over fact_rows output rows (full width) per block.
/// </summary>
public static class SwCudaTunables
{
    /// <summary>Legal values of each tunable (the model rejects combinations that break a hardware limit).</summary>
    public static readonly IReadOnlyDictionary<string, int[]> Values = new Dictionary<string, int[]>(StringComparer.Ordinal)
    {
        ["lowering"] = [0, 1],
        ["tile_w"] = [8, 16, 32, 64],
        ["tile_h"] = Enumerable.Range(1, 64).ToArray(),
        ["rows_per_thread"] = [1, 2, 4, 8],
        ["ch_per_block"] = Enumerable.Range(1, 16).ToArray(),
        ["unroll"] = [0, 1],
        ["fact_threads"] = [64, 128, 256, 512],
        ["fact_rows"] = Enumerable.Range(1, 256).ToArray(),
    };

    /// <summary>Defaults for the layer's plane size, band and rep channels (every value legal and within the limits).</summary>
    public static IReadOnlyDictionary<string, int> Defaults(SwLayerSpec spec)
    {
        int h = spec.Input[2], w = spec.Input[3];
        // warps across columns (coalesced global loads, conflict-free shared reads); 4 rows per thread reuse every
        // loaded input value for up to k FMAs of the horizontal band
        int tw = w >= 24 ? 32 : w >= 12 ? 16 : 8;
        int opy = h >= 16 ? 4 : h >= 4 ? 2 : 1;
        int ty = Math.Clamp((h + opy - 1) / opy, 1, Math.Max(1, 128 / tw));
        int th = ty * opy;
        // small planes: several channels per block so a block still has about 128 threads
        int cpb = Math.Clamp(128 / (tw * ty), 1, 16);
        cpb = Math.Min(cpb, NextPow2(spec.Rep));
        while (cpb > 1 && SwCrossCudaModel.SharedFloats(th, tw, spec.Op.Shift.Small, spec.BandWidth, cpb) * 4 > SwCrossCudaModel.MaxShared)
        {
            cpb /= 2;
        }
        int threads = 256;
        int rows = Math.Clamp(8 * threads / Math.Max(1, w), 1, h);
        while (rows > 1 && SwFactorisedCudaModel.SharedFloats(spec, rows) * 4 > SwCrossCudaModel.MaxShared) rows--;
        return new Dictionary<string, int>(StringComparer.Ordinal)
        {
            ["lowering"] = 0,
            ["tile_w"] = tw,
            ["tile_h"] = th,
            ["rows_per_thread"] = opy,
            ["ch_per_block"] = cpb,
            ["unroll"] = 1,
            ["fact_threads"] = threads,
            ["fact_rows"] = rows,
        };
    }

    /// <summary>Registers a block may use in all (every CUDA arch since sm_50 has 64 K per SM and per block).</summary>
    public const int RegisterFile = 64 * 1024;

    /// <summary>
    /// The tuning search space of an SW layer, the default first: the cross at every tile width, rows per thread,
    /// threads down a column (so tile_h = that × rows per thread) and channels per block, unrolled or not; the
    /// factorised form at every thread count and power-of-two row block. Pruned before anything is compiled: the
    /// kernel models reject what breaks a limit (1024 threads, <paramref name="maxShared"/> bytes of shared memory,
    /// 16 outputs per thread), a block must hold a warp and stay within the register file at an estimate of 32 + 4
    /// registers per output in flight, and a tile may not be more than twice the plane in either direction. Ordered by
    /// how many tunables differ from the default, fewest first.
    /// </summary>
    public static List<IReadOnlyDictionary<string, int>> Candidates(SwLayerSpec spec, int maxShared = SwCrossCudaModel.MaxShared)
    {
        var def = Defaults(spec);
        var list = new List<IReadOnlyDictionary<string, int>> { def };
        int h = spec.Input[2], w = spec.Input[3];
        foreach (int tw in Values["tile_w"])
        foreach (int rpt in Values["rows_per_thread"])
        foreach (int ty in new[] { 1, 2, 4, 8, 16, 32 })
        foreach (int cpb in new[] { 1, 2, 4, 8, 16 })
        foreach (int unroll in Values["unroll"])
        {
            int th = ty * rpt;
            if (th > 64 || tw > 2 * Math.Max(8, w) || th > 2 * Math.Max(1, h) || cpb > 2 * spec.Rep) continue;
            var c = new Dictionary<string, int>(def)
            {
                ["lowering"] = 0, ["tile_w"] = tw, ["tile_h"] = th, ["rows_per_thread"] = rpt, ["ch_per_block"] = cpb, ["unroll"] = unroll,
            };
            if (Legal(() => new SwCrossCudaModel(spec, c, "probe"), m => (m.Threads, m.SharedBytes, rpt), maxShared)) list.Add(c);
        }
        foreach (int threads in Values["fact_threads"])
        for (int rows = 1; rows <= Math.Max(1, h); rows *= 2)
        {
            var c = new Dictionary<string, int>(def) { ["lowering"] = 1, ["fact_threads"] = threads, ["fact_rows"] = rows };
            if (Legal(() => new SwFactorisedCudaModel(spec, c, "probe"), m => (m.Threads, m.SharedBytes, m.PerThread), maxShared)) list.Add(c);
        }
        // nearest the default first (fewest tunables changed), so a budget cut keeps the default's neighbourhood
        return list.DistinctBy(c => string.Join(",", c.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Value)))
            .Select((c, i) => (c, i, d: c.Count(kv => def[kv.Key] != kv.Value))).OrderBy(t => t.d).ThenBy(t => t.i)
            .Select(t => t.c).ToList();
    }

    /// <summary>
    /// The limits a candidate's block must keep beyond those its kernel model enforces: at least a warp of threads,
    /// at most <paramref name="maxShared"/> bytes of shared memory, and the register file at 32 + 4 registers per
    /// output in flight per thread.
    /// </summary>
    public static bool WithinLimits(int threads, int sharedBytes, int outputs, int maxShared) =>
        threads >= 32 && sharedBytes <= maxShared && (long)threads * (32 + 4 * outputs) <= RegisterFile;

    private static bool Legal<T>(Func<T> build, Func<T, (int Threads, int Shared, int Outputs)> facts, int maxShared)
    {
        try
        {
            var (threads, shared, outputs) = facts(build());
            return WithinLimits(threads, shared, outputs, maxShared);
        }
        catch (IrException)
        {
            return false;
        }
    }

    private static int NextPow2(int v)
    {
        int p = 1;
        while (p < v) p *= 2;
        return p;
    }
}

/// <summary>What both CUDA SW kernels know of their layer: the node's shape, channel lists and small kernel.</summary>
public abstract class SwCudaModel
{
    /// <summary>Takes the facts of <paramref name="spec"/>; <paramref name="name"/> is the kernel's entry point.</summary>
    protected SwCudaModel(SwLayerSpec spec, string name)
    {
        Name = name;
        Batch = spec.Input[0];
        Channels = spec.Input[1];
        Height = spec.Input[2];
        Width = spec.Input[3];
        Rep = spec.Rep;
        Ghost = spec.Op.Ghost.Count;
        Small = spec.Op.Shift.Small;
        RepList = string.Join(", ", spec.Op.Rep);
        GhostList = string.Join(", ", spec.Op.Ghost);
    }

    /// <summary>Kernel name (the entry point).</summary>
    public string Name { get; }

    /// <summary>N.</summary>
    public int Batch { get; }

    /// <summary>Input channels C.</summary>
    public int Channels { get; }

    /// <summary>H.</summary>
    public int Height { get; }

    /// <summary>W.</summary>
    public int Width { get; }

    /// <summary>R, rep channels.</summary>
    public int Rep { get; }

    /// <summary>G, ghost channels.</summary>
    public int Ghost { get; }

    /// <summary>k.</summary>
    public int Small { get; }

    /// <summary>Input channel of each rep channel.</summary>
    public string RepList { get; }

    /// <summary>Input channel of each ghost channel.</summary>
    public string GhostList { get; }
}

/// <summary>
/// All index arithmetic of the CUDA cross kernel. A block computes a tile_h × tile_w output tile of
/// ch_per_block rep channels (threadIdx.z picks the channel); each thread computes rows_per_thread vertically
/// adjacent outputs of one column. Per channel, shared memory holds the horizontal band's input window
/// (tile_h + k − 1 rows × tile_w + n·k − 1 columns, starting <see cref="HaloLeft"/> columns left of the tile), the
/// vertical band's window (tile_h + n·k − 1 rows starting <see cref="HaloTop"/> rows above × tile_w + k − 1
/// columns) and both bands' weights. Blocks past the rep channels copy the ghost channels (scaled, biased).
/// </summary>
public sealed class SwCrossCudaModel : SwCudaModel
{
    /// <summary>Static shared memory a block may use (bytes).</summary>
    public const int MaxShared = 48 * 1024;

    /// <summary>Builds the model; throws when the tunables break a limit.</summary>
    public SwCrossCudaModel(SwLayerSpec spec, IReadOnlyDictionary<string, int> t, string name) : base(spec, name)
    {
        var s = spec.Op.Shift;
        Half = (s.Small - 1) / 2;
        Band = spec.BandWidth;
        Mu = s.Big / 2;
        HaloLeft = Mu;
        HaloTop = Mu;
        TileW = t["tile_w"];
        TileH = t["tile_h"];
        RowsPerThread = t["rows_per_thread"];
        ChPerBlock = t["ch_per_block"];
        Unroll = t["unroll"] != 0;
        if (TileH % RowsPerThread != 0)
        {
            throw new IrException($"tile_h {TileH} is not a multiple of rows_per_thread {RowsPerThread}");
        }
        ThreadsY = TileH / RowsPerThread;
        Threads = TileW * ThreadsY * ChPerBlock;
        if (Threads > 1024) throw new IrException($"a block of {TileW}x{ThreadsY}x{ChPerBlock} threads exceeds 1024");
        SlotThreads = TileW * ThreadsY;
        TilesX = (Width + TileW - 1) / TileW;
        TilesY = (Height + TileH - 1) / TileH;
        RepGroups = (Rep + ChPerBlock - 1) / ChPerBlock;
        GhostGroups = (Ghost + ChPerBlock - 1) / ChPerBlock;
        HsRows = TileH + Small - 1;
        HsCols = TileW + Band - 1;
        VsRows = TileH + Band - 1;
        VsCols = TileW + Small - 1;
        CentreLo = Mu - Half;
        CentreHi = Mu + Half;
        SharedBytes = SharedFloats(TileH, TileW, Small, Band, ChPerBlock) * 4;
        if (SharedBytes > MaxShared)
        {
            throw new IrException($"the cross tiles need {SharedBytes} bytes of shared memory, more than {MaxShared}");
        }
    }

    /// <summary>Shared floats of one block.</summary>
    public static int SharedFloats(int th, int tw, int k, int band, int cpb) =>
        cpb * ((th + k - 1) * (tw + band - 1) + (th + band - 1) * (tw + k - 1) + 2 * k * band);

    /// <summary>(k−1)/2.</summary>
    public int Half { get; }

    /// <summary>n·k.</summary>
    public int Band { get; }

    /// <summary>⌊B/2⌋.</summary>
    public int Mu { get; }

    /// <summary>Columns of the horizontal window left of the tile (μ; settable so a test can break it).</summary>
    public int HaloLeft { get; set; }

    /// <summary>Rows of the vertical window above the tile (μ).</summary>
    public int HaloTop { get; set; }

    /// <summary>Output columns per block (= threads in x).</summary>
    public int TileW { get; }

    /// <summary>Output rows per block.</summary>
    public int TileH { get; }

    /// <summary>Outputs per thread, vertically adjacent.</summary>
    public int RowsPerThread { get; }

    /// <summary>Channels per block (threadIdx.z).</summary>
    public int ChPerBlock { get; }

    /// <summary>Whether the band loops are fully unrolled.</summary>
    public bool Unroll { get; }

    /// <summary>The pragma before a band loop.</summary>
    public string UnrollPragma => Unroll ? "#pragma unroll" : "#pragma unroll 1";

    /// <summary>Threads in y.</summary>
    public int ThreadsY { get; }

    /// <summary>Threads per block.</summary>
    public int Threads { get; }

    /// <summary>Threads per channel slot.</summary>
    public int SlotThreads { get; }

    /// <summary>Tiles across.</summary>
    public int TilesX { get; }

    /// <summary>Tiles down.</summary>
    public int TilesY { get; }

    /// <summary>Blocks in y that compute rep channels.</summary>
    public int RepGroups { get; }

    /// <summary>Blocks in y that copy ghost channels.</summary>
    public int GhostGroups { get; }

    /// <summary>Rows of the horizontal window.</summary>
    public int HsRows { get; }

    /// <summary>Columns of the horizontal window.</summary>
    public int HsCols { get; }

    /// <summary>Rows of the vertical window.</summary>
    public int VsRows { get; }

    /// <summary>Columns of the vertical window.</summary>
    public int VsCols { get; }

    /// <summary>First vertical band row merged into the horizontal band (skipped).</summary>
    public int CentreLo { get; }

    /// <summary>Last merged row.</summary>
    public int CentreHi { get; }

    /// <summary>Static shared memory of a block.</summary>
    public int SharedBytes { get; }

    /// <summary>Launch grid: tiles, channel groups, batch.</summary>
    public Dim3 Grid => new(TilesX * TilesY, RepGroups + GhostGroups, Batch);

    /// <summary>Block shape.</summary>
    public Dim3 Block => new(TileW, ThreadsY, ChPerBlock);
}

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
        if (PerThread > 16) throw new IrException($"fact_rows {Rows} gives {PerThread} outputs per thread (at most 16)");
        (Lo, Hi) = RowReach(spec);
        MapRows = Rows + Hi - Lo;
        InRows = MapRows + Pad;
        InCols = InWidth + Pad;
        SharedBytes = SharedFloats(spec, Rows) * 4;
        if (SharedBytes > SwCrossCudaModel.MaxShared)
        {
            throw new IrException($"fact_rows {Rows} needs {SharedBytes} bytes of shared memory, more than {SwCrossCudaModel.MaxShared}");
        }
        var slot = spec.KeptSlots();
        Subs = subs.Count;
        TableSubs = Math.Max(1, subs.Count);
        SubStart = string.Join(", ", spec.SubStart());
        // (one dummy entry when every sub-kernel is pruned: C arrays cannot be empty)
        ShiftsH = subs.Count == 0 ? "0" : string.Join(", ", spec.KeptShifts(vertical: false));
        ShiftsV = subs.Count == 0 ? "0" : string.Join(", ", spec.KeptShifts(vertical: true));
        // per kept sub-kernel, how many replicas pick it as the identity (the identity path adds X there once per pick)
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
