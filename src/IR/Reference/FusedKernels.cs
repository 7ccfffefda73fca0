using ShiftWise.IR.Ops;

namespace ShiftWise.IR.Reference;

/// <summary>
/// The fused ops, written as their definitions: the factorised SW layer and a GEMM with its epilogues.
/// </summary>
internal static partial class FusedKernels
{
    public static double[] ScaleBias(ScaleBias sb, Arr[] xs)
    {
        var x = xs[0];
        int a = x.Shape.Axis(sb.Axis), c = x[a];
        long inner = x.Shape.Strides()[a];
        var y = new double[x.Data.Length];
        for (long i = 0; i < y.LongLength; i++)
        {
            int ch = (int)(i / inner % c);
            y[i] = x.Data[i] * xs[1].Data[ch] + xs[2].Data[ch];
        }
        return y;
    }

    /// <summary>
    /// The k×k depthwise conv (padding k−1) of every kept sub-kernel over its rep channel: X of SPEC 1.5, laid out
    /// as (N, R·n, H+2e, W+2e) over all sub-channels, zero where a sub-kernel is pruned.
    /// </summary>
    public static double[] SubKernelMaps(ShiftAdd s, Vec<int> subs, Arr x, Arr w)
    {
        int nb = x[0], r = x[1], h = x[2], wd = x[3];
        int k = s.Small, p = k - 1, e = s.Extra, n = s.N, rn = r * n, ns = subs.Count;
        int hin = h + 2 * e, win = wd + 2 * e;
        var xk = new double[(long)nb * rn * hin * win];
        Parallel.For(0, nb * ns, bi =>
        {
            int b = bi / ns, i = bi % ns, t = subs[i], o = t / n;
            for (int yy = 0; yy < hin; yy++)
            for (int xx = 0; xx < win; xx++)
            {
                double acc = 0;
                for (int u = 0; u < k; u++)
                for (int v = 0; v < k; v++)
                {
                    int sy = yy + u - p, sx = xx + v - p;
                    if (sy < 0 || sy >= h || sx < 0 || sx >= wd) continue;
                    acc += w.Data[(i * k + u) * k + v] * x.Data[((long)(b * r + o) * h + sy) * wd + sx];
                }
                xk[((long)(b * rn + t) * hin + yy) * win + xx] = acc;
            }
        });
        return xk;
    }

    /// <summary>
    /// SwCross by its definition: the depthwise conv of each kept sub-kernel (padding k−1), gathered through the
    /// shift tables into the three paths (the shift-add of SPEC 1.5), scaled, plus the scaled residual and the bias.
    /// </summary>
    public static double[] SwCross(ShiftAdd s, Vec<int> subs, Arr x, Arr w, Arr scales, double[] bias)
    {
        int nb = x[0], r = x[1], h = x[2], wd = x[3], e = s.Extra;
        var xk = SubKernelMaps(s, subs, x, w);
        var paths = ConvKernels.ShiftAdd(s, new Arr(new Shape(nb, r * s.N, h + 2 * e, wd + 2 * e), xk));
        var y = new double[x.Data.Length];
        long plane = (long)h * wd;
        for (int b = 0; b < nb; b++)
        for (int o = 0; o < r; o++)
        for (long q = 0; q < plane; q++)
        {
            long at = (b * r + o) * plane + q;
            y[at] = scales.Data[o] * paths[0][at] + scales.Data[r + o] * paths[1][at]
                + scales.Data[2 * r + o] * paths[2][at]
                + scales.Data[3 * r + o] * x.Data[at] + bias[o];
        }
        return y;
    }

    public static double[] FusedShiftWise(FusedShiftWise f, Arr[] xs)
    {
        var x = xs[0];
        int nb = x[0], c = x[1], h = x[2], w = x[3], r = f.Rep.Count, g = f.Ghost.Count;
        long plane = (long)h * w;
        var rep = new double[nb * r * plane];
        for (int b = 0; b < nb; b++)
        for (int o = 0; o < r; o++)
        {
            Array.Copy(x.Data, (b * c + f.Rep[o]) * plane, rep, (b * r + o) * plane, plane);
        }
        var z = SwCross(f.Shift, f.Subs, new Arr(new Shape(nb, r, h, w), rep), xs[1], xs[2], xs[3].Data[..r]);
        var y = new double[nb * (r + g) * plane];
        for (int b = 0; b < nb; b++)
        {
            Array.Copy(z, b * r * plane, y, b * (r + g) * plane, r * plane);
            for (int j = 0; j < g; j++)
            for (long q = 0; q < plane; q++)
            {
                y[(b * (r + g) + r + j) * plane + q] = x.Data[(b * c + f.Ghost[j]) * plane + q] * xs[4].Data[j]
                    + xs[3].Data[r + j];
            }
        }
        return y;
    }

    public static double[] Gemm(Gemm gm, Arr[] xs)
    {
        var s = gm.Slots;
        var x = xs[0];
        if (gm.InNchw)
        {
            var p = new Permute(Vec.Of(0, 2, 3, 1));
            x = new Arr(new Shape(x[0], x[2], x[3], x[1]), LayoutKernels.Permute(p, x));
        }
        var lin = new List<Arr> { x, xs[1] };
        if (gm.HasBias) lin.Add(xs[s.Bias]);
        var y = new Arr(x.Shape.With(x.Shape.Rank - 1, xs[1][0]), ElementKernels.Linear(lin.ToArray()));
        if (gm.Act != GemmAct.None)
        {
            var kind = gm.Act switch { GemmAct.Gelu => UnaryKind.Gelu, GemmAct.Relu => UnaryKind.Relu,
                _ => UnaryKind.Sigmoid };
            y = y with { Data = ElementKernels.Unary(kind, y) };
        }
        if (gm.HasGrn) y = y with { Data = NormKernels.Grn(new Grn(gm.GrnEps), [y, xs[s.Gamma], xs[s.Beta]]) };
        if (gm.OutNchw)
        {
            var p = new Permute(Vec.Of(0, 3, 1, 2));
            y = new Arr(new Shape(y[0], y[3], y[1], y[2]), LayoutKernels.Permute(p, y));
        }
        if (gm.HasResidual)
        {
            var res = xs[s.Residual].Data;
            for (int i = 0; i < res.Length; i++) y.Data[i] += res[i];
        }
        return y.Data;
    }
}
