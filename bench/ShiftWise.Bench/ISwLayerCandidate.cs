namespace ShiftWise.Bench;

/// <summary>
/// A benchmarked implementation of one SW layer (the collapsed cross on the R rep channels, plus bias).
/// Lifecycle: <see cref="Prepare"/> once (untimed: build, compile, repack weights/input into any layout),
/// then <see cref="Run"/> many times (timed), then <see cref="Output"/> is read outside the timing.
/// </summary>
internal interface ISwLayerCandidate : IDisposable
{
    /// <summary>A short unique name for tables.</summary>
    string Name { get; }

    /// <summary>What the layout/threads are, for the report (e.g. "NCHW, 2 threads").</summary>
    string Notes { get; }

    /// <summary>Prepares for <paramref name="problem"/>: copy or repack its input and weights.</summary>
    void Prepare(SwLayerProblem problem);

    /// <summary>Computes the layer from the prepared input into the candidate's own buffer; must not allocate much.</summary>
    void Run();

    /// <summary>The last <see cref="Run"/>'s result as NCHW N×R×H×W (conversions here are untimed).</summary>
    float[] Output { get; }
}

/// <summary>
/// The stand-in "naive managed cross": per (image, channel) plane, loop over the union of taps of the cross
/// (2·n·k·k − k² of them), adding w·x(shifted) over the valid row/column range. Scalar, parallel over planes.
/// </summary>
internal sealed class NaiveCrossCandidate : ISwLayerCandidate
{
    private SwLayerProblem _p = null!;
    private int[] _dy = [], _dx = [];
    private float[] _w = [], _x = [], _y = [];
    private int _threads;

    /// <inheritdoc/>
    public string Name => "naive managed cross";

    /// <inheritdoc/>
    public string Notes => $"NCHW, scalar C#, Parallel.For over planes, {_threads} threads";

    /// <inheritdoc/>
    public float[] Output => _y;

    /// <inheritdoc/>
    public void Prepare(SwLayerProblem problem)
    {
        _p = problem;
        _threads = Environment.ProcessorCount;
        SwShape s = problem.Shape;
        int nk = s.BandWidth, k = s.K, r = s.Half, top = s.Mu - r, taps = s.Taps;
        _dy = new int[taps];
        _dx = new int[taps];
        _w = new float[s.R * taps];
        var cross = problem.Cross;
        for (int o = 0; o < s.R; o++)
        {
            int t = 0;
            for (int u = 0; u < k; u++)
            for (int c = 0; c < nk; c++)
            {
                double w = cross.H[cross.HAt(o, u, c)];
                if (c >= top && c < top + k) w += cross.V[cross.VAt(o, top + u, c - top)]; // V's centre rows
                (_dy[t], _dx[t], _w[o * taps + t]) = (u - r, c - s.Mu, (float)w);
                t++;
            }
            for (int c = 0; c < nk; c++)
            {
                if (c >= top && c < top + k) continue; // folded into the H taps above
                for (int v = 0; v < k; v++)
                {
                    (_dy[t], _dx[t], _w[o * taps + t]) = (c - s.Mu, v - r, (float)cross.V[cross.VAt(o, c, v)]);
                    t++;
                }
            }
            if (t != taps) throw new InvalidOperationException($"tap count {t} != {taps}");
        }
        _x = (float[])problem.Input.Clone();
        _y = new float[problem.OutputLength];
    }

    /// <inheritdoc/>
    public void Run()
    {
        SwShape s = _p.Shape;
        var opts = new ParallelOptions { MaxDegreeOfParallelism = _threads };
        Parallel.For(0, _p.Batch * s.R, opts, plane => RunPlane(plane, plane % s.R));
    }

    private void RunPlane(int plane, int o)
    {
        SwShape s = _p.Shape;
        int h = s.H, w = s.W, taps = s.Taps, size = h * w;
        ReadOnlySpan<float> x = _x.AsSpan(plane * size, size);
        Span<float> y = _y.AsSpan(plane * size, size);
        ReadOnlySpan<float> wt = _w.AsSpan(o * taps, taps);
        y.Fill(_p.Bias[o]);
        for (int t = 0; t < taps; t++)
        {
            int dy = _dy[t], dx = _dx[t];
            float wv = wt[t];
            int y0 = Math.Max(0, -dy), y1 = Math.Min(h, h - dy);
            int x0 = Math.Max(0, -dx), x1 = Math.Min(w, w - dx);
            if (x0 >= x1) continue;
            for (int yy = y0; yy < y1; yy++)
            {
                Span<float> dst = y.Slice(yy * w + x0, x1 - x0);
                ReadOnlySpan<float> src = x.Slice((yy + dy) * w + x0 + dx, x1 - x0);
                for (int i = 0; i < dst.Length; i++) dst[i] += wv * src[i];
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
    }
}
