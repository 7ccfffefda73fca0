using ShiftWise.IR;
using ShiftWise.Passes.Lowering;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// All index arithmetic of the CUDA cross kernel. A block computes a tile_h × tile_w output tile of
/// ch_per_block rep channels (threadIdx.z picks the channel); each thread computes rows_per_thread vertically
/// adjacent outputs of one column. Per channel, shared memory holds the horizontal band's input window
/// (tile_h + k − 1 rows × tile_w + n·k − 1 columns, starting <see cref="HaloLeft"/> columns left of the tile),
/// the vertical band's window (tile_h + n·k − 1 rows starting <see cref="HaloTop"/> rows above × tile_w + k − 1
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

    /// <summary>
    /// The element type of the bands: float32, or the 16-bit storage type (derived in float32 at bind time and rounded
    /// once, <see cref="Derived.Band"/>).
    /// </summary>
    public string BandType => T;

    /// <summary>Launch grid: tiles, channel groups, batch.</summary>
    public Dim3 Grid => new(TilesX * TilesY, RepGroups + GhostGroups, Batch);

    /// <summary>Block shape.</summary>
    public Dim3 Block => new(TileW, ThreadsY, ChPerBlock);

    /// <summary>
    /// Whether the 16-bit kernel moves its windows and ghost copies two values per 32-bit access (issue 22): an even
    /// width (tile origins are even, tile_w being at least 8), so pairs that start at even plane columns never straddle
    /// the plane's edge; the kernel still checks at run time that x and y are 4-byte aligned.
    /// </summary>
    public bool Paired => Is16 && Width % 2 == 0 && TileW % 2 == 0;

    /// <summary>Pairs per row of the horizontal window (its first plane column is odd when HaloLeft is).</summary>
    public int HsPairs => (HsCols + HaloLeft % 2 + 1) / 2;

    /// <summary>Pairs per row of the vertical window.</summary>
    public int VsPairs => (VsCols + Half % 2 + 1) / 2;
}
