using ShiftWise.IR;
using ShiftWise.Passes.Lowering;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// All index arithmetic of the register-blocked CUDA cross kernel (lowering 2): the same collapsed bands and the same
/// sums as <see cref="SwCrossCudaModel"/>, on a tile of tile_h × tile_w outputs per channel where each thread owns
/// rows_per_thread (R) × cols_per_thread (X) adjacent outputs in registers.
/// <para>
/// The plan (Templates/sw_cross_rb.cu.sbn). The horizontal band runs in chunks of X taps: per input row of the
/// thread (R + k − 1 of them) one X-wide vector read (float2/float4) from shared memory per chunk, held in registers
/// next to the previous chunk's, feeds R·k·X·X FMAs over the chunk (each value reused across the X columns, the k
/// weight rows and the X taps); the k·X weights of a chunk are vector broadcast reads. The vertical band slides down
/// the band rows keeping a register window of the R input row segments (X + k − 1 values, vector reads): one new
/// segment and k broadcast weights per band row feed R·k·X FMAs.
/// </para>
/// <para>
/// The arithmetic (k = 3, R = X = 4). Horizontal, per thread and chunk: 6 + 3 vector reads for 192 FMAs, 21 FMAs per
/// shared-load instruction; the lowering-0 kernel does 3R = 12 FMAs per R + k − 1 + k = 9 scalar reads, 1.3 per
/// load. In bytes, per warp and chunk: 24 wavefronts of 128 B for the windows and 3 for the weights against 32·192
/// FMAs, 227 FMAs per wavefront. An SM moves one 128 B wavefront per clock and retires 128 FMAs (H100: 128 FP32
/// lanes), so shared memory can feed 1.8 times the FMA rate; the old kernel's 43 FMAs per wavefront cap it at a third
/// of the rate, close to the 24% of peak measured on an H100. Vertical, per thread and band row: 2 float4 + 3 weight
/// reads for 48 FMAs; per warp 8 + 3 wavefronts for 1536 FMAs, 140 per wavefront. FMAs are then about 90% of the
/// inner loops' instructions, so an H100 SXM (132 SMs × 128 FP32 lanes × 1.98 GHz ≈ 67 TFLOP/s) is bound by its FMA
/// pipes, not by shared memory: 50% of peak needs half the issue slots to be FMAs at an occupancy of about 16 warps
/// per SM (≈ 90 registers per thread at R = X = 4), which the register estimate below keeps. Not yet measured on a
/// GPU: the tuner measures every legal R, X and tile.
/// </para>
/// Shared memory per channel: the horizontal window (tile_h + k − 1 rows × tile_w + chunks·X columns, starting μ
/// columns left of the tile, rows padded to a multiple of 4 floats for aligned vectors), the vertical window
/// (tile_h + n·k − 1 rows × tile_w − X + the segment, starting μ rows above), the horizontal weights (k rows padded
/// with zeros to whole chunks) and the vertical weights. Blocks past the rep channels copy the ghost channels.
/// </summary>
public sealed class SwCrossRbCudaModel : SwCudaModel
{
    /// <summary>Builds the model; throws when the tunables break a limit.</summary>
    public SwCrossRbCudaModel(SwLayerSpec spec, IReadOnlyDictionary<string, int> t, string name) : base(spec, name)
    {
        var s = spec.Op.Shift;
        Half = (s.Small - 1) / 2;
        Band = spec.BandWidth;
        Mu = s.Big / 2;
        HaloLeft = Mu;
        TileW = t["tile_w"];
        TileH = t["tile_h"];
        Rows = t["rows_per_thread"];
        Cols = t["cols_per_thread"];
        ChPerBlock = t["ch_per_block"];
        Unroll = t["unroll"] != 0;
        if (TileH % Rows != 0) throw new IrException($"tile_h {TileH} is not a multiple of rows_per_thread {Rows}");
        if (TileW % Cols != 0) throw new IrException($"tile_w {TileW} is not a multiple of cols_per_thread {Cols}");
        ThreadsX = TileW / Cols;
        ThreadsY = TileH / Rows;
        Threads = ThreadsX * ThreadsY * ChPerBlock;
        if (Threads > 1024)
        {
            throw new IrException($"a block of {ThreadsX}x{ThreadsY}x{ChPerBlock} threads exceeds 1024");
        }
        SlotThreads = ThreadsX * ThreadsY;
        TilesX = (Width + TileW - 1) / TileW;
        TilesY = (Height + TileH - 1) / TileH;
        RepGroups = (Rep + ChPerBlock - 1) / ChPerBlock;
        GhostGroups = (Ghost + ChPerBlock - 1) / ChPerBlock;
        Vec = Math.Min(Cols, 4);
        Chunks = (Band + Cols - 1) / Cols;
        Seg = RoundUp(Cols + Small - 1, Vec);
        HsRows = TileH + Small - 1;
        HsCols = RoundUp(TileW + Chunks * Cols, 4);
        HwCols = RoundUp(Chunks * Cols, 4);
        VsRows = TileH + Band - 1;
        VsCols = RoundUp(TileW - Cols + Seg, 4);
        CentreLo = Mu - Half;
        CentreHi = Mu + Half;
        Registers = RegisterEstimate(Rows, Cols, Small);
        SharedBytes = SharedFloats(spec, TileH, TileW, Cols, ChPerBlock) * 4;
        if (SharedBytes > SwCrossCudaModel.MaxShared)
        {
            throw new IrException(
                $"the cross tiles need {SharedBytes} bytes of shared memory, more than {SwCrossCudaModel.MaxShared}");
        }
    }

    /// <summary>Shared floats of one block.</summary>
    public static int SharedFloats(SwLayerSpec spec, int th, int tw, int x, int cpb)
    {
        int k = spec.Op.Shift.Small, band = spec.BandWidth, chunks = (band + x - 1) / x;
        int seg = RoundUp(x + k - 1, Math.Min(x, 4));
        return cpb * ((th + k - 1) * RoundUp(tw + chunks * x, 4) + (th + band - 1) * RoundUp(tw - x + seg, 4)
            + k * RoundUp(chunks * x, 4) + band * k);
    }

    /// <summary>
    /// Registers per thread, estimated: 32 for addresses and indices, the R·X sums, and the larger of the two passes'
    /// working sets (horizontal: R + k − 1 row windows of X values, the next chunk's X and the chunk's k·X weights;
    /// vertical: R row segments and k weights).
    /// </summary>
    public static int RegisterEstimate(int r, int x, int k) =>
        32 + r * x + Math.Max((r + k - 1) * x + x + k * x, r * RoundUp(x + k - 1, Math.Min(x, 4)) + k);

    private static int RoundUp(int v, int m) => (v + m - 1) / m * m;

    /// <summary>(k−1)/2.</summary>
    public int Half { get; }

    /// <summary>n·k.</summary>
    public int Band { get; }

    /// <summary>⌊B/2⌋.</summary>
    public int Mu { get; }

    /// <summary>Columns of the horizontal window left of the tile (μ; settable so a test can break it).</summary>
    public int HaloLeft { get; set; }

    /// <summary>Output columns per block.</summary>
    public int TileW { get; }

    /// <summary>Output rows per block.</summary>
    public int TileH { get; }

    /// <summary>R: output rows per thread.</summary>
    public int Rows { get; }

    /// <summary>X: adjacent output columns per thread.</summary>
    public int Cols { get; }

    /// <summary>Channels per block (threadIdx.z).</summary>
    public int ChPerBlock { get; }

    /// <summary>Whether the band loops are fully unrolled.</summary>
    public bool Unroll { get; }

    /// <summary>The pragma before a band loop.</summary>
    public string UnrollPragma => Unroll ? "#pragma unroll" : "#pragma unroll 1";

    /// <summary>Threads in x (tile_w / X).</summary>
    public int ThreadsX { get; }

    /// <summary>Threads in y (tile_h / R).</summary>
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

    /// <summary>Floats per shared vector read (2 or 4).</summary>
    public int Vec { get; }

    /// <summary>The vector type of a shared read.</summary>
    public string VecType => Vec == 4 ? "float4" : "float2";

    /// <summary>Chunks of X taps of the horizontal band (the last one padded with zero weights).</summary>
    public int Chunks { get; }

    /// <summary>Values of a vertical row segment (X + k − 1 rounded up to whole vectors).</summary>
    public int Seg { get; }

    /// <summary>Rows of the horizontal window.</summary>
    public int HsRows { get; }

    /// <summary>Columns of the horizontal window (a multiple of 4).</summary>
    public int HsCols { get; }

    /// <summary>Columns of a horizontal weight row in shared memory (whole chunks, a multiple of 4).</summary>
    public int HwCols { get; }

    /// <summary>Rows of the vertical window.</summary>
    public int VsRows { get; }

    /// <summary>Columns of the vertical window (a multiple of 4).</summary>
    public int VsCols { get; }

    /// <summary>First vertical band row merged into the horizontal band (skipped).</summary>
    public int CentreLo { get; }

    /// <summary>Last merged row.</summary>
    public int CentreHi { get; }

    /// <summary>Estimated registers per thread (<see cref="RegisterEstimate"/>).</summary>
    public int Registers { get; }

    /// <summary>Static shared memory of a block.</summary>
    public int SharedBytes { get; }

    /// <summary>
    /// Whether 16-bit global accesses may go in pairs (W even: a pair at an even column is in the plane or out whole).
    /// </summary>
    public bool Pairs => Is16 && Width % 2 == 0;

    /// <summary>The paired 16-bit type (two values in one 32-bit word).</summary>
    public string T2 => T + "x2";

    /// <summary>The element type of the bands: float32, or the 16-bit storage type.</summary>
    public string BandType => T;

    /// <summary>The rounding function of a 16-bit store (swc_round_bf16 / swc_round_fp16).</summary>
    public string Round => Is16 ? "swc_round_" + Types16.Name(Storage) : "";

    /// <summary>Launch grid: tiles, channel groups, batch.</summary>
    public Dim3 Grid => new(TilesX * TilesY, RepGroups + GhostGroups, Batch);

    /// <summary>Block shape.</summary>
    public Dim3 Block => new(ThreadsX, ThreadsY, ChPerBlock);
}
