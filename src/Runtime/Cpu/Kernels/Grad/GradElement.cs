using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>Grad kernels of the norms, element-wise, reduction and layout ops.</summary>
internal static class ElementGradKernels
{
    /// <summary>A kernel for a grad node of one of these ops; the fused ops keep the float64 fallback.</summary>
    public static CpuKernel Create(KernelRequest r, Grad g) => g.Of switch
    {
        BatchNorm => new BatchNormGradKernel(r),
        LayerNorm => new LayerNormGradKernel(r),
        Grn => new GrnGradKernel(r),
        ScaleBias => new ScaleBiasGradKernel(r),
        Unary => new UnaryGradKernel(r),
        Binary => new BinaryGradKernel(r),
        Mean => new MeanGradKernel(r),
        Softmax => new SoftmaxGradKernel(r),
        CrossEntropy => new CrossEntropyGradKernel(r),
        DropPath => new DropPathGradKernel(r),
        ChannelSelect => new ChannelSelectGradKernel(r),
        Concat => new ConcatGradKernel(r),
        Permute => new PermuteGradKernel(r),
        Reshape => new ReshapeGradKernel(r),
        _ => new ReferenceGradKernel(r),
    };
}

/// <summary>
/// What the float32 grad kernels of this family share: the gradient of output 0 (given, or one for the loss seed),
/// the node's name for run-time errors, and a label naming the forward op.
/// </summary>
internal abstract class ElementGradKernel : GradKernel
{
    private readonly float[] _one = [1f];

    protected ElementGradKernel(KernelRequest r) : base(r) => Node = r.Node.Describe();

    /// <summary>The node, for messages.</summary>
    protected string Node { get; }

    /// <inheritdoc/>
    public override string Label => $"{GetType().Name}[{Op.Of.Name}]";

    /// <summary>The gradient of output 0: the given one, a single one for the seed, null when it does not reach the
    /// loss.</summary>
    protected Buf? G0(Buf[] inputs) => Seeds ? Buf.Of(_one) : Gy(inputs, 0);

    /// <summary>The gradient of the only output of a single-output op (its grad node always has one).</summary>
    protected Buf Dy(Buf[] inputs) => G0(inputs) ?? throw new InvalidOperationException($"{Node}: no output gradient");

    /// <summary>Element count of a shape (checked to fit a buffer).</summary>
    protected static int Count(KernelRequest r, Shape s) => KernelCheck.Count(r, s);
}

/// <summary>gelu, relu, sigmoid: gx = gy·f′, eight lanes at a time in parallel chunks.</summary>
internal sealed class UnaryGradKernel : ElementGradKernel
{
    private const int Chunk = 16384;
    private const float InvSqrt2 = 0.70710678118654752f, InvSqrt2Pi = 0.39894228040143268f;

    private readonly UnaryKind _kind;
    private readonly int _count, _parts;
    private readonly Action<int> _part;
    private Buf _x, _y, _g, _gx;

    public UnaryGradKernel(KernelRequest r) : base(r)
    {
        _kind = ((Unary)Op.Of).Kind;
        _count = Count(r, InputTypes[0].Shape);
        _parts = Par.Parts(_count * (_kind == UnaryKind.Gelu ? 40L : 4L), (_count + Chunk - 1) / Chunk);
        _part = Part;
    }

    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        (_x, _y, _g, _gx) = (X(inputs, 0), Y(inputs, 0), Dy(inputs), Gx(outputs, 0)!.Value);
        Par.Run(_parts, _part);
    }

    private void Part(int p)
    {
        var (s, e) = Par.Range(p, _parts, _count);
        for (int i = s; i < e; i += Chunk)
        {
            int len = Math.Min(Chunk, e - i);
            var src = _kind == UnaryKind.Sigmoid ? _y.Span.Slice(i, len) : _x.Span.Slice(i, len);
            Apply(_kind, src, _g.Span.Slice(i, len), _gx.Span.Slice(i, len));
        }
    }

    /// <summary>gx = g·f′ where f′ is computed from x (gelu, relu) or from y (sigmoid).</summary>
    private static void Apply(UnaryKind kind, ReadOnlySpan<float> src, ReadOnlySpan<float> g, Span<float> gx)
    {
        var vs = MemoryMarshal.Cast<float, Vector256<float>>(src);
        var vg = MemoryMarshal.Cast<float, Vector256<float>>(g);
        var vgx = MemoryMarshal.Cast<float, Vector256<float>>(gx);
        for (int i = 0; i < vgx.Length; i++) vgx[i] = vg[i] * Derivative(kind, vs[i]);
        int tail = vgx.Length * 8;
        if (tail == gx.Length) return;
        // the last partial vector through the same code on a padded copy: a result depends only on its inputs
        Span<float> pad = stackalloc float[8];
        pad.Clear();
        src[tail..].CopyTo(pad);
        var d = Derivative(kind, Vector256.Create<float>(pad));
        for (int i = tail; i < gx.Length; i++) gx[i] = g[i] * d[i - tail];
    }

    /// <summary>gelu: Φ(x) + x·φ(x); relu: 1 where x &gt; 0; sigmoid (from y): y·(1 − y).</summary>
    private static Vector256<float> Derivative(UnaryKind kind, Vector256<float> v)
    {
        switch (kind)
        {
            case UnaryKind.Gelu:
                var cdf = Vector256.Create(0.5f)
                    * (Vector256<float>.One + Activations.Erf(v * Vector256.Create(InvSqrt2)));
                var pdf = Activations.Exp(v * v * Vector256.Create(-0.5f)) * Vector256.Create(InvSqrt2Pi);
                return Vector256.FusedMultiplyAdd(v, pdf, cdf);
            case UnaryKind.Relu:
                return Vector256.ConditionalSelect(Vector256.GreaterThan(v, Vector256<float>.Zero),
                    Vector256<float>.One, Vector256<float>.Zero);
            default:
                return v * (Vector256<float>.One - v);
        }
    }
}

/// <summary>drop_path: gx = gy scaled by the forward's per-sample factor (one in eval mode).</summary>
internal sealed class DropPathGradKernel : ElementGradKernel
{
    private readonly DropPath _op;
    private readonly int _n, _per, _parts;
    private readonly float[] _factor;
    private readonly Action<int> _part;
    private Buf _g, _gx;

    public DropPathGradKernel(KernelRequest r) : base(r)
    {
        _op = (DropPath)Op.Of;
        var x = InputTypes[0].Shape;
        int count = Count(r, x);
        _n = x[0];
        _per = count / Math.Max(1, _n);
        _factor = new float[_n];
        _parts = Par.Parts(count, _n);
        _part = Part;
    }

    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        long step = N == 2 ? DropPathKernel.Step(X(inputs, 1)) : 0;
        for (int b = 0; b < _n; b++) _factor[b] = DropPathKernel.Factor(_op, b, step);
        (_g, _gx) = (Dy(inputs), Gx(outputs, 0)!.Value);
        Par.Run(_parts, _part);
    }

    private void Part(int p)
    {
        var (s, e) = Par.Range(p, _parts, _n);
        for (int b = s; b < e; b++)
        {
            var src = _g.Span.Slice(b * _per, _per);
            var dst = _gx.Span.Slice(b * _per, _per);
            if (_factor[b] == 1f) src.CopyTo(dst);
            else Simd.MulScalar(src, _factor[b], dst);
        }
    }
}

/// <summary>reshape: the gradient keeps its row-major order, a copy.</summary>
internal sealed class ReshapeGradKernel(KernelRequest r) : ElementGradKernel(r)
{
    public override void Run(Buf[] inputs, Buf[] outputs) => Dy(inputs).Span.CopyTo(Gx(outputs, 0)!.Value.Span);
}

/// <summary>permute: the output gradient permuted back, by the forward <see cref="PermuteKernel"/> with the inverse
/// permutation.</summary>
internal sealed class PermuteGradKernel : ElementGradKernel
{
    private readonly PermuteKernel _inverse;
    private readonly Buf[] _in = new Buf[1], _out = new Buf[1];

    public PermuteGradKernel(KernelRequest r) : base(r)
    {
        var perm = ((Permute)Op.Of).Perm;
        var inv = new int[perm.Count];
        for (int d = 0; d < inv.Length; d++) inv[perm[d]] = d;
        var op = new Permute(inv);
        var node = new Node(op, new[] { r.Node.Inputs[N] }, new[] { r.Node.Outputs[0] }, new[] { InputTypes[0] });
        _inverse = new PermuteKernel(new KernelRequest(node, [OutputTypes[0]], [null]));
    }

    public override string Label => $"{base.Label}:{_inverse.Label}";

    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        (_in[0], _out[0]) = (Dy(inputs), Gx(outputs, 0)!.Value);
        _inverse.Run(_in, _out);
    }
}
