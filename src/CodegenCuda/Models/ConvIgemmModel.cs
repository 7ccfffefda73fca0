using ShiftWise.Codegen;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// conv_igemm.cu.sbn: a dense 16-bit conv2d (groups = 1, any stride, padding and dilation) as an implicit GEMM on
/// tensor cores (issue 22). In GEMM terms M = N·OH·OW output positions over the batch, N = output channels and
/// K = C·KH·KW taps; a block computes a <see cref="TileM"/>×<see cref="TileN"/> tile of the output, stepping K by
/// <see cref="TileK"/>: its threads gather the A tile straight from the NCHW input (the im2col values, zero outside the
/// image and past M or K, never written to memory) and the B tile from the weight as stored ([O][K], K contiguous)
/// into shared memory, and each warp multiplies its sub-tile with <c>swc_mma_bf16</c> / <c>swc_mma_fp16</c>
/// (mma16.cu.sbn: mma.sync m16n8k16 on sm_80+, a shuffle implementation with the same fragments elsewhere), in
/// float32. The epilogue adds the bias and rounds each output once.
/// </summary>
public sealed class ConvIgemmModel : CudaKernelModel
{
    /// <summary>The K step of every tile (two m16n8k16 steps).</summary>
    public const int TileK = 32;

    /// <summary>A block tile: its M and N sides and its warps along each (the tunable "tile" indexes this).</summary>
    public sealed record Tile(int M, int N, int WarpsM, int WarpsN);

    /// <summary>The block tiles: 0 = 64×64 (4 warps of 32×32), 1 = 128×64 (8 warps of 32×32), 2 = 32×32 (4 warps of
    /// 16×16, for small layers).</summary>
    public static IReadOnlyList<Tile> Tiles { get; } = [new(64, 64, 2, 2), new(128, 64, 4, 2), new(32, 32, 2, 2)];

    /// <summary>Blocks a launch should have at least before a larger tile is chosen (two per SM of a large GPU).
    /// </summary>
    public const long EnoughBlocks = 264;

    /// <summary>
    /// The default tile for <paramref name="m"/> positions and <paramref name="n"/> channels: the largest of 128×64 and
    /// 64×64 that still gives <see cref="EnoughBlocks"/> blocks, else 32×32.
    /// </summary>
    public static int DefaultTile(long m, long n)
    {
        foreach (int i in new[] { 1, 0 })
        {
            if (Blocks(Tiles[i], m, n) >= EnoughBlocks) return i;
        }
        return 2;
    }

    private static long Blocks(Tile t, long m, long n) => ((m + t.M - 1) / t.M) * ((n + t.N - 1) / t.N);

    /// <summary>Builds the model for <paramref name="op"/> on input <paramref name="x"/> and weight shape
    /// <paramref name="w"/> with block tile <paramref name="tile"/> (an index of <see cref="Tiles"/>).</summary>
    public ConvIgemmModel(string name, Conv2d op, Shape x, Shape w, bool hasBias, int tile, DType storage)
        : base(name, "conv_igemm", Tiles[tile].WarpsM * Tiles[tile].WarpsN * 32,
            Math.Max(x.Elements, (long)x[0] * w[0] * op.OutSize(x[2], w[2], 0) * op.OutSize(x[3], w[3], 1)))
    {
        if (op.Groups != 1) throw new ArgumentException("the implicit GEMM runs dense convolutions (groups = 1)");
        if (storage == DType.F32) throw new ArgumentException("the implicit GEMM runs bf16 and fp16");
        Storage = storage;
        var t = Tiles[tile];
        (TileM, TileN, WarpsM, WarpsN) = (t.M, t.N, t.WarpsM, t.WarpsN);
        (Batch, Channels, Height, Width) = (x[0], x[1], x[2], x[3]);
        (OutChannels, KernelH, KernelW) = (w[0], w[2], w[3]);
        (StrideY, StrideX, PadY, PadX) = (op.Stride[0], op.Stride[1], op.Padding[0], op.Padding[1]);
        (DilationY, DilationX) = (op.Dilation[0], op.Dilation[1]);
        (OutH, OutW) = (op.OutSize(x[2], w[2], 0), op.OutSize(x[3], w[3], 1));
        HasBias = hasBias;
        GemmM = (long)Batch * OutH * OutW;
        long k = (long)Channels * KernelH * KernelW;
        if (k > int.MaxValue / 2) throw new ArgumentException($"{k} taps exceed the implicit GEMM's K");
        GemmK = (int)k;
    }

    /// <summary>The 16-bit type's name in the source (bf16, fp16).</summary>
    public string Type => Types16.Name(Storage);

    /// <summary>
    /// The mma device function (mma16.cu.sbn) of the storage type, after <see cref="CudaKernelModel.Prelude"/>.
    /// </summary>
    public string Mma => MmaSource(Storage);

    /// <summary>The text of mma16.cu.sbn for <paramref name="storage"/> (bf16 or fp16): <c>swc_mma_bf16</c> or
    /// <c>swc_mma_fp16</c>, which needs <see cref="Types16.Prelude"/> before it.</summary>
    public static string MmaSource(DType storage) => TemplateRenderer.Render("mma16.cu.sbn",
        new { Type = Types16.Name(storage), Ptx = storage == DType.BF16 ? "bf16" : "f16" });

    /// <summary><see cref="TileK"/> for the template.</summary>
    public int StepK => TileK;

    /// <summary>Block tile rows (output positions).</summary>
    public int TileM { get; }

    /// <summary>Block tile columns (output channels).</summary>
    public int TileN { get; }

    /// <summary>Warps along M.</summary>
    public int WarpsM { get; }

    /// <summary>Warps along N.</summary>
    public int WarpsN { get; }

    /// <summary>m16 fragments per warp along M.</summary>
    public int FragsM => TileM / WarpsM / 16;

    /// <summary>n8 fragments per warp along N.</summary>
    public int FragsN => TileN / WarpsN / 8;

    /// <summary>32-bit words per shared-memory row (TileK/2 pairs and 4 of padding: fragment loads hit 32 banks).
    /// </summary>
    public int RowWords => TileK / 2 + 4;

    /// <summary>K pairs between one thread's A gathers (threads per block / TileM).</summary>
    public int StepA => Threads / TileM;

    /// <summary>B rows between one thread's loads (threads per block / (TileK/2)).</summary>
    public int StepB => Threads / (TileK / 2);

    /// <summary>Batch.</summary>
    public int Batch { get; }

    /// <summary>Input channels.</summary>
    public int Channels { get; }

    /// <summary>Input height.</summary>
    public int Height { get; }

    /// <summary>Input width.</summary>
    public int Width { get; }

    /// <summary>Output channels (the GEMM's N).</summary>
    public int OutChannels { get; }

    /// <summary>Kernel height.</summary>
    public int KernelH { get; }

    /// <summary>Kernel width.</summary>
    public int KernelW { get; }

    /// <summary>Vertical stride.</summary>
    public int StrideY { get; }

    /// <summary>Horizontal stride.</summary>
    public int StrideX { get; }

    /// <summary>Top padding.</summary>
    public int PadY { get; }

    /// <summary>Left padding.</summary>
    public int PadX { get; }

    /// <summary>Vertical dilation.</summary>
    public int DilationY { get; }

    /// <summary>Horizontal dilation.</summary>
    public int DilationX { get; }

    /// <summary>Output height.</summary>
    public int OutH { get; }

    /// <summary>Output width.</summary>
    public int OutW { get; }

    /// <summary>A bias operand is added.</summary>
    public bool HasBias { get; }

    /// <summary>What the epilogue adds to an accumulator: the widened bias of channel o, or nothing.</summary>
    public string BiasTerm => HasBias ? " + " + Ld("bias", "o") : "";

    /// <summary>Output positions over the batch (the GEMM's M).</summary>
    public long GemmM { get; }

    /// <summary>Taps per output: C·KH·KW (the GEMM's K).</summary>
    public int GemmK { get; }

    /// <summary>Taps per input channel.</summary>
    public int Taps => KernelH * KernelW;

    /// <summary>Output positions per sample.</summary>
    public long Positions => (long)OutH * OutW;

    /// <summary>Input plane size.</summary>
    public long InPlane => (long)Height * Width;

    /// <summary>Input values per sample.</summary>
    public long Image => (long)Channels * Height * Width;

    /// <summary>Blocks along M (grid x).</summary>
    public long BlocksM => (GemmM + TileM - 1) / TileM;

    /// <summary>Blocks along N (grid y).</summary>
    public int BlocksN => (OutChannels + TileN - 1) / TileN;
}
