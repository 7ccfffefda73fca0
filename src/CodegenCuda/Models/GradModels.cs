using System.Globalization;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// The gradient of the SW shift-add (<see cref="ShiftAdd"/>) with respect to its input X (N, R·n, H+2e, W+2e), as the
/// adjoint gather of <c>Backward.Vjp</c>: one thread per element of dX sums, over the replicas g, the output-gradient
/// elements of each path in dy that read it. No atomics; the order of the sum is fixed. The shifts of every
/// (sub-channel, replica) and the identity multiplicity of every sub-channel are baked as constant tables, already
/// turned into plane offsets, so the kernel only adds an offset and tests two bounds per term.
/// </summary>
public sealed class ShiftAddGradModel : CudaKernelModel
{
    /// <summary>
    /// Builds the model for input <paramref name="x"/>; <paramref name="dy"/> lists the paths with a gradient (0 h, 1
    /// v, 2 identity).
    /// </summary>
    public ShiftAddGradModel(string name, int threads, ShiftAdd op, Shape x, IReadOnlyList<int> dy,
        KernelSignature signature)
        : base(name, "grad_shift_add", threads, x.Elements)
    {
        Parameters = signature.Declarations;
        if (dy.Count == 0 || dy.Any(d => d is < 0 or > 2))
        {
            throw new ArgumentException("dy must list paths among 0, 1, 2");
        }
        (Batch, SubChannels, InHeight, InWidth) = (x[0], x[1], x[2], x[3]);
        (Extra, N, Rep, NRep) = (op.Extra, op.N, op.Rep, op.NRep);
        Height = InHeight - 2 * Extra;
        Width = InWidth - 2 * Extra;
        HasH = dy.Contains(0);
        HasV = dy.Contains(1);
        HasI = dy.Contains(2);
        var inv = CultureInfo.InvariantCulture;
        int rn = Rep * N;
        // Y_h[b, o, yy, xx] reads X[b, t, yy + e, xx − sh]: dX[b, t, ii, jj] gets gh[b, o, ii − e, jj + sh]; the
        // offset of that element from (ii, jj) in gh's plane is −e·W + sh (column bounds: 0 ≤ jj + sh < W).
        ShiftsH = string.Join(", ", Enumerable.Range(0, rn)
            .SelectMany(t => Enumerable.Range(0, NRep).Select(g => op.ShiftH(t, g).ToString(inv))));
        // Y_v[b, o, yy, xx] reads X[b, t, yy − sv, xx + e]: dX[b, t, ii, jj] gets gv[b, o, ii + sv, jj − e]
        ShiftsV = string.Join(", ", Enumerable.Range(0, rn)
            .SelectMany(t => Enumerable.Range(0, NRep).Select(g => op.ShiftV(t, g).ToString(inv))));
        // Y_i[b, o, yy, xx] reads X[b, ident(o, g), yy + e, xx + e] once per replica g that picks t
        IdentityCounts = string.Join(", ", Enumerable.Range(0, rn).Select(t =>
            Enumerable.Range(0, NRep).Count(g => op.Identity(t / N, g) == t).ToString(inv)));
    }

    /// <summary>The entry's parameter list (fixed identifiers: dx, then gh, gv, gi for the paths in dy).</summary>
    public string Parameters { get; }

    /// <summary>N.</summary>
    public int Batch { get; }

    /// <summary>R·n, the channels of X.</summary>
    public int SubChannels { get; }

    /// <summary>Rows of X (H + 2e).</summary>
    public int InHeight { get; }

    /// <summary>Columns of X (W + 2e).</summary>
    public int InWidth { get; }

    /// <summary>Rows of the outputs.</summary>
    public int Height { get; }

    /// <summary>Columns of the outputs.</summary>
    public int Width { get; }

    /// <summary>e, the extra border of X.</summary>
    public int Extra { get; }

    /// <summary>Sub-kernels per rep channel.</summary>
    public int N { get; }

    /// <summary>R, the rep channels.</summary>
    public int Rep { get; }

    /// <summary>G, the replicas.</summary>
    public int NRep { get; }

    /// <summary>The horizontal path has a gradient.</summary>
    public bool HasH { get; }

    /// <summary>The vertical path has a gradient.</summary>
    public bool HasV { get; }

    /// <summary>The identity path has a gradient.</summary>
    public bool HasI { get; }

    /// <summary>Horizontal shift of (t, g), row-major t × G.</summary>
    public string ShiftsH { get; }

    /// <summary>Vertical shift of (t, g), row-major t × G.</summary>
    public string ShiftsV { get; }

    /// <summary>How many replicas pick sub-channel t for the identity path.</summary>
    public string IdentityCounts { get; }

    /// <summary>Threads in all: one per element of X.</summary>
    public long Work => (long)Batch * SubChannels * InHeight * InWidth;

    /// <summary>Plane of X.</summary>
    public long InPlane => (long)InHeight * InWidth;

    /// <summary>Plane of an output.</summary>
    public long OutPlane => (long)Height * Width;
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
