using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>
/// y = x·scale[c] + shift[c] over an (outer, C, inner) view, split over rows; what batch_norm (eval) and
/// scale_bias share. Scale and shift are filled by the owner before each run.
/// </summary>
internal sealed class ChannelAffine
{
    private readonly int _outer, _c, _inner, _parts;
    private readonly Action<int> _part;
    private Buf _x, _y;

    public ChannelAffine(int outer, int c, int inner)
    {
        (_outer, _c, _inner) = (outer, c, inner);
        Scale = new float[c];
        Shift = new float[c];
        // with inner = 1 a row is the C channels of one outer index (NC or channels-last input)
        _parts = Par.Parts((long)outer * c * inner, inner == 1 ? outer : (long)outer * c);
        _part = Part;
    }

    public float[] Scale { get; }

    public float[] Shift { get; }

    public void Run(Buf x, Buf y)
    {
        (_x, _y) = (x, y);
        Par.Run(_parts, _part);
    }

    private void Part(int p)
    {
        ReadOnlySpan<float> x = _x.Span;
        var y = _y.Span;
        if (_inner == 1)
        {
            var (s, e) = Par.Range(p, _parts, _outer);
            for (int o = s; o < e; o++) Simd.Affine(x.Slice(o * _c, _c), Scale, Shift, y.Slice(o * _c, _c));
        }
        else
        {
            var (s, e) = Par.Range(p, _parts, (long)_outer * _c);
            for (int row = s; row < e; row++)
            {
                int ch = row % _c;
                Simd.Affine(x.Slice(row * _inner, _inner), Scale[ch], Shift[ch], y.Slice(row * _inner, _inner));
            }
        }
    }
}

/// <summary>
/// batch_norm. Eval: the running statistics folded per run into one scale and shift per channel (in double, from
/// the input buffers, since the statistics need not be constants). Train: per channel (split over channels) the
/// batch mean and biased variance (<see cref="BatchStats"/>), y = (x − mean)·w/√(var + eps) + b, and the updated
/// running statistics (1 − m)·running + m·batch, with the unbiased variance, in double as the reference does.
/// </summary>
public sealed class BatchNormKernel : CpuKernel
{
    private readonly double _eps, _momentum;
    private readonly ChannelAffine? _affine;
    private readonly int _n, _c, _inner, _parts;
    private readonly Action<int> _part;
    private Buf[] _in = [], _out = [];

    /// <summary>Binds the kernel to a node.</summary>
    public BatchNormKernel(KernelRequest r)
    {
        var (op, _) = KernelCheck.Prepare<BatchNorm>(r);
        (_eps, _momentum) = (op.Eps, op.Momentum);
        var x = r.InputTypes[0].Shape;
        int count = KernelCheck.Count(r, x);
        (_n, _c) = (x[0], x[1]);
        _inner = count / Math.Max(1, _n * _c);
        if (op.Mode == Mode.Eval) _affine = new ChannelAffine(x[0], x[1], _inner);
        _parts = Par.Parts(count * 4L, _c);
        _part = TrainPart;
    }

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        if (_affine is null)
        {
            (_in, _out) = (inputs, outputs);
            Par.Run(_parts, _part);
            return;
        }
        ReadOnlySpan<float> w = inputs[1].Span, b = inputs[2].Span, mean = inputs[3].Span, var = inputs[4].Span;
        for (int c = 0; c < w.Length; c++)
        {
            double s = w[c] / Math.Sqrt(var[c] + _eps);
            _affine.Scale[c] = (float)s;
            _affine.Shift[c] = (float)(b[c] - mean[c] * s);
        }
        _affine.Run(inputs[0], outputs[0]);
    }

    private void TrainPart(int p)
    {
        ReadOnlySpan<float> x = _in[0].Span, w = _in[1].Span, b = _in[2].Span, rm = _in[3].Span, rv = _in[4].Span;
        Span<float> y = _out[0].Span, newMean = _out[1].Span, newVar = _out[2].Span;
        long count = (long)_n * _inner;
        var (s, e) = Par.Range(p, _parts, _c);
        for (int ch = s; ch < e; ch++)
        {
            var (mean, var) = BatchStats.Of(x, ch, _n, _c, _inner);
            float m = (float)mean, scale = (float)(w[ch] / Math.Sqrt(var + _eps));
            for (int bi = 0; bi < _n; bi++)
            {
                int at = (bi * _c + ch) * _inner;
                GradSimd.ShiftScale(x.Slice(at, _inner), m, scale, b[ch], y.Slice(at, _inner));
            }
            newMean[ch] = (float)((1 - _momentum) * rm[ch] + _momentum * mean);
            newVar[ch] = (float)((1 - _momentum) * rv[ch] + _momentum * var * count / (count - 1));
        }
    }
}

/// <summary>
/// The batch statistics of one channel of an (N, C, inner) tensor, shared by batch_norm's train forward and grad.
/// </summary>
internal static class BatchStats
{
    /// <summary>
    /// Mean and biased variance in double: row sums in float lanes added in double, then squared deviations from
    /// the float-rounded mean, corrected for its rounding (Σ(x − m)² = Σ(x − μ)² + count·(μ − m)²).
    /// </summary>
    public static (double Mean, double Var) Of(ReadOnlySpan<float> x, int ch, int n, int c, int inner)
    {
        double s = 0;
        for (int b = 0; b < n; b++) s += Simd.Sum(x.Slice((b * c + ch) * inner, inner));
        long count = (long)n * inner;
        double mean = s / count;
        float m = (float)mean;
        double q = 0;
        for (int b = 0; b < n; b++) q += Simd.SumSqDev(x.Slice((b * c + ch) * inner, inner), m);
        double dm = mean - m;
        return (mean, Math.Max(0, q / count - dm * dm));
    }
}

/// <summary>scale_bias: y = x·scale[c] + bias[c] along any axis.</summary>
public sealed class ScaleBiasKernel : CpuKernel
{
    private readonly ChannelAffine _affine;

    /// <summary>Binds the kernel to a node.</summary>
    public ScaleBiasKernel(KernelRequest r)
    {
        var (op, _) = KernelCheck.Prepare<ScaleBias>(r);
        var x = r.InputTypes[0].Shape;
        int a = x.Axis(op.Axis), c = x[a];
        int inner = (int)x.Strides()[a];
        _affine = new ChannelAffine(KernelCheck.Count(r, x) / Math.Max(1, c * inner), c, inner);
    }

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        inputs[1].Span.CopyTo(_affine.Scale);
        inputs[2].Span.CopyTo(_affine.Shift);
        _affine.Run(inputs[0], outputs[0]);
    }
}

/// <summary>
/// layer_norm with biased variance (two passes: mean, then squared deviations, which stays accurate where
/// E[x²] − E[x]² would cancel). A contiguous normalised axis (channels_last, or channels_first with nothing after
/// the channels) works row by row; channels_first on NCHW works on blocks of positions, channels in the outer loop
/// and positions in vectors, with per-part scratch for the block's statistics.
/// </summary>
public sealed class LayerNormKernel : CpuKernel
{
    /// <summary>Positions per block: small enough that the block of every channel stays in L2.</summary>
    private const int Block = 256;

    private readonly float _eps;
    private readonly int _outer, _c, _inner, _blocks, _parts;
    private readonly float[][] _mean, _inv;
    private readonly Action<int> _part;
    private Buf _x, _w, _b, _y;

    /// <summary>Binds the kernel to a node.</summary>
    public LayerNormKernel(KernelRequest r)
    {
        var (op, _) = KernelCheck.Prepare<LayerNorm>(r);
        var x = r.InputTypes[0].Shape;
        int a = op.Axis(x.Rank);
        _eps = (float)op.Eps;
        _c = x[a];
        _inner = (int)x.Strides()[a];
        _outer = KernelCheck.Count(r, x) / Math.Max(1, _c * _inner);
        _blocks = _inner == 1 ? 1 : (_inner + Block - 1) / Block;
        _parts = Par.Parts(x.Elements * 4, (long)_outer * _blocks);
        int scratch = _inner == 1 ? 0 : Math.Min(Block, _inner);
        _mean = Enumerable.Range(0, _parts).Select(_ => new float[scratch]).ToArray();
        _inv = Enumerable.Range(0, _parts).Select(_ => new float[scratch]).ToArray();
        _part = Part;
    }

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        (_x, _w, _b, _y) = (inputs[0], inputs[1], inputs[2], outputs[0]);
        Par.Run(_parts, _part);
    }

    private void Part(int p)
    {
        ReadOnlySpan<float> x = _x.Span, w = _w.Span, b = _b.Span;
        var y = _y.Span;
        var (s, e) = Par.Range(p, _parts, (long)_outer * _blocks);
        for (int item = s; item < e; item++)
        {
            if (_inner == 1)
            {
                Row(x.Slice(item * _c, _c), w, b, y.Slice(item * _c, _c));
                continue;
            }
            int o = item / _blocks, k0 = item % _blocks * Block, len = Math.Min(Block, _inner - k0);
            Strided(x, w, b, y, o * _c * _inner + k0, len, _mean[p].AsSpan(0, len), _inv[p].AsSpan(0, len));
        }
    }

    private void Row(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> b, Span<float> y)
    {
        float mean = (float)(Simd.Sum(x) / _c);
        float inv = (float)(1 / Math.Sqrt(Simd.SumSqDev(x, mean) / _c + _eps));
        Simd.Affine(x, inv, -mean * inv, y);
        Simd.Affine(y, w, b, y);
    }

    /// <summary>Normalises <paramref name="len"/> positions from <paramref name="at"/>; channel stride inner.</summary>
    private void Strided(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> b, Span<float> y, int at,
        int len, Span<float> mean, Span<float> inv)
    {
        mean.Clear();
        for (int c = 0; c < _c; c++) Simd.AddTo(x.Slice(at + c * _inner, len), mean);
        Simd.MulScalar(mean, 1f / _c, mean);
        var vm = MemoryMarshal.Cast<float, Vector256<float>>(mean);
        var vi = MemoryMarshal.Cast<float, Vector256<float>>(inv);
        int tail = vm.Length * 8;
        inv.Clear();
        for (int c = 0; c < _c; c++)
        {
            var xr = x.Slice(at + c * _inner, len);
            var vx = MemoryMarshal.Cast<float, Vector256<float>>(xr);
            for (int i = 0; i < vx.Length; i++)
            {
                var d = vx[i] - vm[i];
                vi[i] = Vector256.FusedMultiplyAdd(d, d, vi[i]);
            }
            for (int i = tail; i < len; i++) inv[i] += (xr[i] - mean[i]) * (xr[i] - mean[i]);
        }
        var scale = Vector256.Create(1f / _c);
        var eps = Vector256.Create(_eps);
        for (int i = 0; i < vi.Length; i++) vi[i] = Vector256<float>.One / Vector256.Sqrt(vi[i] * scale + eps);
        for (int i = tail; i < len; i++) inv[i] = 1 / MathF.Sqrt(inv[i] / _c + _eps);
        for (int c = 0; c < _c; c++)
        {
            var xr = x.Slice(at + c * _inner, len);
            var yr = y.Slice(at + c * _inner, len);
            var vx = MemoryMarshal.Cast<float, Vector256<float>>(xr);
            var vy = MemoryMarshal.Cast<float, Vector256<float>>(yr);
            var (wc, bc) = (Vector256.Create(w[c]), Vector256.Create(b[c]));
            for (int i = 0; i < vx.Length; i++) vy[i] = Vector256.FusedMultiplyAdd((vx[i] - vm[i]) * vi[i], wc, bc);
            for (int i = tail; i < len; i++) yr[i] = (xr[i] - mean[i]) * inv[i] * w[c] + b[c];
        }
    }
}

/// <summary>
/// grn on NHWC: per sample, the L2 norm of each channel over (H, W) (float sums over blocks of rows, added in
/// double so long sums of squares keep their precision), then one multiplier per channel and a fused
/// y = x·f[c] + β[c] over rows. Split over samples, with per-part scratch.
/// </summary>
public sealed class GrnKernel : CpuKernel
{
    private const int RowBlock = 64;

    private readonly double _eps;
    private readonly int _n, _hw, _c, _parts;
    private readonly bool _hasBeta;
    private readonly float[][] _block, _factor;
    private readonly double[][] _sum;
    private readonly Action<int> _part;
    private Buf _x, _gamma, _beta, _y;

    /// <summary>Binds the kernel to a node.</summary>
    public GrnKernel(KernelRequest r)
    {
        var (op, _) = KernelCheck.Prepare<Grn>(r);
        var x = r.InputTypes[0].Shape;
        (_n, _hw, _c) = (x[0], x[1] * x[2], x[3]);
        _eps = op.Eps;
        _hasBeta = r.InputTypes.Count == 3;
        _parts = Par.Parts(KernelCheck.Count(r, x) * 4L, _n);
        _block = Enumerable.Range(0, _parts).Select(_ => new float[_c]).ToArray();
        _factor = Enumerable.Range(0, _parts).Select(_ => new float[_c]).ToArray();
        _sum = Enumerable.Range(0, _parts).Select(_ => new double[_c]).ToArray();
        _part = Part;
    }

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        (_x, _gamma, _y) = (inputs[0], inputs[1], outputs[0]);
        _beta = _hasBeta ? inputs[2] : default;
        Par.Run(_parts, _part);
    }

    private void Part(int p)
    {
        ReadOnlySpan<float> x = _x.Span, gamma = _gamma.Span;
        var y = _y.Span;
        float[] block = _block[p], f = _factor[p];
        double[] sum = _sum[p];
        var (s, e) = Par.Range(p, _parts, _n);
        for (int b = s; b < e; b++)
        {
            var xb = x.Slice(b * _hw * _c, _hw * _c);
            var yb = y.Slice(b * _hw * _c, _hw * _c);
            Array.Clear(sum);
            for (int r0 = 0; r0 < _hw; r0 += RowBlock)
            {
                Array.Clear(block);
                var vb = MemoryMarshal.Cast<float, Vector256<float>>(block.AsSpan());
                for (int row = r0; row < Math.Min(_hw, r0 + RowBlock); row++)
                {
                    var xr = xb.Slice(row * _c, _c);
                    var vx = MemoryMarshal.Cast<float, Vector256<float>>(xr);
                    for (int i = 0; i < vx.Length; i++) vb[i] = Vector256.FusedMultiplyAdd(vx[i], vx[i], vb[i]);
                    for (int i = vx.Length * 8; i < _c; i++) block[i] += xr[i] * xr[i];
                }
                for (int c = 0; c < _c; c++) sum[c] += block[c];
            }
            double mean = 0;
            for (int c = 0; c < _c; c++)
            {
                sum[c] = Math.Sqrt(sum[c]);
                mean += sum[c];
            }
            mean /= _c;
            for (int c = 0; c < _c; c++) f[c] = (float)(gamma[c] * (sum[c] / (mean + _eps)) + 1);
            for (int row = 0; row < _hw; row++)
            {
                var xr = xb.Slice(row * _c, _c);
                var yr = yb.Slice(row * _c, _c);
                if (_hasBeta) Simd.Affine(xr, f, _beta.Span, yr);
                else Simd.Mul(xr, f, yr);
            }
        }
    }
}
