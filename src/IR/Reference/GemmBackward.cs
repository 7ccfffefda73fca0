using ShiftWise.IR.Ops;

namespace ShiftWise.IR.Reference;

/// <summary>
/// Backward rules of Linear and of Gemm with its fused epilogue (bias, activation, GRN, layout permutes, residual),
/// dispatched from <see cref="ConvBackward.Vjp"/>. As there, every gradient is a gather in a fixed order.
/// </summary>
internal static class GemmBackward
{
    /// <summary>Gradients of y = x·Wᵀ (+ b) over the last axis: x, weight and (when present) bias.</summary>
    internal static double[][] Linear(Arr[] xs, double[] gy)
    {
        var (x, w) = (xs[0], xs[1]);
        int k = w[1], nout = w[0];
        long rows = x.Shape.Elements / Math.Max(1, k);
        var gx = new double[x.Data.Length];
        Parallel.For(0L, rows, row =>
        {
            for (int i = 0; i < k; i++)
            {
                double acc = 0;
                for (int o = 0; o < nout; o++) acc += gy[row * nout + o] * w.Data[(long)o * k + i];
                gx[row * k + i] = acc;
            }
        });
        var gw = new double[w.Data.Length];
        Parallel.For(0, nout, o =>
        {
            for (int i = 0; i < k; i++)
            {
                double acc = 0;
                for (long row = 0; row < rows; row++) acc += gy[row * nout + o] * x.Data[row * k + i];
                gw[(long)o * k + i] = acc;
            }
        });
        if (xs.Length == 2) return [gx, gw];
        var gb = new double[nout];
        for (int o = 0; o < nout; o++)
        {
            double acc = 0;
            for (long row = 0; row < rows; row++) acc += gy[row * nout + o];
            gb[o] = acc;
        }
        return [gx, gw, gb];
    }

    internal static double[]?[] Gemm(Gemm gm, Arr[] xs, double[] gy)
    {
        var s = gm.Slots;
        var result = new double[]?[xs.Length];
        if (gm.HasResidual) result[s.Residual] = (double[])gy.Clone();
        // forward to the stages the backward needs
        var x = xs[0];
        if (gm.InNchw)
        {
            x = new Arr(new Shape(x[0], x[2], x[3], x[1]), LayoutKernels.Permute(new Permute(Vec.Of(0, 2, 3, 1)), x));
        }
        var lin = new List<Arr> { x, xs[1] };
        if (gm.HasBias) lin.Add(xs[s.Bias]);
        var z = new Arr(x.Shape.With(x.Shape.Rank - 1, xs[1][0]), ElementKernels.Linear(lin.ToArray()));
        var a = z;
        if (gm.Act != GemmAct.None)
        {
            var kind = gm.Act switch
            {
                GemmAct.Gelu => UnaryKind.Gelu,
                GemmAct.Relu => UnaryKind.Relu,
                _ => UnaryKind.Sigmoid,
            };
            a = z with { Data = ElementKernels.Unary(kind, z) };
        }
        // backward, last stage first
        var g = gy;
        if (gm.OutNchw)
        {
            var ys = a.Shape;
            g = LayoutKernels.Permute(new Permute(Vec.Of(0, 2, 3, 1)),
                new Arr(new Shape(ys[0], ys[3], ys[1], ys[2]), g));
        }
        if (gm.HasGrn)
        {
            var (ga, gg, gbe) = GrnBackward(gm.GrnEps, a, xs[s.Gamma].Data, g);
            g = ga;
            result[s.Gamma] = gg;
            result[s.Beta] = gbe;
        }
        if (gm.Act != GemmAct.None)
        {
            var gz = new double[g.Length];
            for (int i = 0; i < g.Length; i++) gz[i] = g[i] * ActDerivative(gm.Act, z.Data[i], a.Data[i]);
            g = gz;
        }
        var gl = Linear(lin.ToArray(), g);
        var gx = gl[0];
        if (gm.InNchw) gx = LayoutKernels.Permute(new Permute(Vec.Of(0, 3, 1, 2)), new Arr(x.Shape, gx));
        result[0] = gx;
        result[1] = gl[1];
        if (gm.HasBias) result[s.Bias] = gl[2];
        return result;
    }

    /// <summary>d act / dz at z, given a = act(z). GELU exactly: Φ(z) + z·φ(z).</summary>
    private static double ActDerivative(GemmAct act, double z, double a) => act switch
    {
        GemmAct.Gelu => 0.5 * (1 + ElementKernels.Erf(z / Math.Sqrt(2)))
            + z * Math.Exp(-0.5 * z * z) / Math.Sqrt(2 * Math.PI),
        GemmAct.Relu => z > 0 ? 1 : 0,
        GemmAct.Sigmoid => a * (1 - a),
        _ => 1,
    };

    /// <summary>
    /// The backward of <see cref="NormKernels.Grn"/> on x (N,H,W,C): G_c = ‖x[b,:,:,c]‖₂, D = mean_c G + eps,
    /// N_c = G_c / D, y = γ·x·N + β + x. Returns the gradients of x, γ and β (the latter two shaped (1,1,1,C)).
    /// </summary>
    internal static (double[] Gx, double[] Gamma, double[] Beta) GrnBackward(double eps, Arr x, double[] gamma,
        double[] gy)
    {
        int n = x[0], hw = x[1] * x[2], c = x[3];
        var gx = new double[x.Data.Length];
        var gg = new double[c];
        var gbe = new double[c];
        var gn = new double[c];
        var dG = new double[c];
        var nrm = new double[c];
        var gl = new double[c];
        for (int b = 0; b < n; b++)
        {
            long b0 = (long)b * hw * c;
            for (int ch = 0; ch < c; ch++)
            {
                double q = 0;
                for (int p = 0; p < hw; p++) q += x.Data[b0 + (long)p * c + ch] * x.Data[b0 + (long)p * c + ch];
                gl[ch] = Math.Sqrt(q);
            }
            double d = gl.Sum() / c + eps;
            double dot = 0;
            for (int ch = 0; ch < c; ch++)
            {
                nrm[ch] = gl[ch] / d;
                double sx = 0, sb = 0;
                for (int p = 0; p < hw; p++)
                {
                    long idx = b0 + (long)p * c + ch;
                    sx += gy[idx] * x.Data[idx];
                    sb += gy[idx];
                }
                gg[ch] += sx * nrm[ch];
                gbe[ch] += sb;
                gn[ch] = gamma[ch] * sx; // dL/dN_c
                dot += gn[ch] * gl[ch];
            }
            // dL/dG_k = s_k / D − Σ_c s_c G_c / (C·D²); dG_k/dx = x / G_k (0 where G_k = 0)
            for (int ch = 0; ch < c; ch++)
            {
                double dgk = gn[ch] / d - dot / (c * d * d);
                dG[ch] = gl[ch] > 0 ? dgk / gl[ch] : 0;
            }
            for (int p = 0; p < hw; p++)
            for (int ch = 0; ch < c; ch++)
            {
                long idx = b0 + (long)p * c + ch;
                gx[idx] = gy[idx] * (gamma[ch] * nrm[ch] + 1) + dG[ch] * x.Data[idx];
            }
        }
        return (gx, gg, gbe);
    }
}
