using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>
/// The x and weight gradients of a depthwise conv2d (one input channel per group, O/G outputs each: the SW small
/// convs have O/G = n) as direct loops, in two passes with their own partitions:
/// <list type="bullet">
/// <item>dX, one (sample, channel) plane per item: with stride one it is the correlation of the group's dY planes,
/// each zero-padded by (k−1)·d − p, with the flipped filters — eight outputs per register across every output
/// channel and tap; with other strides each tap's rows are added onto the positions they read.</item>
/// <item>dW, output channels split over the parts: per channel the sum over the batch (in order, in double) of the
/// k·k dot products of its dY plane with the shifted input plane (zero-padded once per sample and channel).</item>
/// </list>
/// </summary>
internal sealed class DepthwiseConvGrad
{
    private readonly ConvGeom _g;
    private readonly bool _wx, _ww, _unit;
    private readonly int _xParts, _wParts, _hp, _wp, _xh, _xw;
    private readonly float[][] _pad;
    private readonly double[][] _acc;
    private readonly Action<int> _xPart, _wPart;
    private Buf _x, _w, _dy, _dx, _dw;

    public DepthwiseConvGrad(KernelRequest r, ConvGeom g, bool wantX, bool wantW)
    {
        (_g, _wx, _ww) = (g, wantX, wantW);
        _unit = g.S0 == 1 && g.S1 == 1;
        long work = (long)g.N * g.O * g.P * g.Taps;
        _xParts = Par.Parts(work, (long)g.N * g.C);
        _wParts = Par.Parts(work, g.O);
        // stride one: dY planes padded for the dX correlation, x planes padded for the dW dot products
        (_hp, _wp) = (g.H + (g.Kh - 1) * g.D0, g.W + (g.Kw - 1) * g.D1);
        (_xh, _xw) = (g.H + 2 * g.P0, g.W + 2 * g.P1);
        long need = !_unit ? 0 : Math.Max(wantX ? (long)g.Opg * _hp * _wp : 0, wantW ? (long)_xh * _xw : 0);
        if (need > Array.MaxLength) throw KernelCheck.Fail(r, $"padded planes of {need} floats are too large");
        _pad = Enumerable.Range(0, Math.Max(_xParts, _wParts)).Select(_ => new float[need]).ToArray();
        _acc = Enumerable.Range(0, _wParts).Select(_ => new double[(long)g.Opg * g.Taps]).ToArray();
        (_xPart, _wPart) = (XPart, WPart);
    }

    public void Run(Buf x, Buf w, Buf dy, Buf? dx, Buf? dw)
    {
        (_x, _w, _dy, _dx, _dw) = (x, w, dy, dx ?? default, dw ?? default);
        if (_wx) Par.Run(_xParts, _xPart);
        if (_ww) Par.Run(_wParts, _wPart);
    }

    private void XPart(int p)
    {
        var g = _g;
        ReadOnlySpan<float> dy = _dy.Span, w = _w.Span;
        var dx = _dx.Span;
        var (s, e) = Par.Range(p, _xParts, (long)g.N * g.C);
        for (int bc = s; bc < e; bc++)
        {
            int b = bc / g.C, c = bc % g.C;
            var plane = dx.Slice(bc * g.Plane, g.Plane);
            var dyc = dy.Slice((b * g.O + c * g.Opg) * g.P, g.Opg * g.P);
            var wc = w.Slice(c * g.Opg * g.Taps, g.Opg * g.Taps);
            if (!_unit)
            {
                Scatter(g, dyc, wc, plane);
                continue;
            }
            var pad = _pad[p].AsSpan(0, g.Opg * _hp * _wp);
            int qy = (g.Kh - 1) * g.D0 - g.P0, qx = (g.Kw - 1) * g.D1 - g.P1;
            for (int o = 0; o < g.Opg; o++)
            {
                Shifted(dyc.Slice(o * g.P, g.P), g.Ho, g.Wo, qy, qx, pad.Slice(o * _hp * _wp, _hp * _wp), _hp, _wp);
            }
            Flipped(pad, g.Opg, _hp * _wp, _wp, wc, g, plane);
        }
    }

    /// <summary>dst(r, c) = src(r − qy, c − qx) on an hp×wp plane, zero where that falls outside src.</summary>
    internal static void Shifted(ReadOnlySpan<float> src, int sh, int sw, int qy, int qx, Span<float> dst, int hp, int wp)
    {
        int c0 = Math.Clamp(qx, 0, wp), c1 = Math.Clamp(sw + qx, c0, wp);
        for (int rr = 0; rr < hp; rr++)
        {
            var row = dst.Slice(rr * wp, wp);
            int sr = rr - qy;
            if (sr < 0 || sr >= sh || c0 >= c1)
            {
                row.Clear();
                continue;
            }
            row[..c0].Clear();
            src.Slice(sr * sw + c0 - qx, c1 - c0).CopyTo(row[c0..c1]);
            row[c1..].Clear();
        }
    }

    /// <summary>
    /// dx(i, j) = Σ_o Σ_{u,v} pad_o(i + u·d0, j + v·d1) · w_o(kh−1−u, kw−1−v) over an H×W plane; the planes of
    /// <paramref name="pads"/> are <paramref name="stride"/> apart with rows of <paramref name="wp"/>.
    /// </summary>
    private static void Flipped(ReadOnlySpan<float> pads, int planes, int stride, int wp, ReadOnlySpan<float> w,
        in ConvGeom g, Span<float> dx)
    {
        int kh = g.Kh, kw = g.Kw, taps = g.Taps;
        ref float p0 = ref MemoryMarshal.GetReference(pads);
        ref float w0 = ref MemoryMarshal.GetReference(w);
        for (int i = 0; i < g.H; i++)
        {
            int j = 0;
            for (; j <= g.W - 8; j += 8)
            {
                var acc = Vector256<float>.Zero;
                for (int o = 0; o < planes; o++)
                {
                    for (int u = 0; u < kh; u++)
                    {
                        nuint row = (nuint)(o * stride + (i + u * g.D0) * wp + j);
                        int wr = o * taps + (kh - 1 - u) * kw + kw - 1;
                        for (int v = 0; v < kw; v++)
                        {
                            var xv = Vector256.LoadUnsafe(ref p0, row + (nuint)(v * g.D1));
                            acc = Vector256.FusedMultiplyAdd(xv, Vector256.Create(Unsafe.Add(ref w0, wr - v)), acc);
                        }
                    }
                }
                acc.StoreUnsafe(ref MemoryMarshal.GetReference(dx), (nuint)(i * g.W + j));
            }
            for (; j < g.W; j++)
            {
                float acc = 0;
                for (int o = 0; o < planes; o++)
                for (int u = 0; u < kh; u++)
                {
                    int row = o * stride + (i + u * g.D0) * wp + j, wr = o * taps + (kh - 1 - u) * kw + kw - 1;
                    for (int v = 0; v < kw; v++) acc = MathF.FusedMultiplyAdd(pads[row + v * g.D1], w[wr - v], acc);
                }
                dx[i * g.W + j] = acc;
            }
        }
    }

    /// <summary>Any stride: the plane cleared, then each output channel's taps added onto the positions they read.</summary>
    private static void Scatter(in ConvGeom g, ReadOnlySpan<float> dyc, ReadOnlySpan<float> wc, Span<float> dx)
    {
        dx.Clear();
        for (int o = 0; o < g.Opg; o++)
        for (int u = 0; u < g.Kh; u++)
        for (int v = 0; v < g.Kw; v++)
        {
            float wv = wc[(o * g.Kh + u) * g.Kw + v];
            int off = v * g.D1 - g.P1;
            var (jlo, jhi) = Conv2dKernel.Valid(off, g.S1, g.W, g.Wo);
            for (int i = 0; i < g.Ho; i++)
            {
                int yy = i * g.S0 - g.P0 + u * g.D0;
                if (yy < 0 || yy >= g.H) continue;
                var src = dyc.Slice(o * g.P + i * g.Wo, g.Wo);
                var dst = dx.Slice(yy * g.W, g.W);
                for (int j = jlo; j < jhi; j++) dst[j * g.S1 + off] = MathF.FusedMultiplyAdd(wv, src[j], dst[j * g.S1 + off]);
            }
        }
    }

    private void WPart(int p)
    {
        var g = _g;
        ReadOnlySpan<float> x = _x.Span, dy = _dy.Span;
        var dw = _dw.Span;
        var acc = _acc[p].AsSpan();
        var (s, e) = Par.Range(p, _wParts, g.O);
        if (s >= e) return;
        for (int c = s / g.Opg; c <= (e - 1) / g.Opg; c++)
        {
            int oa = Math.Max(s, c * g.Opg), ob = Math.Min(e, (c + 1) * g.Opg);
            acc.Clear();
            for (int b = 0; b < g.N; b++)
            {
                var xc = x.Slice((b * g.C + c) * g.Plane, g.Plane);
                Span<float> xp = default;
                if (_unit)
                {
                    xp = _pad[p].AsSpan(0, _xh * _xw);
                    Shifted(xc, g.H, g.W, g.P0, g.P1, xp, _xh, _xw);
                }
                for (int o = oa; o < ob; o++)
                {
                    var dyo = dy.Slice((b * g.O + o) * g.P, g.P);
                    var ao = acc.Slice((o - oa) * g.Taps, g.Taps);
                    if (_unit) Dots(g, dyo, xp, _xw, ao);
                    else StridedDots(g, dyo, xc, ao);
                }
            }
            for (int o = oa; o < ob; o++)
            {
                for (int t = 0; t < g.Taps; t++) dw[o * g.Taps + t] = (float)acc[(o - oa) * g.Taps + t];
            }
        }
    }

    /// <summary>acc(u, v) += Σ_{i,j} dy(i, j)·xp(i + u·d0, j + v·d1), xp the input zero-padded by p (rows of xw).</summary>
    private static void Dots(in ConvGeom g, ReadOnlySpan<float> dy, ReadOnlySpan<float> xp, int xw, Span<double> acc)
    {
        ref float d0 = ref MemoryMarshal.GetReference(dy);
        ref float x0 = ref MemoryMarshal.GetReference(xp);
        int wo8 = g.Wo & ~7;
        for (int u = 0; u < g.Kh; u++)
        for (int v = 0; v < g.Kw; v++)
        {
            var va = Vector256<float>.Zero;
            float sa = 0;
            for (int i = 0; i < g.Ho; i++)
            {
                nuint dr = (nuint)(i * g.Wo), xr = (nuint)((i + u * g.D0) * xw + v * g.D1);
                int j = 0;
                for (; j < wo8; j += 8)
                {
                    va = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref d0, dr + (nuint)j),
                        Vector256.LoadUnsafe(ref x0, xr + (nuint)j), va);
                }
                for (; j < g.Wo; j++) sa = MathF.FusedMultiplyAdd(dy[(int)dr + j], xp[(int)xr + j], sa);
            }
            acc[u * g.Kw + v] += (double)Vector256.Sum(va) + sa;
        }
    }

    /// <summary>As <see cref="Dots"/> for any stride, clipping to the image instead of padding.</summary>
    private static void StridedDots(in ConvGeom g, ReadOnlySpan<float> dy, ReadOnlySpan<float> x, Span<double> acc)
    {
        for (int u = 0; u < g.Kh; u++)
        for (int v = 0; v < g.Kw; v++)
        {
            int off = v * g.D1 - g.P1;
            var (jlo, jhi) = Conv2dKernel.Valid(off, g.S1, g.W, g.Wo);
            float sum = 0;
            for (int i = 0; i < g.Ho; i++)
            {
                int yy = i * g.S0 - g.P0 + u * g.D0;
                if (yy < 0 || yy >= g.H) continue;
                var dr = dy.Slice(i * g.Wo, g.Wo);
                var xr = x.Slice(yy * g.W, g.W);
                for (int j = jlo; j < jhi; j++) sum = MathF.FusedMultiplyAdd(dr[j], xr[j * g.S1 + off], sum);
            }
            acc[u * g.Kw + v] += sum;
        }
    }
}
