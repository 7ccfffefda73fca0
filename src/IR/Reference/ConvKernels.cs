using ShiftWise.IR.Ops;

namespace ShiftWise.IR.Reference;

/// <summary>Convolution and the SW shift-add, as plain loops.</summary>
internal static class ConvKernels
{
    public static double[] Conv2d(Conv2d c, Arr[] xs)
    {
        var (x, w) = (xs[0], xs[1]);
        int n = x[0], ci = x[1], h = x[2], wd = x[3];
        int co = w[0], cpg = w[1], kh = w[2], kw = w[3];
        int ho = c.OutSize(h, kh, 0), wo = c.OutSize(wd, kw, 1);
        int opg = co / c.Groups;
        var y = new double[(long)n * co * ho * wo];
        // one (sample, output channel) plane per task: each output element is still summed by one thread in a
        // fixed order, so results do not depend on the thread count
        Parallel.For(0, n * co, bo =>
        {
            int b = bo / co, o = bo % co;
            int g = o / opg;
            for (int i = 0; i < ho; i++)
            for (int j = 0; j < wo; j++)
            {
                double acc = xs.Length == 3 ? xs[2].Data[o] : 0.0;
                for (int q = 0; q < cpg; q++)
                {
                    int ch = g * cpg + q;
                    for (int u = 0; u < kh; u++)
                    {
                        int yy = i * c.Stride[0] - c.Padding[0] + u * c.Dilation[0];
                        if (yy < 0 || yy >= h) continue;
                        for (int v = 0; v < kw; v++)
                        {
                            int xx = j * c.Stride[1] - c.Padding[1] + v * c.Dilation[1];
                            if (xx < 0 || xx >= wd) continue;
                            acc += x.Data[((long)(b * ci + ch) * h + yy) * wd + xx]
                                * w.Data[((long)(o * cpg + q) * kh + u) * kw + v];
                        }
                    }
                }
                y[((long)(b * co + o) * ho + i) * wo + j] = acc;
            }
        });
        return y;
    }

    /// <summary>
    /// The gather form of SPEC 1.5: for each output (b, o, y, x), sum over replicas g and the n sub-channels of o,
    /// clipping only along the shifted axis.
    /// </summary>
    public static double[][] ShiftAdd(ShiftAdd s, Arr x)
    {
        int nb = x[0], hin = x[2], win = x[3];
        int e = s.Extra, n = s.N, r = s.Rep, nrep = s.NRep;
        int h = hin - 2 * e, w = win - 2 * e;
        long size = (long)nb * r * h * w;
        var yh = new double[size];
        var yv = new double[size];
        var yi = new double[size];
        double X(int b, int t, int i, int j) => x.Data[((long)(b * x[1] + t) * hin + i) * win + j];
        Parallel.For(0, nb * r, bo =>
        {
        int b = bo / r, o = bo % r;
        for (int yy = 0; yy < h; yy++)
        for (int xx = 0; xx < w; xx++)
        {
            double sh = 0, sv = 0, si = 0;
            for (int g = 0; g < nrep; g++)
            {
                for (int j = 0; j < n; j++)
                {
                    int t = o * n + j;
                    int cx = xx - s.ShiftH(t, g);
                    if (cx >= 0 && cx < win) sh += X(b, t, yy + e, cx);
                    int cy = yy - s.ShiftV(t, g);
                    if (cy >= 0 && cy < hin) sv += X(b, t, cy, xx + e);
                }
                si += X(b, s.Identity(o, g), yy + e, xx + e);
            }
            long k = ((long)(b * r + o) * h + yy) * w + xx;
            yh[k] = sh;
            yv[k] = sv;
            yi[k] = si;
        }
        });
        return [yh, yv, yi];
    }
}
