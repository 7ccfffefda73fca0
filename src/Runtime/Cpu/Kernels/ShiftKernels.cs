using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>
/// shift_add, the gather form of SPEC 1.5: for each (sample, rep channel) every sub-channel's shifted row is added
/// onto the output rows it reaches. Clipping is only along the shifted axis, so each contribution is one
/// contiguous span per row (horizontal) or one whole row (vertical, identity), added with vectors.
/// </summary>
public sealed class ShiftAddKernel : CpuKernel
{
    private readonly ShiftAdd _s;
    private readonly int _batch, _rn, _hin, _win, _h, _w, _parts;
    private readonly Action<int> _part;
    private Buf _x, _yh, _yv, _yi;

    /// <summary>Binds the kernel to a node.</summary>
    public ShiftAddKernel(KernelRequest r)
    {
        (_s, _) = KernelCheck.Prepare<ShiftAdd>(r);
        var x = r.InputTypes[0].Shape;
        (_batch, _rn, _hin, _win) = (x[0], x[1], x[2], x[3]);
        (_h, _w) = (_hin - 2 * _s.Extra, _win - 2 * _s.Extra);
        KernelCheck.Count(r, x);
        _parts = Par.Parts(x.Elements * 3L * _s.NRep, (long)_batch * _s.Rep);
        _part = Part;
    }

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        (_x, _yh, _yv, _yi) = (inputs[0], outputs[0], outputs[1], outputs[2]);
        Par.Run(_parts, _part);
    }

    private void Part(int p)
    {
        ReadOnlySpan<float> x = _x.Span;
        int r = _s.Rep, n = _s.N, e = _s.Extra, plane = _h * _w, inPlane = _hin * _win;
        var (s, end) = Par.Range(p, _parts, (long)_batch * r);
        for (int bo = s; bo < end; bo++)
        {
            int b = bo / r, o = bo % r;
            var yh = _yh.Span.Slice(bo * plane, plane);
            var yv = _yv.Span.Slice(bo * plane, plane);
            var yi = _yi.Span.Slice(bo * plane, plane);
            yh.Clear();
            yv.Clear();
            yi.Clear();
            for (int g = 0; g < _s.NRep; g++)
            {
                for (int j = 0; j < n; j++)
                {
                    int t = o * n + j;
                    var xt = x.Slice((b * _rn + t) * inPlane, inPlane);
                    SwGather.Horizontal(xt, yh, _h, _w, _win, e, _s.ShiftH(t, g), 1f);
                    SwGather.Vertical(xt, yv, _h, _w, _hin, _win, e, _s.ShiftV(t, g), 1f);
                }
                var xi = x.Slice((b * _rn + _s.Identity(o, g)) * inPlane, inPlane);
                for (int yy = 0; yy < _h; yy++) Simd.AddTo(xi.Slice((yy + e) * _win + e, _w), yi.Slice(yy * _w, _w));
            }
        }
    }
}

/// <summary>The row arithmetic of the SW gather, shared by shift_add and the factorised SW kernels.</summary>
internal static class SwGather
{
    /// <summary>y(yy, xx) += a·X(yy+e, xx − sh) for 0 ≤ xx − sh &lt; win; X is hin×win, y is h×w.</summary>
    public static void Horizontal(ReadOnlySpan<float> x, Span<float> y, int h, int w, int win, int e, int sh, float a)
    {
        int lo = Math.Max(0, sh), hi = Math.Min(w, win + sh);
        if (lo >= hi) return;
        for (int yy = 0; yy < h; yy++)
        {
            var src = x.Slice((yy + e) * win + lo - sh, hi - lo);
            var dst = y.Slice(yy * w + lo, hi - lo);
            if (a == 1f) Simd.AddTo(src, dst);
            else Simd.Axpy(a, src, dst);
        }
    }

    /// <summary>y(yy, xx) += a·X(yy − sv, xx+e) for 0 ≤ yy − sv &lt; hin.</summary>
    public static void Vertical(ReadOnlySpan<float> x, Span<float> y, int h, int w, int hin, int win, int e, int sv,
        float a)
    {
        int lo = Math.Max(0, sv), hi = Math.Min(h, hin + sv);
        for (int yy = lo; yy < hi; yy++)
        {
            var src = x.Slice((yy - sv) * win + e, w);
            var dst = y.Slice(yy * w, w);
            if (a == 1f) Simd.AddTo(src, dst);
            else Simd.Axpy(a, src, dst);
        }
    }
}

/// <summary>
/// The factorised SW layer on any tables, the definition of Reference/FusedKernels.SwCross: per (sample, rep
/// channel), the depthwise k×k conv (padding k−1) of each kept sub-kernel into per-part scratch, then the three
/// gathers scaled by a_h, a_v, a_i onto a_r·x + bias. Shared by sw_cross and fused_shiftwise, which differ only in
/// where a rep channel is read from and how many channels the output has.
/// </summary>
internal sealed class SwFactorised
{
    private readonly ShiftAdd _s;
    private readonly int[] _rep;
    private readonly int[][] _kept;
    private readonly int _batch, _inC, _outC, _h, _w, _hin, _win, _parts;
    private readonly float[][] _scratch;
    private readonly Action<int> _part;
    private Buf _x, _wt, _scales, _bias, _y;

    /// <param name="s">The tables.</param>
    /// <param name="subs">Kept sub-channels, ascending.</param>
    /// <param name="rep">Input channel of each rep channel.</param>
    /// <param name="x">The input shape (N, C, H, W).</param>
    /// <param name="outC">Output channels (the rep channels come first).</param>
    public SwFactorised(ShiftAdd s, IReadOnlyList<int> subs, int[] rep, Shape x, int outC)
    {
        _s = s;
        _rep = rep;
        (_batch, _inC, _h, _w, _outC) = (x[0], x[1], x[2], x[3], outC);
        (_hin, _win) = (_h + 2 * s.Extra, _w + 2 * s.Extra);
        int r = s.Rep, n = s.N, k = s.Small;
        // for rep channel o and local sub-channel j: the weight slot, or −1 where pruned
        _kept = new int[r][];
        for (int o = 0; o < r; o++) _kept[o] = Enumerable.Repeat(-1, n).ToArray();
        for (int i = 0; i < subs.Count; i++) _kept[subs[i] / n][subs[i] % n] = i;
        long work = (long)_batch * subs.Count * _hin * _win * k * k + (long)_batch * r * _h * _w * 2 * n * s.NRep;
        _parts = Par.Parts(work, (long)_batch * r);
        // n conv outputs, then the rep channel's plane zero-padded by k−1
        int padded = (_h + 2 * (k - 1)) * (_w + 2 * (k - 1));
        _scratch = Enumerable.Range(0, _parts).Select(_ => new float[n * _hin * _win + padded]).ToArray();
        _part = Part;
    }

    public void Run(Buf x, Buf weight, Buf scales, Buf bias, Buf y)
    {
        (_x, _wt, _scales, _bias, _y) = (x, weight, scales, bias, y);
        Par.Run(_parts, _part);
    }

    private void Part(int p)
    {
        ReadOnlySpan<float> wt = _wt.Span, sc = _scales.Span, bias = _bias.Span;
        int r = _s.Rep, n = _s.N, k = _s.Small, e = _s.Extra, plane = _h * _w, inPlane = _hin * _win;
        var scratch = _scratch[p].AsSpan();
        var (s, end) = Par.Range(p, _parts, (long)_batch * r);
        for (int bo = s; bo < end; bo++)
        {
            int b = bo / r, o = bo % r;
            ReadOnlySpan<float> xo = _x.Span.Slice((b * _inC + _rep[o]) * plane, plane);
            var y = _y.Span.Slice((b * _outC + o) * plane, plane);
            var padded = scratch[(n * inPlane)..];
            DirectConv.Pad(xo, _h, _w, k - 1, k - 1, padded);
            for (int j = 0; j < n; j++)
            {
                // X_j(yy, xx) = Σ w(u, v)·x(yy+u−p, xx+v−p), p = k−1: the padded plane read at (yy+u, xx+v)
                if (_kept[o][j] < 0) continue;
                DirectConv.Stride1(padded, _w + 2 * (k - 1), wt.Slice(_kept[o][j] * k * k, k * k), k, k, 1, 1, 0f,
                    scratch.Slice(j * inPlane, inPlane), _hin, _win);
            }
            Simd.Affine(xo, sc[3 * r + o], bias[o], y);
            float ah = sc[o], av = sc[r + o], ai = sc[2 * r + o];
            for (int g = 0; g < _s.NRep; g++)
            {
                for (int j = 0; j < n; j++)
                {
                    if (_kept[o][j] < 0) continue;
                    int t = o * n + j;
                    var xt = scratch.Slice(j * inPlane, inPlane);
                    SwGather.Horizontal(xt, y, _h, _w, _win, e, _s.ShiftH(t, g), ah);
                    SwGather.Vertical(xt, y, _h, _w, _hin, _win, e, _s.ShiftV(t, g), av);
                }
                int id = _s.Identity(o, g) - o * n;
                if (_kept[o][id] < 0) continue;
                var xi = scratch.Slice(id * inPlane, inPlane);
                for (int yy = 0; yy < _h; yy++) Simd.Axpy(ai, xi.Slice((yy + e) * _win + e, _w), y.Slice(yy * _w, _w));
            }
        }
    }
}

/// <summary>
/// sw_cross in factorised form, correct for any tables: the managed fallback that unoptimised graphs and tests
/// run. The fast path is the generated, collapsed cross kernel.
/// </summary>
public sealed class GenericSwLayerKernel : CpuKernel
{
    private readonly SwFactorised _sw;

    /// <summary>Binds the kernel to a node.</summary>
    public GenericSwLayerKernel(KernelRequest r)
    {
        var (op, _) = KernelCheck.Prepare<SwCross>(r);
        var x = r.InputTypes[0].Shape;
        KernelCheck.Count(r, x);
        _sw = new SwFactorised(op.Shift, op.Subs, Enumerable.Range(0, x[1]).ToArray(), x, x[1]);
    }

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs) =>
        _sw.Run(inputs[0], inputs[1], inputs[2], inputs[3], outputs[0]);
}

/// <summary>
/// fused_shiftwise in factorised form, correct for any tables: the rep channels through <see cref="SwFactorised"/>,
/// the ghost channels as y = x[ghost]·ghost_scale + bias. The managed fallback of the generated kernel.
/// </summary>
public sealed class GenericFusedShiftWiseKernel : CpuKernel
{
    private readonly SwFactorised _sw;
    private readonly int[] _ghost;
    private readonly int _batch, _inC, _outC, _r, _plane;

    /// <summary>Binds the kernel to a node.</summary>
    public GenericFusedShiftWiseKernel(KernelRequest r)
    {
        var (op, outs) = KernelCheck.Prepare<FusedShiftWise>(r);
        var x = r.InputTypes[0].Shape;
        KernelCheck.Count(r, x);
        KernelCheck.Count(r, outs[0].Shape);
        (_batch, _inC, _plane) = (x[0], x[1], x[2] * x[3]);
        _r = op.Rep.Count;
        _ghost = op.Ghost.ToArray();
        _outC = _r + _ghost.Length;
        _sw = new SwFactorised(op.Shift, op.Subs, op.Rep.ToArray(), x, _outC);
    }

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        _sw.Run(inputs[0], inputs[1], inputs[2], inputs[3], outputs[0]);
        ReadOnlySpan<float> x = inputs[0].Span, bias = inputs[3].Span, gs = inputs[4].Span;
        var y = outputs[0].Span;
        for (int b = 0; b < _batch; b++)
        {
            for (int j = 0; j < _ghost.Length; j++)
            {
                Simd.Affine(x.Slice((b * _inC + _ghost[j]) * _plane, _plane), gs[j], bias[_r + j],
                    y.Slice((b * _outC + _r + j) * _plane, _plane));
            }
        }
    }
}
