using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>
/// Vector loops the grad kernels share, beyond <see cref="Simd"/>: dot products summed in float lanes and then in
/// double (as <see cref="Simd.Sum"/>), and the fused element-wise forms of the backward rules. Scalar tails use
/// FMA like the vector body, so a result depends only on its position, never on the partitioning.
/// </summary>
internal static class GradSimd
{
    private static Span<Vector256<float>> V(Span<float> s) => MemoryMarshal.Cast<float, Vector256<float>>(s);

    private static ReadOnlySpan<Vector256<float>> V(ReadOnlySpan<float> s) =>
        MemoryMarshal.Cast<float, Vector256<float>>(s);

    private static double Lanes(Vector256<float> acc)
    {
        double s = 0;
        for (int l = 0; l < 8; l++) s += acc[l];
        return s;
    }

    /// <summary>Σ a·b.</summary>
    public static double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var va = V(a);
        var vb = V(b[..a.Length]);
        var acc = Vector256<float>.Zero;
        for (int i = 0; i < va.Length; i++) acc = Vector256.FusedMultiplyAdd(va[i], vb[i], acc);
        double s = Lanes(acc);
        for (int i = va.Length * 8; i < a.Length; i++) s += (double)a[i] * b[i];
        return s;
    }

    /// <summary>y = (x − m)·s + b.</summary>
    public static void ShiftScale(ReadOnlySpan<float> x, float m, float s, float b, Span<float> y)
    {
        var vx = V(x[..y.Length]);
        var vy = V(y);
        var (vm, vs, vb) = (Vector256.Create(m), Vector256.Create(s), Vector256.Create(b));
        for (int i = 0; i < vy.Length; i++) vy[i] = Vector256.FusedMultiplyAdd(vx[i] - vm, vs, vb);
        for (int i = vy.Length * 8; i < y.Length; i++) y[i] = MathF.FusedMultiplyAdd(x[i] - m, s, b);
    }

    /// <summary>y = g·f + x·h element-wise with vectors f and h (one row of the GRN gradient).</summary>
    public static void MulMul(ReadOnlySpan<float> g, ReadOnlySpan<float> f, ReadOnlySpan<float> x,
        ReadOnlySpan<float> h, Span<float> y)
    {
        var vg = V(g[..y.Length]);
        var vf = V(f[..y.Length]);
        var vx = V(x[..y.Length]);
        var vh = V(h[..y.Length]);
        var vy = V(y);
        for (int i = 0; i < vy.Length; i++) vy[i] = Vector256.FusedMultiplyAdd(vg[i], vf[i], vx[i] * vh[i]);
        for (int i = vy.Length * 8; i < y.Length; i++) y[i] = MathF.FusedMultiplyAdd(g[i], f[i], x[i] * h[i]);
    }

    /// <summary>acc += a·b element-wise.</summary>
    public static void MulAddTo(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> acc)
    {
        var va = V(a[..acc.Length]);
        var vb = V(b[..acc.Length]);
        var vacc = V(acc);
        for (int i = 0; i < vacc.Length; i++) vacc[i] = Vector256.FusedMultiplyAdd(va[i], vb[i], vacc[i]);
        for (int i = vacc.Length * 8; i < acc.Length; i++) acc[i] = MathF.FusedMultiplyAdd(a[i], b[i], acc[i]);
    }

    /// <summary>gx = y·(g − d) element-wise (the softmax gradient of a row with its dot product d).</summary>
    public static void SoftmaxRow(ReadOnlySpan<float> y, ReadOnlySpan<float> g, float d, Span<float> gx)
    {
        var vy = V(y[..gx.Length]);
        var vg = V(g[..gx.Length]);
        var vgx = V(gx);
        var vd = Vector256.Create(d);
        for (int i = 0; i < vgx.Length; i++) vgx[i] = vy[i] * (vg[i] - vd);
        for (int i = vgx.Length * 8; i < gx.Length; i++) gx[i] = y[i] * (g[i] - d);
    }

    /// <summary>gx = y·(g − d) element-wise with a vector d (the softmax gradient along a strided axis).</summary>
    public static void SoftmaxCols(ReadOnlySpan<float> y, ReadOnlySpan<float> g, ReadOnlySpan<float> d, Span<float> gx)
    {
        var vy = V(y[..gx.Length]);
        var vg = V(g[..gx.Length]);
        var vd = V(d[..gx.Length]);
        var vgx = V(gx);
        for (int i = 0; i < vgx.Length; i++) vgx[i] = vy[i] * (vg[i] - vd[i]);
        for (int i = vgx.Length * 8; i < gx.Length; i++) gx[i] = y[i] * (g[i] - d[i]);
    }

    // ---- double lanes: where the backward rule cancels (a normalisation over few values leaves a gradient much
    // smaller than its terms), the terms are formed and combined in double, four lanes at a time ----

    /// <summary>Σx in double.</summary>
    public static double SumD(ReadOnlySpan<float> x)
    {
        var vx = V(x);
        var acc = Vector256<double>.Zero;
        for (int i = 0; i < vx.Length; i++)
        {
            var (lo, hi) = Vector256.Widen(vx[i]);
            acc += lo + hi;
        }
        double s = Vector256.Sum(acc);
        for (int i = vx.Length * 8; i < x.Length; i++) s += x[i];
        return s;
    }

    /// <summary>Σ(x − m)² in double.</summary>
    public static double SumSqDevD(ReadOnlySpan<float> x, double m)
    {
        var vx = V(x);
        var vm = Vector256.Create(m);
        var acc = Vector256<double>.Zero;
        for (int i = 0; i < vx.Length; i++)
        {
            var (lo, hi) = Vector256.Widen(vx[i]);
            var (dl, dh) = (lo - vm, hi - vm);
            acc = Vector256.FusedMultiplyAdd(dh, dh, Vector256.FusedMultiplyAdd(dl, dl, acc));
        }
        double s = Vector256.Sum(acc);
        for (int i = vx.Length * 8; i < x.Length; i++) s += (x[i] - m) * (x[i] - m);
        return s;
    }

    /// <summary>Σg and Σg·(x − m) in double.</summary>
    public static (double Sum, double Dot) SumDotDevD(ReadOnlySpan<float> g, ReadOnlySpan<float> x, double m)
    {
        var vg = V(g);
        var vx = V(x[..g.Length]);
        var vm = Vector256.Create(m);
        var (sum, dot) = (Vector256<double>.Zero, Vector256<double>.Zero);
        for (int i = 0; i < vg.Length; i++)
        {
            var (gl, gh) = Vector256.Widen(vg[i]);
            var (xl, xh) = Vector256.Widen(vx[i]);
            sum += gl + gh;
            dot = Vector256.FusedMultiplyAdd(gh, xh - vm, Vector256.FusedMultiplyAdd(gl, xl - vm, dot));
        }
        var (s, d) = (Vector256.Sum(sum), Vector256.Sum(dot));
        for (int i = vg.Length * 8; i < g.Length; i++)
        {
            s += g[i];
            d += g[i] * (x[i] - m);
        }
        return (s, d);
    }

    /// <summary>y = a·g + k·(x − m) + c, formed in double (the batch-statistics batch-norm gradient of one
    /// channel).</summary>
    public static void AffineDevD(ReadOnlySpan<float> g, double a, ReadOnlySpan<float> x, double m, double k, double c,
        Span<float> y)
    {
        var vg = V(g[..y.Length]);
        var vx = V(x[..y.Length]);
        var vy = V(y);
        var (va, vm, vk, vc) = (Vector256.Create(a), Vector256.Create(m), Vector256.Create(k), Vector256.Create(c));
        for (int i = 0; i < vy.Length; i++)
        {
            var (gl, gh) = Vector256.Widen(vg[i]);
            var (xl, xh) = Vector256.Widen(vx[i]);
            var lo = Vector256.FusedMultiplyAdd(gl, va, Vector256.FusedMultiplyAdd(xl - vm, vk, vc));
            var hi = Vector256.FusedMultiplyAdd(gh, va, Vector256.FusedMultiplyAdd(xh - vm, vk, vc));
            vy[i] = Vector256.Narrow(lo, hi);
        }
        for (int i = vy.Length * 8; i < y.Length; i++) y[i] = (float)(g[i] * a + ((x[i] - m) * k + c));
    }

    /// <summary>
    /// One layer-norm row with x̂ = (x − mean)·inv and d = g·w: returns Σd and Σd·x̂ in double, and adds
    /// g·x̂ and g into the float partials <paramref name="gwp"/> and <paramref name="gbp"/> when
    /// <paramref name="partials"/>.
    /// </summary>
    public static (double D, double DX) LayerNormSums(ReadOnlySpan<float> x, ReadOnlySpan<float> g,
        ReadOnlySpan<float> w, double mean, double inv, Span<float> gwp, Span<float> gbp, bool partials)
    {
        var vx = V(x);
        var vg = V(g[..x.Length]);
        var vw = V(w[..x.Length]);
        var (vm, vi) = (Vector256.Create(mean), Vector256.Create(inv));
        var (sd, sdx) = (Vector256<double>.Zero, Vector256<double>.Zero);
        var vgw = partials ? V(gwp[..x.Length]) : default;
        var vgb = partials ? V(gbp[..x.Length]) : default;
        for (int i = 0; i < vx.Length; i++)
        {
            var (xl, xh) = Vector256.Widen(vx[i]);
            var (gl, gh) = Vector256.Widen(vg[i]);
            var (wl, wh) = Vector256.Widen(vw[i]);
            var (hl, hh) = ((xl - vm) * vi, (xh - vm) * vi);
            var (dl, dh) = (gl * wl, gh * wh);
            sd += dl + dh;
            sdx = Vector256.FusedMultiplyAdd(dh, hh, Vector256.FusedMultiplyAdd(dl, hl, sdx));
            if (!partials) continue;
            vgw[i] = Vector256.FusedMultiplyAdd(vg[i], Vector256.Narrow(hl, hh), vgw[i]);
            vgb[i] += vg[i];
        }
        var (d, dx) = (Vector256.Sum(sd), Vector256.Sum(sdx));
        for (int i = vx.Length * 8; i < x.Length; i++)
        {
            double h = (x[i] - mean) * inv, di = (double)g[i] * w[i];
            d += di;
            dx += di * h;
            if (!partials) continue;
            gwp[i] = MathF.FusedMultiplyAdd(g[i], (float)h, gwp[i]);
            gbp[i] += g[i];
        }
        return (d, dx);
    }

    /// <summary>One layer-norm row's gradient, formed in double: gx = inv·((g·w − mD) − x̂·mDX).</summary>
    public static void LayerNormRow(ReadOnlySpan<float> x, ReadOnlySpan<float> g, ReadOnlySpan<float> w, double mean,
        double inv, double mD, double mDX, Span<float> gx)
    {
        var vx = V(x[..gx.Length]);
        var vg = V(g[..gx.Length]);
        var vw = V(w[..gx.Length]);
        var vy = V(gx);
        var (vm, vi, vd, vdx) =
            (Vector256.Create(mean), Vector256.Create(inv), Vector256.Create(mD), Vector256.Create(mDX));
        for (int i = 0; i < vy.Length; i++)
        {
            var (xl, xh) = Vector256.Widen(vx[i]);
            var (gl, gh) = Vector256.Widen(vg[i]);
            var (wl, wh) = Vector256.Widen(vw[i]);
            var lo = vi * Vector256.FusedMultiplyAdd(-(xl - vm) * vi, vdx, gl * wl - vd);
            var hi = vi * Vector256.FusedMultiplyAdd(-(xh - vm) * vi, vdx, gh * wh - vd);
            vy[i] = Vector256.Narrow(lo, hi);
        }
        for (int i = vy.Length * 8; i < gx.Length; i++)
        {
            gx[i] = (float)(inv * ((double)g[i] * w[i] - mD - (x[i] - mean) * inv * mDX));
        }
    }

    /// <summary>Adds a float span into a double span.</summary>
    public static void Widen(ReadOnlySpan<float> x, Span<double> acc)
    {
        for (int i = 0; i < acc.Length; i++) acc[i] += x[i];
    }

    /// <summary>Writes a double span rounded to float.</summary>
    public static void Narrow(ReadOnlySpan<double> x, Span<float> y)
    {
        for (int i = 0; i < y.Length; i++) y[i] = (float)x[i];
    }
}
