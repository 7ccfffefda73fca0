using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>
/// The x and weight gradients of a depthwise conv2d (one input channel per group, O/G outputs each: the SW small
/// convs have O/G = n) as direct loops, in two passes with their own partitions:
/// <list type="bullet">
/// <item>dX, one (sample, channel) plane per item: on tiny planes (at most 64 (output, input, tap) triples touch the
/// image: the last stages) a loop over those triples; otherwise with stride one it is the correlation of the group's dY
/// planes, each zero-padded by (k−1)·d − p, with the flipped filters, computed on the plane rounded up to 4×8
/// blocks (four rows of eight outputs in registers across every output channel and tap, no scalar tails) and copied
/// out; otherwise each tap's rows are added onto the positions they read.</item>
/// <item>dW, output channels split over the parts (tiny planes: the triples again): per channel the sum over the batch
/// (in order, in double) of the k·k dot products of its dY plane (zero-padded to 4×8 blocks) with the shifted input
/// plane (zero-padded once per sample and channel), four rows at a time into separate accumulators.</item>
/// </list>
/// </summary>
internal sealed class DepthwiseConvGrad
{
    private readonly ConvGeom _g;
    /// <summary>At most this many (output, input, tap) triples take the triple-list path.</summary>
    private const int MaxPairs = 64;

    private readonly bool _wx, _ww, _unit;
    // tiny planes (the last stages: 2×2, 1×1 inputs): every (output position, input position, tap) that touches the
    // image, packed as p | q << 10 | t << 20 (empty when there are more than MaxPairs)
    private readonly int[] _pairs;
    private readonly int _xParts, _wParts;
    // stride one, dX: output rounded up to (hr, wr) = (4·⌈H/4⌉, 8·⌈W/8⌉), dY planes padded to hp×wp
    private readonly int _hr, _wr, _hp, _wp;
    // stride one, dW: dY rounded up to (dh, dw) = (4·⌈Ho/4⌉, 8·⌈Wo/8⌉), x padded to xh×xw
    private readonly int _dh, _dwd, _xh, _xw;
    private readonly float[][] _padX, _padW;
    private readonly double[][] _acc;
    private readonly Action<int> _xPart, _wPart;
    private Buf _x, _w, _dy, _dx, _dw;

    public DepthwiseConvGrad(KernelRequest r, ConvGeom g, bool wantX, bool wantW)
    {
        (_g, _wx, _ww) = (g, wantX, wantW);
        _pairs = Pairs(g);
        _unit = g.S0 == 1 && g.S1 == 1 && _pairs.Length == 0;
        long work = (long)g.N * g.O * g.P * g.Taps;
        _xParts = Par.Parts(work, (long)g.N * g.C);
        _wParts = Par.Parts(work, g.O);
        (_hr, _wr) = (Round(g.H, 4), Round(g.W, 8));
        (_hp, _wp) = (_hr + (g.Kh - 1) * g.D0, _wr + (g.Kw - 1) * g.D1);
        (_dh, _dwd) = (Round(g.Ho, 4), Round(g.Wo, 8));
        (_xh, _xw) = (_dh + (g.Kh - 1) * g.D0, _dwd + (g.Kw - 1) * g.D1);
        long needX = _unit && wantX ? (long)g.Opg * _hp * _wp + (long)_hr * _wr : 0;
        long needW = _unit && wantW ? (long)_dh * _dwd + (long)_xh * _xw : 0;
        if (Math.Max(needX, needW) > Array.MaxLength) throw KernelCheck.Fail(r, "padded planes are too large");
        _padX = Enumerable.Range(0, _xParts).Select(_ => new float[needX]).ToArray();
        _padW = Enumerable.Range(0, _wParts).Select(_ => new float[needW]).ToArray();
        _acc = Enumerable.Range(0, _wParts).Select(_ => new double[(long)g.Opg * g.Taps]).ToArray();
        (_xPart, _wPart) = (XPart, WPart);
    }

    private static int Round(int v, int m) => (v + m - 1) / m * m;

    /// <summary>The triples of a geometry with at most <see cref="MaxPairs"/> of them, in (tap, output) order; else
    /// none.</summary>
    private static int[] Pairs(in ConvGeom g)
    {
        if (g.P > 1023 || g.Plane > 1023 || g.Taps > 1023) return [];
        var list = new List<int>();
        for (int t = 0; t < g.Taps; t++)
        {
            int u = t / g.Kw, v = t % g.Kw;
            for (int p = 0; p < g.P; p++)
            {
                int yy = p / g.Wo * g.S0 - g.P0 + u * g.D0, xx = p % g.Wo * g.S1 - g.P1 + v * g.D1;
                if (yy < 0 || yy >= g.H || xx < 0 || xx >= g.W) continue;
                if (list.Count == MaxPairs) return [];
                list.Add(p | (yy * g.W + xx) << 10 | t << 20);
            }
        }
        return [.. list];
    }

    /// <summary>Which schedule runs, for timing tables.</summary>
    public string Mode =>
        _pairs.Length > 0 ? $"depthwise pairs x{_pairs.Length}" : _unit ? "depthwise" : "depthwise clipped";

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
        int padPlane = _hp * _wp, qy = (g.Kh - 1) * g.D0 - g.P0, qx = (g.Kw - 1) * g.D1 - g.P1;
        var pads = _unit ? _padX[p].AsSpan(0, g.Opg * padPlane) : default;
        var out8 = _unit ? _padX[p].AsSpan(g.Opg * padPlane, _hr * _wr) : default;
        for (int bc = s; bc < e; bc++)
        {
            int b = bc / g.C, c = bc % g.C;
            var plane = dx.Slice(bc * g.Plane, g.Plane);
            var dyc = dy.Slice((b * g.O + c * g.Opg) * g.P, g.Opg * g.P);
            var wc = w.Slice(c * g.Opg * g.Taps, g.Opg * g.Taps);
            if (_pairs.Length > 0)
            {
                plane.Clear();
                for (int o = 0; o < g.Opg; o++)
                {
                    var dyo = dyc.Slice(o * g.P, g.P);
                    var wo = wc.Slice(o * g.Taps, g.Taps);
                    foreach (int k in _pairs) plane[k >> 10 & 1023] += dyo[k & 1023] * wo[k >> 20];
                }
                continue;
            }
            if (!_unit)
            {
                Scatter(g, dyc, wc, plane);
                continue;
            }
            for (int o = 0; o < g.Opg; o++)
            {
                Shifted(dyc.Slice(o * g.P, g.P), g.Ho, g.Wo, qy, qx, pads.Slice(o * padPlane, padPlane), _hp, _wp);
            }
            Flipped(pads, g.Opg, padPlane, _wp, wc, g, out8, _hr, _wr);
            for (int i = 0; i < g.H; i++) out8.Slice(i * _wr, g.W).CopyTo(plane.Slice(i * g.W, g.W));
        }
    }

    /// <summary>dst(r, c) = src(r − qy, c − qx) on an hp×wp plane, zero where that falls outside src.</summary>
    internal static void Shifted(ReadOnlySpan<float> src, int sh, int sw, int qy, int qx, Span<float> dst, int hp,
        int wp)
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
    /// out(i, j) = Σ_o Σ_{u,v} pad_o(i + u·d0, j + v·d1) · w_o(kh−1−u, kw−1−v) over an hr×wr plane (hr a
    /// multiple of 4, wr of 8): blocks of four rows by eight columns, four independent accumulators across every output
    /// channel and tap. The planes of <paramref name="pads"/> are <paramref name="stride"/> apart, rows of wp.
    /// </summary>
    private static void Flipped(ReadOnlySpan<float> pads, int planes, int stride, int wp, ReadOnlySpan<float> w,
        in ConvGeom g, Span<float> output, int hr, int wr)
    {
        int kh = g.Kh, kw = g.Kw, taps = g.Taps, d0 = g.D0, d1 = g.D1;
        if (pads.Length < (planes - 1) * stride + (hr + (kh - 1) * d0) * wp || wr + (kw - 1) * d1 > wp
            || w.Length < planes * taps || output.Length < hr * wr)
        {
            throw new ArgumentException("transposed depthwise operands are too small");
        }
        ref float p0 = ref MemoryMarshal.GetReference(pads);
        ref float w0 = ref MemoryMarshal.GetReference(w);
        ref float y0 = ref MemoryMarshal.GetReference(output);
        nuint r1 = (nuint)wp, r2 = 2 * r1, r3 = 3 * r1;
        for (int i = 0; i < hr; i += 4)
        for (int j = 0; j < wr; j += 8)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int o = 0; o < planes; o++)
            for (int u = 0; u < kh; u++)
            {
                nuint row = (nuint)(o * stride + (i + u * d0) * wp + j);
                int wrow = o * taps + (kh - 1 - u) * kw + kw - 1;
                for (int v = 0; v < kw; v++)
                {
                    var wv = Vector256.Create(Unsafe.Add(ref w0, wrow - v));
                    nuint at = row + (nuint)(v * d1);
                    a0 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref p0, at), wv, a0);
                    a1 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref p0, at + r1), wv, a1);
                    a2 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref p0, at + r2), wv, a2);
                    a3 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref p0, at + r3), wv, a3);
                }
            }
            nuint y = (nuint)(i * wr + j);
            a0.StoreUnsafe(ref y0, y);
            a1.StoreUnsafe(ref y0, y + (nuint)wr);
            a2.StoreUnsafe(ref y0, y + (nuint)(2 * wr));
            a3.StoreUnsafe(ref y0, y + (nuint)(3 * wr));
        }
    }

    /// <summary>Any stride: the plane cleared, then each output channel's taps added onto the positions they
    /// read.</summary>
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
                for (int j = jlo; j < jhi; j++)
                {
                    dst[j * g.S1 + off] = MathF.FusedMultiplyAdd(wv, src[j], dst[j * g.S1 + off]);
                }
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
        var dyp = _unit ? _padW[p].AsSpan(0, _dh * _dwd) : default;
        var xp = _unit ? _padW[p].AsSpan(_dh * _dwd, _xh * _xw) : default;
        for (int c = s / g.Opg; c <= (e - 1) / g.Opg; c++)
        {
            int oa = Math.Max(s, c * g.Opg), ob = Math.Min(e, (c + 1) * g.Opg);
            acc.Clear();
            for (int b = 0; b < g.N; b++)
            {
                var xc = x.Slice((b * g.C + c) * g.Plane, g.Plane);
                if (_unit) Shifted(xc, g.H, g.W, g.P0, g.P1, xp, _xh, _xw);
                for (int o = oa; o < ob; o++)
                {
                    var dyo = dy.Slice((b * g.O + o) * g.P, g.P);
                    var ao = acc.Slice((o - oa) * g.Taps, g.Taps);
                    if (_pairs.Length > 0)
                    {
                        foreach (int k in _pairs) ao[k >> 20] += (double)dyo[k & 1023] * xc[k >> 10 & 1023];
                        continue;
                    }
                    if (!_unit)
                    {
                        StridedDots(g, dyo, xc, ao);
                        continue;
                    }
                    Shifted(dyo, g.Ho, g.Wo, 0, 0, dyp, _dh, _dwd);
                    Dots(g, dyp, _dh, _dwd, xp, _xw, ao);
                }
            }
            for (int o = oa; o < ob; o++)
            {
                for (int t = 0; t < g.Taps; t++) dw[o * g.Taps + t] = (float)acc[(o - oa) * g.Taps + t];
            }
        }
    }

    /// <summary>
    /// acc(u, v) += Σ_{i,j} dy(i, j)·xp(i + u·d0, j + v·d1) with dy zero-padded to dh×dw (multiples of 4 and 8)
    /// and xp the input zero-padded by p (rows of xw): four rows at a time, each into its own accumulator.
    /// </summary>
    private static void Dots(in ConvGeom g, ReadOnlySpan<float> dy, int dh, int dw, ReadOnlySpan<float> xp, int xw,
        Span<double> acc)
    {
        if (dy.Length < dh * dw || xp.Length < (dh + (g.Kh - 1) * g.D0) * xw || dw + (g.Kw - 1) * g.D1 > xw)
        {
            throw new ArgumentException("depthwise weight-gradient operands are too small");
        }
        ref float d0 = ref MemoryMarshal.GetReference(dy);
        ref float x0 = ref MemoryMarshal.GetReference(xp);
        nuint e1 = (nuint)dw, x1 = (nuint)xw;
        for (int u = 0; u < g.Kh; u++)
        for (int v = 0; v < g.Kw; v++)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int i = 0; i < dh; i += 4)
            {
                nuint dr = (nuint)(i * dw), xr = (nuint)((i + u * g.D0) * xw + v * g.D1);
                for (int j = 0; j < dw; j += 8)
                {
                    nuint dj = dr + (nuint)j, xj = xr + (nuint)j;
                    a0 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref d0, dj),
                        Vector256.LoadUnsafe(ref x0, xj), a0);
                    a1 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref d0, dj + e1),
                        Vector256.LoadUnsafe(ref x0, xj + x1), a1);
                    a2 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref d0, dj + 2 * e1),
                        Vector256.LoadUnsafe(ref x0, xj + 2 * x1), a2);
                    a3 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref d0, dj + 3 * e1),
                        Vector256.LoadUnsafe(ref x0, xj + 3 * x1), a3);
                }
            }
            acc[u * g.Kw + v] += Vector256.Sum((a0 + a1) + (a2 + a3));
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
