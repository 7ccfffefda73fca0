using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>Grad kernels of conv2d, shift_add and linear.</summary>
internal static class ConvGradKernels
{
    /// <summary>A kernel for a grad node of one of these ops.</summary>
    public static CpuKernel Create(KernelRequest r, Grad g) => g.Of switch
    {
        Conv2d => new Conv2dGradKernel(r),
        Linear => new LinearGradKernel(r),
        ShiftAdd => new ShiftAddGradKernel(r),
        _ => new ReferenceGradKernel(r),
    };

    /// <summary>Per-run gradient buffer of a seeding node (dy=[]): the loss's gradient, one.</summary>
    internal static Buf Ones(int length)
    {
        var a = new float[length];
        Array.Fill(a, 1f);
        return Buf.Of(a);
    }
}

/// <summary>The shape arithmetic of one conv2d: x (N, C, H, W), weight (O, C/G, kh, kw), y (N, O, Ho, Wo).</summary>
internal readonly record struct ConvGeom(int N, int C, int H, int W, int O, int Cpg, int Kh, int Kw, int Ho, int Wo,
    int Groups, int S0, int S1, int P0, int P1, int D0, int D1)
{
    /// <summary>Output channels per group.</summary>
    public int Opg => O / Groups;

    /// <summary>GEMM depth: one column of im2col, C/G·kh·kw.</summary>
    public int K => Cpg * Kh * Kw;

    /// <summary>Output positions per plane.</summary>
    public int P => Ho * Wo;

    /// <summary>Input positions per plane.</summary>
    public int Plane => H * W;

    /// <summary>Taps per filter.</summary>
    public int Taps => Kh * Kw;

    /// <summary>The geometry of a conv on x (N, C, H, W) with weight (O, C/G, kh, kw).</summary>
    public static ConvGeom Of(Conv2d op, IR.Shape x, IR.Shape w) =>
        new(x[0], x[1], x[2], x[3], w[0], w[1], w[2], w[3], op.OutSize(x[2], w[2], 0), op.OutSize(x[3], w[3], 1),
            op.Groups, op.Stride[0], op.Stride[1], op.Padding[0], op.Padding[1], op.Dilation[0], op.Dilation[1]);
}

/// <summary>
/// The grad of conv2d in float32: the gradients of x, the weight and the bias, any subset. Depthwise convs (one
/// input channel per group, more than one group) run as direct loops (<see cref="DepthwiseConvGrad"/>); everything
/// else as im2col + GEMM (<see cref="GemmConvGrad"/>). The bias gradient is the sum of dY over (batch, position),
/// one output channel per part, summed over the batch in order.
/// </summary>
public sealed class Conv2dGradKernel : GradKernel
{
    private readonly ConvGeom _g;
    private readonly GemmConvGrad? _gemm;
    private readonly DepthwiseConvGrad? _dw;
    private readonly Buf _ones;
    private readonly int _biasParts;
    private readonly Action<int> _biasPart;
    private Buf _dy, _db;

    /// <summary>Binds the kernel to a grad node of conv2d.</summary>
    public Conv2dGradKernel(KernelRequest r) : base(r)
    {
        var op = (Conv2d)Op.Of;
        var x = InputTypes[0].Shape;
        KernelCheck.Count(r, x);
        KernelCheck.Count(r, OutputTypes[0].Shape);
        _g = ConvGeom.Of(op, x, InputTypes[1].Shape);
        bool wx = Wants(0), ww = Wants(1);
        if (_g.Cpg == 1 && _g.Groups > 1) _dw = new DepthwiseConvGrad(r, _g, wx, ww);
        else if (wx || ww) _gemm = new GemmConvGrad(r, _g, wx, ww);
        if (Seeds) _ones = ConvGradKernels.Ones(_g.N * _g.O * _g.P);
        _biasParts = Par.Parts((long)_g.N * _g.O * _g.P, _g.O);
        _biasPart = BiasPart;
    }

    /// <inheritdoc/>
    public override string Label =>
        $"{nameof(Conv2dGradKernel)}[{_dw?.Mode ?? _gemm?.Mode ?? "bias"}]";

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        _dy = Gy(inputs, 0) ?? _ones;
        Buf? dx = Gx(outputs, 0), dw = Gx(outputs, 1);
        _dw?.Run(X(inputs, 0), X(inputs, 1), _dy, dx, dw);
        _gemm?.Run(X(inputs, 0), X(inputs, 1), _dy, dx, dw);
        if (N == 3 && Gx(outputs, 2) is { } db)
        {
            _db = db;
            Par.Run(_biasParts, _biasPart);
        }
    }

    private void BiasPart(int p)
    {
        ReadOnlySpan<float> dy = _dy.Span;
        var db = _db.Span;
        var (s, e) = Par.Range(p, _biasParts, _g.O);
        int plane = _g.P;
        for (int o = s; o < e; o++)
        {
            double acc = 0;
            for (int b = 0; b < _g.N; b++) acc += Simd.Sum(dy.Slice((b * _g.O + o) * plane, plane));
            db[o] = (float)acc;
        }
    }
}
