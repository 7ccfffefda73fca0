using ShiftWise.IR.Ops;

namespace ShiftWise.IR.Reference;

/// <summary>The backward rules of the normalisations (batch norm, layer norm, GRN).</summary>
internal static partial class ElementBackward
{
    /// <summary>
    /// Eval: an affine map per channel with the running statistics as constants. Train: the batch statistics depend on
    /// x (biased variance, as the forward normalises). The updated running statistics (train outputs 1 and 2) are
    /// buffer updates, not differentiated: a nonzero gradient for them is refused. Running mean/variance get no
    /// gradient.
    /// </summary>
    private static double[]?[] BatchNorm(BatchNorm bn, Arr[] xs, double[] gy, double[]?[] gys)
    {
        for (int k = 1; k < gys.Length; k++)
        {
            if (gys[k] is { } g && g.Any(v => v != 0))
            {
                throw new IrException($"{bn.Name}: output {k} (updated running statistics) is not differentiable");
            }
        }
        var x = xs[0];
        int n = x[0], c = x[1];
        long inner = x.Shape.Elements / ((long)n * c);
        long count = n * inner;
        double[] w = xs[1].Data;
        var gx = new double[x.Data.Length];
        var gw = new double[c];
        var gb = new double[c];
        IEnumerable<long> Idx(int ch)
        {
            for (int bi = 0; bi < n; bi++)
            for (long k = 0; k < inner; k++) yield return ((long)bi * c + ch) * inner + k;
        }
        for (int ch = 0; ch < c; ch++)
        {
            double mean, var_;
            if (bn.Mode == Mode.Train)
            {
                double s = 0;
                foreach (var i in Idx(ch)) s += x.Data[i];
                mean = s / count;
                double q = 0;
                foreach (var i in Idx(ch)) q += (x.Data[i] - mean) * (x.Data[i] - mean);
                var_ = q / count;
            }
            else
            {
                mean = xs[3].Data[ch];
                var_ = xs[4].Data[ch];
            }
            double inv = 1 / Math.Sqrt(var_ + bn.Eps);
            double sumG = 0, sumGX = 0;
            foreach (var i in Idx(ch))
            {
                double xhat = (x.Data[i] - mean) * inv;
                sumG += gy[i];
                sumGX += gy[i] * xhat;
            }
            gw[ch] = sumGX;
            gb[ch] = sumG;
            foreach (var i in Idx(ch))
            {
                if (bn.Mode == Mode.Train)
                {
                    double xhat = (x.Data[i] - mean) * inv;
                    gx[i] = w[ch] * inv * (gy[i] - sumG / count - xhat * sumGX / count);
                }
                else
                {
                    gx[i] = w[ch] * inv * gy[i];
                }
            }
        }
        return [gx, gw, gb, null, null];
    }

    /// <summary>Normalisation over one axis (1 or the last) with the batch statistics of each position.</summary>
    private static double[]?[] LayerNorm(LayerNorm ln, Arr[] xs, double[] gy)
    {
        var x = xs[0];
        int axis = ln.Axis(x.Shape.Rank);
        int c = x[axis];
        long inner = x.Shape.Strides()[axis];
        long outer = x.Shape.Elements / ((long)c * inner);
        double[] w = xs[1].Data;
        var gx = new double[x.Data.Length];
        var gw = new double[c];
        var gb = new double[c];
        var xhat = new double[c];
        var dxhat = new double[c];
        for (long o = 0; o < outer; o++)
        for (long k = 0; k < inner; k++)
        {
            long Idx(int ch) => (o * c + ch) * inner + k;
            var (mean, inv) = NormKernels.LayerStats(x.Data, Idx, c, ln.Eps);
            double sumD = 0, sumDX = 0;
            for (int ch = 0; ch < c; ch++)
            {
                double g = gy[Idx(ch)];
                xhat[ch] = (x.Data[Idx(ch)] - mean) * inv;
                dxhat[ch] = g * w[ch];
                gw[ch] += g * xhat[ch];
                gb[ch] += g;
                sumD += dxhat[ch];
                sumDX += dxhat[ch] * xhat[ch];
            }
            for (int ch = 0; ch < c; ch++) gx[Idx(ch)] = inv * (dxhat[ch] - sumD / c - xhat[ch] * sumDX / c);
        }
        return [gx, gw, gb];
    }

    /// <summary>
    /// GRN per sample: with a_c = γ_c·Σ_p g_pc·x_pc (the gradient of N_c) and D = mean G + eps,
    /// ∂L/∂G_j = a_j/D − Σ_c a_c·G_c / (C·D²), and ∂G_j/∂x_pj = x_pj/G_j (0 where G_j = 0).
    /// </summary>
    private static double[]?[] Grn(Grn grn, Arr[] xs, double[] gy)
    {
        var x = xs[0];
        int n = x[0], hw = x[1] * x[2], c = x[3];
        double[] gamma = xs[1].Data;
        var gx = new double[x.Data.Length];
        var gg = new double[c];
        var gbeta = new double[c];
        var gn = new double[c];
        var a = new double[c];
        for (int b = 0; b < n; b++)
        {
            long Idx(int p, int ch) => ((long)b * hw + p) * c + ch;
            for (int ch = 0; ch < c; ch++)
            {
                double q = 0;
                for (int p = 0; p < hw; p++) q += x.Data[Idx(p, ch)] * x.Data[Idx(p, ch)];
                gn[ch] = Math.Sqrt(q);
            }
            double d = gn.Sum() / c + grn.Eps;
            double sumAG = 0;
            for (int ch = 0; ch < c; ch++)
            {
                double nrm = gn[ch] / d;
                double s = 0;
                for (int p = 0; p < hw; p++)
                {
                    long i = Idx(p, ch);
                    s += gy[i] * x.Data[i];
                    gbeta[ch] += gy[i];
                    gx[i] = gy[i] * (gamma[ch] * nrm + 1);
                }
                gg[ch] += s * nrm;
                a[ch] = gamma[ch] * s;
                sumAG += a[ch] * gn[ch];
            }
            for (int ch = 0; ch < c; ch++)
            {
                if (gn[ch] == 0) continue;
                double dG = a[ch] / d - sumAG / (c * d * d);
                for (int p = 0; p < hw; p++) gx[Idx(p, ch)] += dG * x.Data[Idx(p, ch)] / gn[ch];
            }
        }
        return xs.Length == 3 ? [gx, gg, gbeta] : [gx, gg];
    }
}
