using ShiftWise.IR.Ops;

namespace ShiftWise.IR.Reference;

/// <summary>
/// Backward rules (see <see cref="Backward"/>) of the convolutions, the SW shift-add and its fused forms; Gemm and
/// Linear dispatch from here to <see cref="GemmBackward"/>. Every input gradient is written in gather form: each
/// destination element is summed by one loop from the elements that read it in the forward pass, in a fixed order
/// (the CUDA kernels mirror this, with no atomics).
/// </summary>
internal static class ConvBackward
{
    /// <summary>One gradient per input (null: not differentiable); <paramref name="gys"/> null where an output does
    /// not reach the loss.</summary>
    public static double[]?[] Vjp(Op op, Arr[] xs, Arr[] ys, double[]?[] gys) => op switch
    {
        Conv2d c => Conv2d(c, xs, Grad(gys, ys, 0)),
        ShiftAdd s => [ShiftAddAdjoint(s, xs[0][0], xs[0][2], xs[0][3], gys[0], gys[1], gys[2])],
        SwCross c => SwCross(c.Shift, c.Subs, xs[0], xs[1], xs[2], Grad(gys, ys, 0)),
        FusedShiftWise f => FusedShiftWise(f, xs, Grad(gys, ys, 0)),
        Gemm g => GemmBackward.Gemm(g, xs, Grad(gys, ys, 0)),
        Ops.Linear => GemmBackward.Linear(xs, Grad(gys, ys, 0)),
        _ => throw new IrException($"no backward rule for op '{op.Name}' in ConvBackward"),
    };

    /// <summary>The gradient of output <paramref name="i"/>, zeros where it does not reach the loss.</summary>
    private static double[] Grad(double[]?[] gys, Arr[] ys, int i) => gys[i] ?? new double[ys[i].Data.Length];

    private static double[]?[] Conv2d(Conv2d c, Arr[] xs, double[] gy)
    {
        var (x, w) = (xs[0], xs[1]);
        int n = x[0], ci = x[1], h = x[2], wd = x[3];
        int co = w[0], cpg = w[1], kh = w[2], kw = w[3];
        int ho = c.OutSize(h, kh, 0), wo = c.OutSize(wd, kw, 1);
        int opg = co / c.Groups;
        int sy = c.Stride[0], sx = c.Stride[1], py = c.Padding[0], px = c.Padding[1];
        int dy = c.Dilation[0], dx = c.Dilation[1];
        double Gy(int b, int o, int i, int j) => gy[((long)(b * co + o) * ho + i) * wo + j];

        // dx[b, ch, yy, xx] = Σ_{o in group, u, v : yy = i·s − p + u·d} gy[b, o, i, j] · w[o, q, u, v]
        var gx = new double[x.Data.Length];
        Parallel.For(0, n * ci, bc =>
        {
            int b = bc / ci, ch = bc % ci;
            int g = ch / cpg, q = ch % cpg;
            for (int yy = 0; yy < h; yy++)
            for (int xx = 0; xx < wd; xx++)
            {
                double acc = 0;
                for (int o = g * opg; o < (g + 1) * opg; o++)
                for (int u = 0; u < kh; u++)
                {
                    int ty = yy + py - u * dy;
                    if (ty < 0 || ty % sy != 0 || ty / sy >= ho) continue;
                    int i = ty / sy;
                    for (int v = 0; v < kw; v++)
                    {
                        int tx = xx + px - v * dx;
                        if (tx < 0 || tx % sx != 0 || tx / sx >= wo) continue;
                        acc += Gy(b, o, i, tx / sx) * w.Data[((long)(o * cpg + q) * kh + u) * kw + v];
                    }
                }
                gx[((long)(b * ci + ch) * h + yy) * wd + xx] = acc;
            }
        });

        // dw[o, q, u, v] = Σ_{b, i, j} gy[b, o, i, j] · x[b, g·cpg + q, i·s − p + u·d, j·s − p + v·d]
        var gw = new double[w.Data.Length];
        Parallel.For(0, co * cpg, oq =>
        {
            int o = oq / cpg, q = oq % cpg, ch = o / opg * cpg + q;
            for (int u = 0; u < kh; u++)
            for (int v = 0; v < kw; v++)
            {
                double acc = 0;
                for (int b = 0; b < n; b++)
                for (int i = 0; i < ho; i++)
                {
                    int yy = i * sy - py + u * dy;
                    if (yy < 0 || yy >= h) continue;
                    for (int j = 0; j < wo; j++)
                    {
                        int xx = j * sx - px + v * dx;
                        if (xx < 0 || xx >= wd) continue;
                        acc += Gy(b, o, i, j) * x.Data[((long)(b * ci + ch) * h + yy) * wd + xx];
                    }
                }
                gw[((long)(o * cpg + q) * kh + u) * kw + v] = acc;
            }
        });
        if (xs.Length == 2) return [gx, gw];
        var gb = new double[co];
        for (int o = 0; o < co; o++)
        {
            double acc = 0;
            for (int b = 0; b < n; b++)
            for (int p = 0; p < ho * wo; p++) acc += gy[(long)(b * co + o) * ho * wo + p];
            gb[o] = acc;
        }
        return [gx, gw, gb];
    }

    /// <summary>
    /// The adjoint of <see cref="ConvKernels.ShiftAdd"/> as a gather: for each element (b, t, ii, jj) of X, with
    /// t = o·n + j, the sum of the output gradients of every (path, replica) that read it. Null gradients count as
    /// zero.
    /// </summary>
    internal static double[] ShiftAddAdjoint(ShiftAdd s, int nb, int hin, int win, double[]? gh, double[]? gv,
        double[]? gi)
    {
        int e = s.Extra, n = s.N, r = s.Rep, nrep = s.NRep;
        int h = hin - 2 * e, w = win - 2 * e, rn = r * n;
        var gx = new double[(long)nb * rn * hin * win];
        Parallel.For(0, nb * rn, bt =>
        {
            int b = bt / rn, t = bt % rn, o = t / n;
            long ob = (long)(b * r + o) * h;
            for (int ii = 0; ii < hin; ii++)
            for (int jj = 0; jj < win; jj++)
            {
                double acc = 0;
                int yy = ii - e, xx = jj - e;
                for (int g = 0; g < nrep; g++)
                {
                    // Y_h[b, o, yy, xx] reads X[b, t, yy + e, xx − shiftH]: here yy = ii − e, xx = jj + shiftH
                    int hx = jj + s.ShiftH(t, g);
                    if (gh is not null && yy >= 0 && yy < h && hx >= 0 && hx < w) acc += gh[(ob + yy) * w + hx];
                    // Y_v[b, o, yy, xx] reads X[b, t, yy − shiftV, xx + e]: here yy = ii + shiftV, xx = jj − e
                    int vy = ii + s.ShiftV(t, g);
                    if (gv is not null && xx >= 0 && xx < w && vy >= 0 && vy < h) acc += gv[(ob + vy) * w + xx];
                    // Y_i[b, o, yy, xx] reads X[b, ident(o, g), yy + e, xx + e]
                    if (gi is not null && s.Identity(o, g) == t && yy >= 0 && yy < h && xx >= 0 && xx < w)
                    {
                        acc += gi[(ob + yy) * w + xx];
                    }
                }
                gx[((long)(b * rn + t) * hin + ii) * win + jj] = acc;
            }
        });
        return gx;
    }

    /// <summary>Gradients of <see cref="FusedKernels.SwCross"/>: x, weight, scales, bias.</summary>
    private static double[][] SwCross(ShiftAdd s, Vec<int> subs, Arr x, Arr w, Arr scales, double[] gy)
    {
        int nb = x[0], r = x[1], h = x[2], wd = x[3];
        int k = s.Small, p = k - 1, e = s.Extra, n = s.N, rn = r * n, ns = subs.Count;
        int hin = h + 2 * e, win = wd + 2 * e;
        long plane = (long)h * wd, bigPlane = (long)hin * win;
        // forward: X over all R·n sub-channels (zero where pruned), then the three paths
        var xk = FusedKernels.SubKernelMaps(s, subs, x, w);
        var paths = ConvKernels.ShiftAdd(s, new Arr(new Shape(nb, rn, hin, win), xk));

        // scales and bias: per channel sums over (b, y, x)
        var gs = new double[4 * r];
        var gb = new double[r];
        for (int o = 0; o < r; o++)
        {
            double ah = 0, av = 0, ai = 0, ar = 0, bb = 0;
            for (int b = 0; b < nb; b++)
            for (long q = 0; q < plane; q++)
            {
                long at = (b * r + o) * plane + q;
                ah += gy[at] * paths[0][at];
                av += gy[at] * paths[1][at];
                ai += gy[at] * paths[2][at];
                ar += gy[at] * x.Data[at];
                bb += gy[at];
            }
            (gs[o], gs[r + o], gs[2 * r + o], gs[3 * r + o], gb[o]) = (ah, av, ai, ar, bb);
        }

        // the paths' gradients, then X's through the shift-add adjoint
        var gh = new double[gy.Length];
        var gv = new double[gy.Length];
        var gi = new double[gy.Length];
        for (long at = 0; at < gy.LongLength; at++)
        {
            int o = (int)(at / plane % r);
            gh[at] = scales.Data[o] * gy[at];
            gv[at] = scales.Data[r + o] * gy[at];
            gi[at] = scales.Data[2 * r + o] * gy[at];
        }
        var gxk = ShiftAddAdjoint(s, nb, hin, win, gh, gv, gi);
        double GX(int b, int t, int yy, int xx) => gxk[((long)(b * rn + t) * hin + yy) * win + xx];

        // weight: dw[i, u, v] = Σ_{b, yy, xx} dX[b, t, yy, xx] · x[b, o, yy + u − p, xx + v − p]
        var gw = new double[w.Data.Length];
        Parallel.For(0, ns, i =>
        {
            int t = subs[i], o = t / n;
            for (int u = 0; u < k; u++)
            for (int v = 0; v < k; v++)
            {
                double acc = 0;
                for (int b = 0; b < nb; b++)
                for (int yy = 0; yy < hin; yy++)
                {
                    int sy = yy + u - p;
                    if (sy < 0 || sy >= h) continue;
                    for (int xx = 0; xx < win; xx++)
                    {
                        int sx = xx + v - p;
                        if (sx < 0 || sx >= wd) continue;
                        acc += GX(b, t, yy, xx) * x.Data[((long)(b * r + o) * h + sy) * wd + sx];
                    }
                }
                gw[(i * k + u) * k + v] = acc;
            }
        });

        // x: the residual path plus every kept sub-kernel of channel o, read back through its conv
        var first = new int[r + 1];
        for (int o = 0, i = 0; o <= r; o++)
        {
            while (i < ns && subs[i] / n < o) i++;
            first[o] = i;
        }
        var gx = new double[x.Data.Length];
        Parallel.For(0, nb * r, bo =>
        {
            int b = bo / r, o = bo % r;
            for (int sy = 0; sy < h; sy++)
            for (int sx = 0; sx < wd; sx++)
            {
                long at = ((long)(b * r + o) * h + sy) * wd + sx;
                double acc = scales.Data[3 * r + o] * gy[at];
                for (int i = first[o]; i < first[o + 1]; i++)
                {
                    int t = subs[i];
                    for (int u = 0; u < k; u++)
                    for (int v = 0; v < k; v++)
                    {
                        int yy = sy - u + p, xx = sx - v + p;
                        if (yy < 0 || yy >= hin || xx < 0 || xx >= win) continue;
                        acc += GX(b, t, yy, xx) * w.Data[(i * k + u) * k + v];
                    }
                }
                gx[at] = acc;
            }
        });
        return [gx, gw, gs, gb];
    }

    private static double[][] FusedShiftWise(FusedShiftWise f, Arr[] xs, double[] gy)
    {
        var x = xs[0];
        int nb = x[0], c = x[1], h = x[2], w = x[3], r = f.Rep.Count, ng = f.Ghost.Count;
        long plane = (long)h * w;
        var rep = new double[nb * r * plane];
        var gz = new double[nb * r * plane];
        for (int b = 0; b < nb; b++)
        for (int o = 0; o < r; o++)
        {
            Array.Copy(x.Data, (b * c + f.Rep[o]) * plane, rep, (b * r + o) * plane, plane);
            Array.Copy(gy, (b * (r + ng) + o) * plane, gz, (b * r + o) * plane, plane);
        }
        var inner = SwCross(f.Shift, f.Subs, new Arr(new Shape(nb, r, h, w), rep), xs[1], xs[2], gz);
        var grep = inner[0];
        var gb = new double[r + ng];
        Array.Copy(inner[3], gb, r);
        var ggs = new double[ng];
        for (int j = 0; j < ng; j++)
        {
            double sb = 0, sg = 0;
            for (int b = 0; b < nb; b++)
            for (long q = 0; q < plane; q++)
            {
                double g = gy[(b * (r + ng) + r + j) * plane + q];
                sb += g;
                sg += g * x.Data[(b * c + f.Ghost[j]) * plane + q];
            }
            gb[r + j] = sb;
            ggs[j] = sg;
        }
        // x: gather, for each channel, from the rep slots and ghost slots that copied it
        var gx = new double[x.Data.Length];
        for (int b = 0; b < nb; b++)
        for (int ch = 0; ch < c; ch++)
        {
            long dst = (b * c + ch) * plane;
            for (int o = 0; o < r; o++)
            {
                if (f.Rep[o] != ch) continue;
                for (long q = 0; q < plane; q++) gx[dst + q] += grep[(b * r + o) * plane + q];
            }
            for (int j = 0; j < ng; j++)
            {
                if (f.Ghost[j] != ch) continue;
                double gsj = xs[4].Data[j];
                for (long q = 0; q < plane; q++) gx[dst + q] += gy[(b * (r + ng) + r + j) * plane + q] * gsj;
            }
        }
        return [gx, inner[1], inner[2], gb, ggs];
    }
}
