using ShiftWise.IR.Ops;

namespace ShiftWise.IR.Reference;

/// <summary>Element-wise ops, Linear and DropPath, as plain loops.</summary>
internal static class ElementKernels
{
    public static double[] Linear(Arr[] xs)
    {
        var (x, w) = (xs[0], xs[1]);
        int k = w[1], nout = w[0];
        long rows = x.Shape.Elements / Math.Max(1, k);
        var y = new double[rows * nout];
        Parallel.For(0L, rows, r =>
        {
            for (int o = 0; o < nout; o++)
            {
                double acc = xs.Length == 3 ? xs[2].Data[o] : 0;
                for (int i = 0; i < k; i++) acc += x.Data[r * k + i] * w.Data[(long)o * k + i];
                y[r * nout + o] = acc;
            }
        });
        return y;
    }

    public static double[] Unary(UnaryKind kind, Arr x)
    {
        Func<double, double> f = kind switch
        {
            UnaryKind.Gelu => v => 0.5 * v * (1 + Erf(v / Math.Sqrt(2))),
            UnaryKind.Relu => v => Math.Max(v, 0),
            UnaryKind.Sigmoid => v => 1 / (1 + Math.Exp(-v)),
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
        var y = new double[x.Data.Length];
        Parallel.For(0, (y.Length + 4095) / 4096, c =>
        {
            for (int i = c * 4096; i < Math.Min(y.Length, (c + 1) * 4096); i++) y[i] = f(x.Data[i]);
        });
        return y;
    }

    public static double[] Binary(BinaryKind kind, Arr a, Arr b, Shape outShape)
    {
        if (a.Shape.Equals(b.Shape))
        {
            var z = new double[a.Data.Length];
            for (int i = 0; i < z.Length; i++)
            {
                z[i] = kind == BinaryKind.Add ? a.Data[i] + b.Data[i] : a.Data[i] * b.Data[i];
            }
            return z;
        }
        var sa = a.Shape.BroadcastStrides(outShape);
        var sb = b.Shape.BroadcastStrides(outShape);
        var y = new double[outShape.Elements];
        var idx = new int[outShape.Rank];
        for (long k = 0; k < y.LongLength; k++)
        {
            long ia = 0, ib = 0;
            for (int d = 0; d < idx.Length; d++)
            {
                ia += idx[d] * sa[d];
                ib += idx[d] * sb[d];
            }
            y[k] = kind == BinaryKind.Add ? a.Data[ia] + b.Data[ib] : a.Data[ia] * b.Data[ib];
            for (int d = idx.Length - 1; d >= 0; d--)
            {
                if (++idx[d] < outShape[d]) break;
                idx[d] = 0;
            }
        }
        return y;
    }


    public static double[] DropPath(DropPath d, Arr x, long step = 0)
    {
        if (d.Mode == Mode.Eval || d.Prob == 0) return x.Data;
        int n = x[0];
        long per = x.Shape.Elements / Math.Max(1, n);
        var y = new double[x.Data.Length];
        for (int b = 0; b < n; b++)
        {
            double f = d.Keeps(b, step) ? 1 / (1 - d.Prob) : 0;
            for (long k = 0; k < per; k++) y[b * per + k] = x.Data[b * per + k] * f;
        }
        return y;
    }

    /// <summary>
    /// erf(x) to full double precision: the Maclaurin series for |x| &lt; 3, the continued fraction of erfc beyond.
    /// </summary>
    public static double Erf(double x)
    {
        double ax = Math.Abs(x);
        if (ax < 3)
        {
            double term = x, sum = x, x2 = x * x;
            for (int k = 1; k < 200; k++)
            {
                term *= -x2 / k;
                double add = term / (2 * k + 1);
                sum += add;
                if (Math.Abs(add) < 1e-17 * Math.Abs(sum)) break;
            }
            return 2 / Math.Sqrt(Math.PI) * sum;
        }
        // erfc(x) = exp(-x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...)))), evaluated bottom-up (Lentz not needed
        // here).
        double f = 0;
        for (int k = 60; k >= 1; k--) f = k / 2.0 / (ax + f);
        double erfc = Math.Exp(-ax * ax) / Math.Sqrt(Math.PI) / (ax + f);
        return x > 0 ? 1 - erfc : erfc - 1;
    }
}
