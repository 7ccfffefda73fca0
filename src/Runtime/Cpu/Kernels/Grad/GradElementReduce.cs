using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>
/// softmax: gx = y·(g − Σ g·y) along the axis, from the forward output. A contiguous axis works row by row (the
/// dot in float lanes added in double); otherwise blocks of positions with the axis in the outer loop and per-part
/// scratch for the block's dot products, as the forward does.
/// </summary>
internal sealed class SoftmaxGradKernel : ElementGradKernel
{
    private const int Block = 256;

    private readonly int _outer, _c, _inner, _blocks, _parts;
    private readonly float[][] _dot;
    private readonly Action<int> _part;
    private Buf _y, _g, _gx;

    public SoftmaxGradKernel(KernelRequest r) : base(r)
    {
        var x = InputTypes[0].Shape;
        int a = x.Axis(((Softmax)Op.Of).Axis);
        (_c, _inner) = (x[a], (int)x.Strides()[a]);
        _outer = Count(r, x) / Math.Max(1, _c * _inner);
        _blocks = _inner == 1 ? 1 : (_inner + Block - 1) / Block;
        _parts = Par.Parts(x.Elements * 4, (long)_outer * _blocks);
        int scratch = _inner == 1 ? 0 : Math.Min(Block, _inner);
        _dot = Enumerable.Range(0, _parts).Select(_ => new float[scratch]).ToArray();
        _part = Part;
    }

    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        (_y, _g, _gx) = (Y(inputs, 0), Dy(inputs), Gx(outputs, 0)!.Value);
        if (_c > 0 && _inner > 0) Par.Run(_parts, _part);
    }

    private void Part(int p)
    {
        ReadOnlySpan<float> y = _y.Span, g = _g.Span;
        var gx = _gx.Span;
        var (s, e) = Par.Range(p, _parts, (long)_outer * _blocks);
        for (int item = s; item < e; item++)
        {
            if (_inner == 1)
            {
                var yr = y.Slice(item * _c, _c);
                var gr = g.Slice(item * _c, _c);
                GradSimd.SoftmaxRow(yr, gr, (float)GradSimd.Dot(gr, yr), gx.Slice(item * _c, _c));
                continue;
            }
            int o = item / _blocks, k0 = item % _blocks * Block, len = Math.Min(Block, _inner - k0);
            int at = o * _c * _inner + k0;
            var dot = _dot[p].AsSpan(0, len);
            dot.Clear();
            for (int c = 0; c < _c; c++)
            {
                GradSimd.MulAddTo(g.Slice(at + c * _inner, len), y.Slice(at + c * _inner, len), dot);
            }
            for (int c = 0; c < _c; c++)
            {
                int ci = at + c * _inner;
                GradSimd.SoftmaxCols(y.Slice(ci, len), g.Slice(ci, len), dot, gx.Slice(ci, len));
            }
        }
    }
}

/// <summary>
/// cross_entropy: ∂loss/∂z = g·(p − (1−ε)·onehot − ε/k)/n per row (g the loss gradient, one for the
/// seed), with p the max-shifted softmax of the row (sum in double). Labels are checked as the forward checks them;
/// they get no gradient. Split over rows when there are enough.
/// </summary>
internal sealed class CrossEntropyGradKernel : ElementGradKernel
{
    private readonly double _smoothing;
    private readonly int _n, _k, _parts;
    private readonly Action<int> _part;
    private Buf _logits, _labels, _gx;
    private float _scale;

    public CrossEntropyGradKernel(KernelRequest r) : base(r)
    {
        _smoothing = ((CrossEntropy)Op.Of).LabelSmoothing;
        (_n, _k) = (InputTypes[0].Shape[0], InputTypes[0].Shape[1]);
        if (_k >= 1 << 24)
        {
            throw KernelCheck.Fail(r, $"{_k} classes: labels as float cannot represent every class index");
        }
        _parts = Par.Parts((long)_n * _k * 16, _n);
        _part = Part;
    }

    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        (_logits, _labels, _gx) = (X(inputs, 0), X(inputs, 1), Gx(outputs, 0)!.Value);
        var labels = _labels.Span;
        for (int b = 0; b < _n; b++)
        {
            float label = labels[b];
            if (!(label >= 0 && label < _k && label == MathF.Floor(label)))
            {
                throw new IrException($"{Node}: label {label} of sample {b} is not a class index in [0, {_k})");
            }
        }
        _scale = Dy(inputs).Span[0];
        Par.Run(_parts, _part);
    }

    private void Part(int p)
    {
        ReadOnlySpan<float> logits = _logits.Span, labels = _labels.Span;
        var gx = _gx.Span;
        var (s, e) = Par.Range(p, _parts, _n);
        for (int b = s; b < e; b++)
        {
            var x = logits.Slice(b * _k, _k);
            var row = gx.Slice(b * _k, _k);
            float max = Simd.Max(x);
            ExpShift(x, max, row);
            // p at the label as 1 − Σ_others/sum, without the cancellation of p − 1 when the row is confident
            int label = (int)labels[b];
            double others = 0;
            for (int i = 0; i < _k; i++) others += i == label ? 0 : row[i];
            double sum = others + row[label];
            // g·(p − ε/k)/n for every class; at the label g·(p − 1 + ε − ε/k)/n
            double gn = (double)_scale / _n;
            Simd.Affine(row, (float)(gn / sum), (float)(-gn * _smoothing / _k), row);
            row[label] = (float)(gn * (_smoothing - _smoothing / _k - others / sum));
        }
    }

    /// <summary>y = e^(x − m) with the fast vector exp.</summary>
    private static void ExpShift(ReadOnlySpan<float> x, float m, Span<float> y)
    {
        var vx = MemoryMarshal.Cast<float, Vector256<float>>(x);
        var vy = MemoryMarshal.Cast<float, Vector256<float>>(y);
        var vm = Vector256.Create(m);
        for (int i = 0; i < vx.Length; i++) vy[i] = Activations.Exp(vx[i] - vm);
        for (int i = vx.Length * 8; i < x.Length; i++) y[i] = MathF.Exp(x[i] - m);
    }
}
