using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// The geometry the general conv2d gradient kernels share: any groups, stride, padding and dilation. Every index
/// the templates need (plane sizes, group widths, tap offsets) is computed here.
/// </summary>
public abstract class ConvGradGeometryModel : CudaKernelModel
{
    /// <summary>
    /// Reads the geometry of <paramref name="op"/> on input <paramref name="x"/> and weight <paramref name="w"/>.
    /// </summary>
    protected ConvGradGeometryModel(string name, string kind, int threads, Conv2d op, Shape x, Shape w)
        : base(name, kind, threads, Math.Max(Math.Max(x.Elements, w.Elements),
            (long)x[0] * w[0] * op.OutSize(x[2], w[2], 0) * op.OutSize(x[3], w[3], 1)))
    {
        (Batch, Channels, Height, Width) = (x[0], x[1], x[2], x[3]);
        (OutChannels, GroupChannels, KernelHeight, KernelWidth) = (w[0], w[1], w[2], w[3]);
        Groups = op.Groups;
        GroupOutChannels = OutChannels / Groups;
        OutHeight = op.OutSize(Height, KernelHeight, 0);
        OutWidth = op.OutSize(Width, KernelWidth, 1);
        (StrideY, StrideX) = (op.Stride[0], op.Stride[1]);
        (PadY, PadX, DilationY, DilationX) = (op.Padding[0], op.Padding[1], op.Dilation[0], op.Dilation[1]);
    }

    /// <summary>N.</summary>
    public int Batch { get; }

    /// <summary>Input channels.</summary>
    public int Channels { get; }

    /// <summary>Input height.</summary>
    public int Height { get; }

    /// <summary>Input width.</summary>
    public int Width { get; }

    /// <summary>Output channels.</summary>
    public int OutChannels { get; }

    /// <summary>Input channels per group (the weight's second axis).</summary>
    public int GroupChannels { get; }

    /// <summary>Groups.</summary>
    public int Groups { get; }

    /// <summary>Output channels per group.</summary>
    public int GroupOutChannels { get; }

    /// <summary>Kernel height.</summary>
    public int KernelHeight { get; }

    /// <summary>Kernel width.</summary>
    public int KernelWidth { get; }

    /// <summary>Output height.</summary>
    public int OutHeight { get; }

    /// <summary>Output width.</summary>
    public int OutWidth { get; }

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

    /// <summary>Taps per weight row (kh·kw).</summary>
    public int Taps => KernelHeight * KernelWidth;

    /// <summary>Input plane.</summary>
    public long InPlane => (long)Height * Width;

    /// <summary>Output plane.</summary>
    public long OutPlane => (long)OutHeight * OutWidth;

    /// <summary>Floats of one output channel's weights (cpg·kh·kw).</summary>
    public int WeightRow => GroupChannels * Taps;
}

/// <summary>
/// The input gradient of a conv2d (any groups, stride, padding, dilation) as a gather: one thread per element
/// dx[b, ch, yy, xx] sums gy[b, o, i, j]·w[o, q, u, v] over the output channels o of ch's group and the taps (u, v)
/// with yy = i·s − p + u·d, in the order (o, u, v): the order of the float64 reference. No atomics.
/// </summary>
public sealed class ConvGradInputModel : ConvGradGeometryModel
{
    /// <summary>Builds the model for input <paramref name="x"/> and weight <paramref name="w"/>.</summary>
    public ConvGradInputModel(string name, int threads, Conv2d op, Shape x, Shape w)
        : base(name, "grad_conv2d_input", threads, op, x, w)
    {
    }

    /// <summary>Unroll the tap loops.</summary>
    public bool Unroll => Taps <= ConvModel.UnrollLimit;

    /// <summary>Whether either stride exceeds 1 (the template then tests divisibility).</summary>
    public bool Strided => StrideY > 1 || StrideX > 1;

    /// <summary>Threads in all: one per element of x.</summary>
    public long Work => (long)Batch * Channels * Height * Width;

    /// <summary>Floats of one group's weights (opg·cpg·kh·kw).</summary>
    public long GroupWeights => (long)GroupOutChannels * WeightRow;
}

/// <summary>
/// The weight gradient of a conv2d (any groups, stride, padding, dilation): one block per weight row (o, q); each
/// thread walks a strided share of the (batch, output row, output column) positions keeping one register
/// accumulator per tap, then the block sums the per-thread partials of every tap by a shared-memory tree in a fixed
/// order (deterministic for a given block size, no atomics).
/// </summary>
public sealed class ConvGradWeightModel : ConvGradGeometryModel
{
    /// <summary>Most taps kept in registers (7×7).</summary>
    public const int MaxTaps = DwConvGradWeightModel.MaxTaps;

    /// <summary>Builds the model for input <paramref name="x"/> and weight <paramref name="w"/>.</summary>
    public ConvGradWeightModel(string name, int threads, Conv2d op, Shape x, Shape w)
        : base(name, "grad_conv2d_weight", threads, op, x, w)
    {
        if (Taps > MaxTaps) throw new ArgumentException($"{Taps} taps exceed the {MaxTaps} register accumulators");
        if (DwConvGradWeightModel.SharedBytes(Taps, threads) > DwConvGradWeightModel.MaxSharedBytes)
        {
            throw new ArgumentException($"{threads} threads x {Taps} taps exceed the shared memory");
        }
    }

    /// <summary>Blocks: one per weight row (o, q).</summary>
    public int Rows => OutChannels * GroupChannels;

    /// <summary>The tap indices 0..Taps−1.</summary>
    public int[] TapList => Enumerable.Range(0, Taps).ToArray();

    /// <summary>Positions each block reduces: N × output plane.</summary>
    public long Positions => (long)Batch * OutHeight * OutWidth;

    /// <summary>Floats of the reduction buffer.</summary>
    public int SharedFloats => Taps * Threads;

    /// <summary>The first stride of the tree (half the block).</summary>
    public int HalfThreads => Threads / 2;

    /// <summary>Offsets of every tap from (i·sy, j·sx) into the input: u·dy − py and v·dx − px.</summary>
    public IReadOnlyList<TapOffset> TapOffsets => Enumerable.Range(0, Taps)
        .Select(k => new TapOffset(k, k / KernelWidth * DilationY - PadY, k % KernelWidth * DilationX - PadX))
        .ToArray();

    /// <summary>
    /// The default block: the largest power of two in [32, 256] not above the positions rounded up (a 1×1 map of a
    /// small batch needs one warp) whose reduction fits the shared memory.
    /// </summary>
    public static int DefaultThreads(int taps, long positions)
    {
        int t = DwConvGradWeightModel.DefaultThreads(Math.Min(taps, MaxTaps));
        while (t > 32 && t / 2 >= positions) t /= 2;
        return t;
    }
}

/// <summary>
/// A bias gradient: db[o] = Σ_{b, r} gy[(b·C + o)·inner + r] over outer × inner positions (a conv's N × H·W with
/// inner = H·W, or a linear layer's rows with inner = 1). One block per channel; each thread sums a strided share in
/// order, then a shared-memory tree in a fixed order. No atomics.
/// </summary>
public sealed class BiasGradModel : CudaKernelModel
{
    /// <summary>Builds the model for <paramref name="channels"/> channels over outer × inner positions.</summary>
    public BiasGradModel(string name, int threads, long outer, int channels, long inner)
        : base(name, "grad_bias", threads, outer * channels * inner)
    {
        if (threads < 32 || threads > 1024 || (threads & (threads - 1)) != 0)
        {
            throw new ArgumentException($"{threads} threads must be a power of two in [32, 1024]");
        }
        (Outer, Channels, Inner) = (outer, channels, inner);
    }

    /// <summary>Positions before the channel axis (N, or the rows of a linear layer).</summary>
    public long Outer { get; }

    /// <summary>C: blocks.</summary>
    public int Channels { get; }

    /// <summary>Positions after the channel axis (H·W, 1 for a linear layer).</summary>
    public long Inner { get; }

    /// <summary>Positions each block sums.</summary>
    public long Positions => Outer * Inner;

    /// <summary>Whether the channel is innermost (no division by the plane).</summary>
    public bool RowMajor => Inner == 1;

    /// <summary>The first stride of the tree.</summary>
    public int HalfThreads => Threads / 2;

    /// <summary>The default block: a power of two in [32, 256], smaller when there are few positions.</summary>
    public static int DefaultThreads(long positions)
    {
        int t = 256;
        while (t > 32 && t / 2 >= positions) t /= 2;
        return t;
    }
}
