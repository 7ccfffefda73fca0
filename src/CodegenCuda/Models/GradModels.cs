using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// The gradient of the SW shift-add (<see cref="ShiftAdd"/>) with respect to its input X (N, R·n, H+2e, W+2e), as the
/// adjoint gather of <c>Backward.Vjp</c>: one thread per element of dX sums, over the replicas g, the output-gradient
/// elements of each path in dy that read it. No atomics; the order of the sum is fixed. The tables are
/// <see cref="ShiftAddKernelModel"/>'s (the forward's), only those of the paths in dy: the block index m of every
/// (sub-channel, replica) shift, which the kernel turns into ρ_0 − m·k, and the identity sub-channel of every
/// (rep channel, replica), which the kernel counts the picks of its sub-channel from.
/// </summary>
public sealed class ShiftAddGradModel : ShiftAddKernelModel
{
    /// <summary>
    /// Builds the model for input <paramref name="x"/>; <paramref name="dy"/> lists the paths with a gradient (0 h, 1
    /// v, 2 identity); parameters dx, then gh, gv, gi for the paths in dy.
    /// </summary>
    public ShiftAddGradModel(string name, int threads, ShiftAdd op, Shape x, IReadOnlyList<int> dy,
        KernelSignature signature)
        : base(name, "grad_shift_add", threads, op, x, signature, Paths(dy).Contains(0), dy.Contains(1),
            dy.Contains(2))
    {
        HasH = dy.Contains(0);
        HasV = dy.Contains(1);
        HasI = dy.Contains(2);
    }

    private static IReadOnlyList<int> Paths(IReadOnlyList<int> dy) =>
        dy.Count == 0 || dy.Any(d => d is < 0 or > 2) ? throw new ArgumentException("dy must list paths among 0, 1, 2")
            : dy;

    /// <summary>The horizontal path has a gradient.</summary>
    public bool HasH { get; }

    /// <summary>The vertical path has a gradient.</summary>
    public bool HasV { get; }

    /// <summary>The identity path has a gradient.</summary>
    public bool HasI { get; }

    /// <summary>Threads in all: one per element of X.</summary>
    public long Work => (long)Batch * SubChannels * InHeight * InWidth;
}

/// <summary>
/// The geometry both depthwise conv2d gradient kernels share (input, weight, output, padding, dilation).
/// </summary>
public abstract class DwConvGradModel : CudaKernelModel
{
    /// <summary>
    /// Reads the geometry of <paramref name="op"/> on input <paramref name="x"/> and weight <paramref name="w"/>.
    /// </summary>
    protected DwConvGradModel(string name, string kind, int threads, Conv2d op, Shape x, Shape w)
        : base(name, kind, threads, Math.Max(x.Elements, (long)x[0] * w[0] * op.OutSize(x[2], w[2], 0)
            * op.OutSize(x[3], w[3], 1)))
    {
        (Batch, Channels, Height, Width) = (x[0], x[1], x[2], x[3]);
        (OutChannels, KernelHeight, KernelWidth) = (w[0], w[2], w[3]);
        Multiplier = OutChannels / Channels;
        OutHeight = op.OutSize(Height, KernelHeight, 0);
        OutWidth = op.OutSize(Width, KernelWidth, 1);
        (PadY, PadX, DilationY, DilationX) = (op.Padding[0], op.Padding[1], op.Dilation[0], op.Dilation[1]);
    }

    /// <summary>N.</summary>
    public int Batch { get; }

    /// <summary>Input channels (= groups).</summary>
    public int Channels { get; }

    /// <summary>Input height.</summary>
    public int Height { get; }

    /// <summary>Input width.</summary>
    public int Width { get; }

    /// <summary>Output channels.</summary>
    public int OutChannels { get; }

    /// <summary>n, output channels per input channel.</summary>
    public int Multiplier { get; }

    /// <summary>Kernel height.</summary>
    public int KernelHeight { get; }

    /// <summary>Kernel width.</summary>
    public int KernelWidth { get; }

    /// <summary>Output height.</summary>
    public int OutHeight { get; }

    /// <summary>Output width.</summary>
    public int OutWidth { get; }

    /// <summary>Top padding.</summary>
    public int PadY { get; }

    /// <summary>Left padding.</summary>
    public int PadX { get; }

    /// <summary>Vertical dilation.</summary>
    public int DilationY { get; }

    /// <summary>Horizontal dilation.</summary>
    public int DilationX { get; }
}

/// <summary>
/// The input gradient of a depthwise conv2d (one input channel per group, n output channels per group, stride 1,
/// any padding and dilation) as a gather: one thread per element of dx sums gy over the n output channels of its
/// group and the kh×kw taps that read it. No atomics.
/// </summary>
public sealed class DwConvGradInputModel : DwConvGradModel
{
    /// <summary>Builds the model for input <paramref name="x"/> and weight <paramref name="w"/>.</summary>
    public DwConvGradInputModel(string name, int threads, Conv2d op, Shape x, Shape w)
        : base(name, "grad_conv2d_dw_input", threads, op, x, w)
    {
    }

    /// <summary>Taps per channel.</summary>
    public int Taps => KernelHeight * KernelWidth;

    /// <summary>Unroll the tap loops.</summary>
    public bool Unroll => Taps <= ConvModel.UnrollLimit;

    /// <summary>Threads in all: one per element of x.</summary>
    public long Work => (long)Batch * Channels * Height * Width;

    /// <summary>Input plane.</summary>
    public long InPlane => (long)Height * Width;

    /// <summary>Output plane.</summary>
    public long OutPlane => (long)OutHeight * OutWidth;
}

/// <summary>
/// The weight gradient of a depthwise conv2d (stride 1): one block per output channel o; each thread walks a strided
/// share of the (batch, output row, output column) positions and keeps one register accumulator per tap
/// (dw[o, u, v] += gy · x at the tap), then the block sums the per-thread partials of every tap by a shared-memory
/// tree. No atomics: the order of every sum is fixed by the block size, so the result is deterministic.
/// </summary>
public sealed class DwConvGradWeightModel : DwConvGradModel
{
    /// <summary>Most taps kept in registers (7×7).</summary>
    public const int MaxTaps = 49;

    /// <summary>Static shared memory the reduction may use.</summary>
    public const int MaxSharedBytes = 48 * 1024;

    /// <summary>Builds the model for input <paramref name="x"/> and weight <paramref name="w"/>.</summary>
    public DwConvGradWeightModel(string name, int threads, Conv2d op, Shape x, Shape w)
        : base(name, "grad_conv2d_dw_weight", threads, op, x, w)
    {
        if (Taps > MaxTaps) throw new ArgumentException($"{Taps} taps exceed the {MaxTaps} register accumulators");
        if (SharedBytes(Taps, threads) > MaxSharedBytes)
        {
            throw new ArgumentException($"{threads} threads x {Taps} taps exceed the shared memory");
        }
    }

    /// <summary>Bytes of the reduction buffer.</summary>
    public static long SharedBytes(int taps, int threads) => 4L * taps * threads;

    /// <summary>
    /// The largest power-of-two block (at most <paramref name="cap"/>, at least 32) whose reduction fits.
    /// </summary>
    public static int DefaultThreads(int taps, int cap = 256)
    {
        int t = cap;
        while (t > 32 && SharedBytes(taps, t) > MaxSharedBytes) t /= 2;
        return t;
    }

    /// <summary>Taps per channel (accumulators per thread).</summary>
    public int Taps => KernelHeight * KernelWidth;

    /// <summary>The tap indices 0..Taps−1 (the template unrolls over them).</summary>
    public int[] TapList => Enumerable.Range(0, Taps).ToArray();

    /// <summary>Positions each block reduces: N × output plane.</summary>
    public long Positions => (long)Batch * OutHeight * OutWidth;

    /// <summary>Input plane.</summary>
    public long InPlane => (long)Height * Width;

    /// <summary>Output plane.</summary>
    public long OutPlane => (long)OutHeight * OutWidth;

    /// <summary>Floats of the reduction buffer.</summary>
    public int SharedFloats => Taps * Threads;

    /// <summary>The first stride of the tree (half the block).</summary>
    public int HalfThreads => Threads / 2;

    /// <summary>(u, v, tap) of every tap: its row offset and column offset into the input.</summary>
    public IReadOnlyList<TapOffset> TapOffsets => Enumerable.Range(0, Taps)
        .Select(k => new TapOffset(k, k / KernelWidth * DilationY - PadY, k % KernelWidth * DilationX - PadX))
        .ToArray();
}

/// <summary>
/// One tap of a weight-gradient kernel: index, and the offsets from the output position to the input element it reads.
/// </summary>
public sealed record TapOffset(int Index, int Dy, int Dx);
