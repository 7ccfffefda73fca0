using ShiftWise.IR.Ops;

namespace ShiftWise.IR.Reference;

/// <summary>BatchNorm, LayerNorm and GRN, as plain loops.</summary>
internal static class NormKernels
{
    public static double[][] BatchNorm(BatchNorm bn, Arr[] xs)
    {
        var x = xs[0];
        int n = x[0], c = x[1];
        long inner = x.Shape.Elements / ((long)n * c);
        double[] w = xs[1].Data, b = xs[2].Data, rm = xs[3].Data, rv = xs[4].Data;
        var mean = new double[c];
        var var_ = new double[c];
        long count = n * inner;
        if (bn.Mode == Mode.Train)
        {
            for (int ch = 0; ch < c; ch++)
            {
                double s = 0;
                foreach (var v in Channel(x, ch, n, c, inner)) s += v;
                mean[ch] = s / count;
                double q = 0;
                foreach (var v in Channel(x, ch, n, c, inner)) q += (v - mean[ch]) * (v - mean[ch]);
                var_[ch] = q / count;
            }
        }
        else
        {
            Array.Copy(rm, mean, c);
            Array.Copy(rv, var_, c);
        }
        var y = new double[x.Data.Length];
        for (int bi = 0; bi < n; bi++)
        for (int ch = 0; ch < c; ch++)
        {
            double scale = w[ch] / Math.Sqrt(var_[ch] + bn.Eps);
            for (long k = 0; k < inner; k++)
            {
                long idx = ((long)bi * c + ch) * inner + k;
                y[idx] = (x.Data[idx] - mean[ch]) * scale + b[ch];
            }
        }
        if (bn.Mode == Mode.Eval) return [y];
        var newMean = new double[c];
        var newVar = new double[c];
        for (int ch = 0; ch < c; ch++)
        {
            newMean[ch] = (1 - bn.Momentum) * rm[ch] + bn.Momentum * mean[ch];
            newVar[ch] = (1 - bn.Momentum) * rv[ch] + bn.Momentum * var_[ch] * count / (count - 1);
        }
        return [y, newMean, newVar];
    }

    private static IEnumerable<double> Channel(Arr x, int ch, int n, int c, long inner)
    {
        for (int bi = 0; bi < n; bi++)
        for (long k = 0; k < inner; k++) yield return x.Data[((long)bi * c + ch) * inner + k];
    }

    /// <summary>
    /// Mean and 1/√(biased variance + eps) of the c values x[idx(0)], …, x[idx(c−1)] (LayerNorm forward and
    /// backward).
    /// </summary>
    public static (double Mean, double Inv) LayerStats(double[] x, Func<int, long> idx, int c, double eps)
    {
        double s = 0;
        for (int ch = 0; ch < c; ch++) s += x[idx(ch)];
        double mean = s / c;
        double q = 0;
        for (int ch = 0; ch < c; ch++) q += (x[idx(ch)] - mean) * (x[idx(ch)] - mean);
        return (mean, 1 / Math.Sqrt(q / c + eps));
    }

    public static double[] LayerNorm(LayerNorm ln, Arr[] xs)
    {
        var x = xs[0];
        int axis = ln.Axis(x.Shape.Rank);
        int c = x[axis];
        long inner = x.Shape.Strides()[axis];
        long outer = x.Shape.Elements / (c * inner);
        var y = new double[x.Data.Length];
        for (long o = 0; o < outer; o++)
        for (long k = 0; k < inner; k++)
        {
            long Idx(int ch) => (o * c + ch) * inner + k;
            var (mean, inv) = NormKernels.LayerStats(x.Data, Idx, c, ln.Eps);
            for (int ch = 0; ch < c; ch++)
            {
                y[Idx(ch)] = (x.Data[Idx(ch)] - mean) * inv * xs[1].Data[ch] + xs[2].Data[ch];
            }
        }
        return y;
    }

    public static double[] Grn(Grn grn, Arr[] xs)
    {
        var x = xs[0];
        int n = x[0], h = x[1], w = x[2], c = x[3];
        var y = new double[x.Data.Length];
        var g = new double[c];
        for (int b = 0; b < n; b++)
        {
            for (int ch = 0; ch < c; ch++)
            {
                double q = 0;
                for (int p = 0; p < h * w; p++)
                {
                    q += x.Data[((long)b * h * w + p) * c + ch] * x.Data[((long)b * h * w + p) * c + ch];
                }
                g[ch] = Math.Sqrt(q);
            }
            double mean = g.Sum() / c;
            for (int p = 0; p < h * w; p++)
            for (int ch = 0; ch < c; ch++)
            {
                long idx = ((long)b * h * w + p) * c + ch;
                double nrm = g[ch] / (mean + grn.Eps);
                double beta = xs.Length == 3 ? xs[2].Data[ch] : 0;
                y[idx] = (xs[1].Data[ch] * nrm + 1) * x.Data[idx] + beta;
            }
        }
        return y;
    }
}
