namespace ShiftWise.IR.Ops;

/// <summary>
/// The collapsed cross of one SW layer (SPEC 2): per rep channel a horizontal band H (k rows × n·k columns, holding
/// a_h·K_h, a_i·K_i and the residual a_r at the centre) and a vertical band V (n·k rows × k columns, a_v·K_v).
/// Band offsets: dx ∈ [−μ, n·k−1−μ] with μ = ⌊B/2⌋, dy ∈ [−r, r] with r = (k−1)/2; V is the
/// transpose geometry.
/// y[o](y, x) = Σ H[o][u][c]·x(y+u−r, x+c−μ) + Σ V[o][c][v]·x(y+c−μ, x+v−r) + bias[o], zero padding
/// outside.
/// </summary>
public sealed record CrossKernels(int Rep, int Small, int BandWidth, int Mu, double[] H, double[] V)
{
    /// <summary>Index into <see cref="H"/>.</summary>
    public int HAt(int o, int u, int c) => (o * Small + u) * BandWidth + c;

    /// <summary>Index into <see cref="V"/>.</summary>
    public int VAt(int o, int c, int v) => (o * BandWidth + c) * Small + v;

    /// <summary>Taps per channel of the union of both bands (they overlap in the centre k×k).</summary>
    public int Taps => 2 * BandWidth * Small - Small * Small;

    /// <summary>
    /// The bands as float kernels read them: the vertical band's centre k×k (band rows μ−r..μ+r) added into the
    /// horizontal band's columns μ−r..μ+r in double before rounding once, and left zero in the vertical band
    /// (kernels skip those rows). Same layouts as <see cref="H"/> and <see cref="V"/>.
    /// </summary>
    public (float[] H, float[] V) Merged()
    {
        int half = (Small - 1) / 2;
        var h = (double[])H.Clone();
        var v = new float[V.Length];
        for (int o = 0; o < Rep; o++)
        {
            for (int c = 0; c < BandWidth; c++)
            {
                bool centre = c >= Mu - half && c <= Mu + half;
                for (int t = 0; t < Small; t++)
                {
                    if (centre) h[HAt(o, c - (Mu - half), Mu - half + t)] += V[VAt(o, c, t)];
                    else v[VAt(o, c, t)] = (float)V[VAt(o, c, t)];
                }
            }
        }
        return (h.Select(x => (float)x).ToArray(), v);
    }
}

/// <summary>Collapses the factorised SW form into its cross kernels; pure arithmetic on tables and weights.</summary>
public static class SwCollapse
{
    /// <summary>
    /// The cross kernels from the kept sub-kernels <paramref name="w"/> (|subs|·k·k values, row-major) and the path
    /// scales (4·R values: rows a_h, a_v, a_i, a_r).
    /// </summary>
    public static CrossKernels Collapse(ShiftAdd s, IReadOnlyList<int> subs, ReadOnlySpan<double> w,
        ReadOnlySpan<double> scales)
    {
        int r = s.Rep, k = s.Small, n = s.N, nk = n * k, mu = s.Big / 2, p = k - 1, half = (k - 1) / 2;
        var c = new CrossKernels(r, k, nk, mu, new double[r * k * nk], new double[r * nk * k]);
        var slot = new Dictionary<int, int>();
        for (int i = 0; i < subs.Count; i++) slot[subs[i]] = i;
        for (int o = 0; o < r; o++)
        {
            double ah = scales[o], av = scales[r + o], ai = scales[2 * r + o], ar = scales[3 * r + o];
            for (int g = 0; g < s.NRep; g++)
            {
                for (int j = 0; j < n; j++)
                {
                    int t = o * n + j;
                    if (!slot.TryGetValue(t, out int i)) continue;
                    // a filter placed with shift sh lands at dx = v − p − sh, i.e. band column v − p − sh + μ
                    int ch = mu - p - s.ShiftH(t, g), cv = mu - p - s.ShiftV(t, g);
                    for (int u = 0; u < k; u++)
                    for (int v = 0; v < k; v++)
                    {
                        double wt = w[(i * k + u) * k + v];
                        c.H[c.HAt(o, u, ch + v)] += ah * wt;
                        c.V[c.VAt(o, cv + u, v)] += av * wt;
                    }
                }
                if (slot.TryGetValue(s.Identity(o, g), out int id))
                {
                    for (int u = 0; u < k; u++)
                    for (int v = 0; v < k; v++)
                    {
                        c.H[c.HAt(o, u, mu - half + v)] += ai * w[(id * k + u) * k + v];
                    }
                }
            }
            c.H[c.HAt(o, half, mu)] += ar;
        }
        return c;
    }

    /// <summary>The cross as a depthwise convolution, naive loops (for tests and as the CPU target's oracle).</summary>
    public static double[] Apply(CrossKernels c, ReadOnlySpan<double> x, int batch, int h, int w,
        ReadOnlySpan<double> bias)
    {
        int r = c.Rep, k = c.Small, half = (k - 1) / 2;
        var y = new double[(long)batch * r * h * w];
        for (int b = 0; b < batch; b++)
        for (int o = 0; o < r; o++)
        {
            long plane = ((long)b * r + o) * h * w;
            for (int yy = 0; yy < h; yy++)
            for (int xx = 0; xx < w; xx++)
            {
                double acc = bias[o];
                for (int u = 0; u < k; u++)
                {
                    int sy = yy + u - half;
                    if (sy < 0 || sy >= h) continue;
                    for (int cc = 0; cc < c.BandWidth; cc++)
                    {
                        int sx = xx + cc - c.Mu;
                        if (sx >= 0 && sx < w) acc += c.H[c.HAt(o, u, cc)] * x[(int)(plane + (long)sy * w + sx)];
                    }
                }
                for (int cc = 0; cc < c.BandWidth; cc++)
                {
                    int sy = yy + cc - c.Mu;
                    if (sy < 0 || sy >= h) continue;
                    for (int v = 0; v < k; v++)
                    {
                        int sx = xx + v - half;
                        if (sx >= 0 && sx < w) acc += c.V[c.VAt(o, cc, v)] * x[(int)(plane + (long)sy * w + sx)];
                    }
                }
                y[plane + (long)yy * w + xx] = acc;
            }
        }
        return y;
    }
}
