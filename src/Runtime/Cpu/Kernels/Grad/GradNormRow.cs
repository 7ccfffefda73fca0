using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>
/// layer_norm: per position, x̂ = (x − mean)·inv and gx = inv·(g·w − mean(g·w) − x̂·mean(g·w·x̂)); gw =
/// Σ g·x̂ and gb = Σ g over positions. The per-position statistics and gx are formed in double lanes: over few
/// channels the gradient is a small difference of its terms (two channels leave it about eps/var of them), which
/// float32 would lose. A contiguous axis (channels_last) works row by row; channels_first on NCHW works on blocks of
/// positions with the channels in the outer loop, as the forward. The weight and bias sums go through
/// <see cref="ColumnSums"/> (float partials per row chunk or per block, added in a fixed order in double), so no
/// result depends on the partitioning.
/// </summary>
internal sealed class LayerNormGradKernel : ElementGradKernel
{
    private const int Block = 128;

    private readonly double _eps;
    private readonly int _outer, _c, _inner, _blocks, _parts;
    private readonly ColumnSums _sums;
    private readonly double[][] _mean, _inv, _sd, _sdx;
    private readonly Action<int> _part;
    private Buf _x, _w, _g;
    private Buf? _gx;
    private bool _wantSums;

    public LayerNormGradKernel(KernelRequest r) : base(r)
    {
        var op = (LayerNorm)Op.Of;
        var x = InputTypes[0].Shape;
        int a = op.Axis(x.Rank);
        _eps = op.Eps;
        (_c, _inner) = (x[a], (int)x.Strides()[a]);
        _outer = Count(r, x) / Math.Max(1, _c * _inner);
        if (_inner == 1)
        {
            _sums = new ColumnSums(_outer, _c, 2);
            _blocks = 1;
            _parts = Par.Parts(x.Elements * 12, _sums.Chunks);
        }
        else
        {
            _blocks = (_inner + Block - 1) / Block;
            _sums = new ColumnSums(_outer * _blocks, _c, 2, 1);
            _parts = Par.Parts(x.Elements * 12, (long)_outer * _blocks);
        }
        // blocks: mean, inv, Σg·w and Σg·w·x̂ of each position of one block
        int len = _inner == 1 ? 0 : Math.Min(Block, _inner);
        double[][] Scratch() => Enumerable.Range(0, _parts).Select(_ => new double[len]).ToArray();
        (_mean, _inv, _sd, _sdx) = (Scratch(), Scratch(), Scratch(), Scratch());
        _part = Part;
    }

    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        (_x, _w, _g, _gx) = (X(inputs, 0), X(inputs, 1), Dy(inputs), Gx(outputs, 0));
        _wantSums = Wants(1) || Wants(2);
        Par.Run(_parts, _part);
        if (Gx(outputs, 1) is { } gw) _sums.Total(0, gw.Span);
        if (Gx(outputs, 2) is { } gb) _sums.Total(1, gb.Span);
    }

    private void Part(int p)
    {
        if (_inner == 1)
        {
            var (cs, ce) = Par.Range(p, _parts, _sums.Chunks);
            for (int chunk = cs; chunk < ce; chunk++)
            {
                var (r0, r1) = _sums.Rows(chunk);
                Span<float> gwp = _sums.Partial(chunk, 0), gbp = _sums.Partial(chunk, 1);
                for (int row = r0; row < r1; row++) Row(row, gwp, gbp);
            }
            return;
        }
        var (s, e) = Par.Range(p, _parts, (long)_outer * _blocks);
        for (int item = s; item < e; item++) Strided(p, item);
    }

    private void Row(int row, Span<float> gwp, Span<float> gbp)
    {
        var x = _x.Span.Slice(row * _c, _c);
        var g = _g.Span.Slice(row * _c, _c);
        ReadOnlySpan<float> w = _w.Span;
        double mean = GradSimd.SumD(x) / _c;
        double inv = 1 / Math.Sqrt(GradSimd.SumSqDevD(x, mean) / _c + _eps);
        var (sd, sdx) = GradSimd.LayerNormSums(x, g, w, mean, inv, gwp, gbp, _wantSums);
        if (_gx is { } gx) GradSimd.LayerNormRow(x, g, w, mean, inv, sd / _c, sdx / _c, gx.Span.Slice(row * _c, _c));
    }

    /// <summary>One block of positions of one outer index, eight at a time (two double vectors); the channel stride is
    /// inner.</summary>
    private void Strided(int p, int item)
    {
        int o = item / _blocks, k0 = item % _blocks * Block, len = Math.Min(Block, _inner - k0);
        int at = o * _c * _inner + k0;
        ReadOnlySpan<float> xs = _x.Span, gs = _g.Span, w = _w.Span;
        Span<double> mean = _mean[p].AsSpan(0, len), inv = _inv[p].AsSpan(0, len);
        Span<double> sd = _sd[p].AsSpan(0, len), sdx = _sdx[p].AsSpan(0, len);
        var vm = MemoryMarshal.Cast<double, Vector256<double>>(mean);
        var vi = MemoryMarshal.Cast<double, Vector256<double>>(inv);
        var vd = MemoryMarshal.Cast<double, Vector256<double>>(sd);
        var vdx = MemoryMarshal.Cast<double, Vector256<double>>(sdx);
        int n8 = len / 8, tail = n8 * 8;
        mean.Clear();
        inv.Clear();
        sd.Clear();
        sdx.Clear();
        for (int c = 0; c < _c; c++)
        {
            var x = xs.Slice(at + c * _inner, len);
            var vx = MemoryMarshal.Cast<float, Vector256<float>>(x);
            for (int i = 0; i < n8; i++)
            {
                var (lo, hi) = Vector256.Widen(vx[i]);
                vm[2 * i] += lo;
                vm[2 * i + 1] += hi;
            }
            for (int i = tail; i < len; i++) mean[i] += x[i];
        }
        for (int i = 0; i < len; i++) mean[i] /= _c;
        for (int c = 0; c < _c; c++)
        {
            var x = xs.Slice(at + c * _inner, len);
            var vx = MemoryMarshal.Cast<float, Vector256<float>>(x);
            for (int i = 0; i < n8; i++)
            {
                var (lo, hi) = Vector256.Widen(vx[i]);
                var (dl, dh) = (lo - vm[2 * i], hi - vm[2 * i + 1]);
                vi[2 * i] = Vector256.FusedMultiplyAdd(dl, dl, vi[2 * i]);
                vi[2 * i + 1] = Vector256.FusedMultiplyAdd(dh, dh, vi[2 * i + 1]);
            }
            for (int i = tail; i < len; i++) inv[i] += (x[i] - mean[i]) * (x[i] - mean[i]);
        }
        for (int i = 0; i < len; i++) inv[i] = 1 / Math.Sqrt(inv[i] / _c + _eps);
        // Σ_c g·w and Σ_c g·w·x̂ per position; Σ_k g·x̂ and Σ_k g per channel into this block's partials
        Span<float> gwp = _sums.Partial(item, 0), gbp = _sums.Partial(item, 1);
        for (int c = 0; c < _c; c++)
        {
            var x = xs.Slice(at + c * _inner, len);
            var g = gs.Slice(at + c * _inner, len);
            var vx = MemoryMarshal.Cast<float, Vector256<float>>(x);
            var vg = MemoryMarshal.Cast<float, Vector256<float>>(g);
            var wc = Vector256.Create((double)w[c]);
            var (accW, accB) = (Vector256<double>.Zero, Vector256<double>.Zero);
            for (int i = 0; i < n8; i++)
            {
                var (xl, xh) = Vector256.Widen(vx[i]);
                var (gl, gh) = Vector256.Widen(vg[i]);
                var hl = (xl - vm[2 * i]) * vi[2 * i];
                var hh = (xh - vm[2 * i + 1]) * vi[2 * i + 1];
                var (dl, dh) = (gl * wc, gh * wc);
                vd[2 * i] += dl;
                vd[2 * i + 1] += dh;
                vdx[2 * i] = Vector256.FusedMultiplyAdd(dl, hl, vdx[2 * i]);
                vdx[2 * i + 1] = Vector256.FusedMultiplyAdd(dh, hh, vdx[2 * i + 1]);
                accW = Vector256.FusedMultiplyAdd(gh, hh, Vector256.FusedMultiplyAdd(gl, hl, accW));
                accB += gl + gh;
            }
            double sw = Vector256.Sum(accW), sb = Vector256.Sum(accB);
            for (int i = tail; i < len; i++)
            {
                double h = (x[i] - mean[i]) * inv[i], d = (double)g[i] * w[c];
                sd[i] += d;
                sdx[i] += d * h;
                sw += g[i] * h;
                sb += g[i];
            }
            gwp[c] = (float)sw;
            gbp[c] = (float)sb;
        }
        if (_gx is not { } gxb) return;
        var gxs = gxb.Span;
        for (int i = 0; i < len; i++)
        {
            sd[i] /= _c;
            sdx[i] /= _c;
        }
        for (int c = 0; c < _c; c++)
        {
            var x = xs.Slice(at + c * _inner, len);
            var g = gs.Slice(at + c * _inner, len);
            var dst = gxs.Slice(at + c * _inner, len);
            var vx = MemoryMarshal.Cast<float, Vector256<float>>(x);
            var vg = MemoryMarshal.Cast<float, Vector256<float>>(g);
            var vy = MemoryMarshal.Cast<float, Vector256<float>>(dst);
            var wc = Vector256.Create((double)w[c]);
            for (int i = 0; i < n8; i++)
            {
                var (xl, xh) = Vector256.Widen(vx[i]);
                var (gl, gh) = Vector256.Widen(vg[i]);
                var lo = vi[2 * i]
                    * Vector256.FusedMultiplyAdd(-(xl - vm[2 * i]) * vi[2 * i], vdx[2 * i], gl * wc - vd[2 * i]);
                var hi = vi[2 * i + 1] * Vector256.FusedMultiplyAdd(-(xh - vm[2 * i + 1]) * vi[2 * i + 1],
                    vdx[2 * i + 1], gh * wc - vd[2 * i + 1]);
                vy[i] = Vector256.Narrow(lo, hi);
            }
            for (int i = tail; i < len; i++)
            {
                dst[i] = (float)(inv[i] * ((double)g[i] * w[c] - sd[i] - (x[i] - mean[i]) * inv[i] * sdx[i]));
            }
        }
    }
}

/// <summary>
/// grn on NHWC, split over samples. Per sample one pass of column sums over the rows (Σx², Σg·x, Σg: float blocks
/// of 64 rows added in double), then per channel G = √Σx², D = mean G + eps, a = γ·Σg·x and
/// gx = g·(γ·G/D + 1) + x·(a/D − Σa·G/(C·D²))/G (the second term absent where G = 0); the γ and β sums are
/// kept per sample and added in sample order.
/// </summary>
internal sealed class GrnGradKernel : ElementGradKernel
{
    private const int RowBlock = 64;

    private readonly double _eps;
    private readonly int _n, _hw, _c, _parts;
    private readonly float[][] _block, _f, _h;
    private readonly double[][] _sum;
    private readonly double[] _gg, _gbeta;
    private readonly Action<int> _part;
    private Buf _x, _gamma, _g;
    private Buf? _gx;

    public GrnGradKernel(KernelRequest r) : base(r)
    {
        _eps = ((Grn)Op.Of).Eps;
        var x = InputTypes[0].Shape;
        (_n, _hw, _c) = (x[0], x[1] * x[2], x[3]);
        _parts = Par.Parts(Count(r, x) * 6L, _n);
        _block = Enumerable.Range(0, _parts).Select(_ => new float[3 * _c]).ToArray();
        _sum = Enumerable.Range(0, _parts).Select(_ => new double[3 * _c]).ToArray();
        _f = Enumerable.Range(0, _parts).Select(_ => new float[_c]).ToArray();
        _h = Enumerable.Range(0, _parts).Select(_ => new float[_c]).ToArray();
        _gg = new double[_n * _c];
        _gbeta = new double[_n * _c];
        _part = Part;
    }

    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        (_x, _gamma, _g, _gx) = (X(inputs, 0), X(inputs, 1), Dy(inputs), Gx(outputs, 0));
        Par.Run(_parts, _part);
        if (Gx(outputs, 1) is { } gg) Total(_gg, gg.Span);
        if (N == 3 && Gx(outputs, 2) is { } gb) Total(_gbeta, gb.Span);
    }

    private void Total(double[] perSample, Span<float> into)
    {
        for (int c = 0; c < _c; c++)
        {
            double s = 0;
            for (int b = 0; b < _n; b++) s += perSample[b * _c + c];
            into[c] = (float)s;
        }
    }

    private void Part(int p)
    {
        ReadOnlySpan<float> gamma = _gamma.Span;
        var block = _block[p].AsSpan();
        var sum = _sum[p].AsSpan();
        Span<float> bq = block[.._c], bs = block.Slice(_c, _c), bg = block.Slice(2 * _c, _c);
        Span<double> sq = sum[.._c], sgx = sum.Slice(_c, _c), sg = sum.Slice(2 * _c, _c);
        float[] f = _f[p], h = _h[p];
        var (s, e) = Par.Range(p, _parts, _n);
        for (int b = s; b < e; b++)
        {
            var xb = _x.Span.Slice(b * _hw * _c, _hw * _c);
            var gb = _g.Span.Slice(b * _hw * _c, _hw * _c);
            sum.Clear();
            for (int r0 = 0; r0 < _hw; r0 += RowBlock)
            {
                block.Clear();
                for (int row = r0; row < Math.Min(_hw, r0 + RowBlock); row++)
                {
                    var xr = xb.Slice(row * _c, _c);
                    var gr = gb.Slice(row * _c, _c);
                    GradSimd.MulAddTo(xr, xr, bq);
                    GradSimd.MulAddTo(gr, xr, bs);
                    Simd.AddTo(gr, bg);
                }
                GradSimd.Widen(block, sum);
            }
            double mean = 0;
            for (int c = 0; c < _c; c++)
            {
                sq[c] = Math.Sqrt(sq[c]);
                mean += sq[c];
            }
            double d = mean / _c + _eps, sumAG = 0;
            for (int c = 0; c < _c; c++)
            {
                double nrm = sq[c] / d;
                _gg[b * _c + c] = sgx[c] * nrm;
                _gbeta[b * _c + c] = sg[c];
                f[c] = (float)(gamma[c] * nrm + 1);
                sumAG += gamma[c] * sgx[c] * sq[c];
            }
            if (_gx is not { } gxb) continue;
            for (int c = 0; c < _c; c++)
            {
                h[c] = sq[c] == 0 ? 0f : (float)((gamma[c] * sgx[c] / d - sumAG / (_c * d * d)) / sq[c]);
            }
            var gx = gxb.Span.Slice(b * _hw * _c, _hw * _c);
            for (int row = 0; row < _hw; row++)
            {
                GradSimd.MulMul(gb.Slice(row * _c, _c), f, xb.Slice(row * _c, _c), h, gx.Slice(row * _c, _c));
            }
        }
    }
}
