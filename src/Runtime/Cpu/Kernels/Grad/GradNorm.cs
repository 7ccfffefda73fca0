using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>
/// batch_norm over an (N, C, inner) view, split over channels; each channel's rows stay in cache through its
/// passes. Per channel: the statistics (batch mean and biased variance from x in train mode, as
/// <see cref="BatchStats"/> but in double lanes; the running statistics in eval mode), then Σg and Σg·(x − mean)
/// in double, giving gw = inv·Σg·(x − mean) and gb = Σg, then gx = w·inv·g (eval) or
/// w·inv·(g − Σg/count − x̂·Σg·x̂/count) (train) in one fused pass, formed in double. Running mean and
/// variance get zero gradient; a nonzero gradient for the updated running statistics (train outputs 1, 2) is refused,
/// as the rule refuses it.
/// </summary>
internal sealed class BatchNormGradKernel : ElementGradKernel
{
    private readonly bool _train;
    private readonly double _eps;
    private readonly int _n, _c, _inner, _parts;
    private readonly Action<int> _part;
    private Buf _x, _w, _rm, _rv, _g;
    private Buf? _gx, _gw, _gb;

    public BatchNormGradKernel(KernelRequest r) : base(r)
    {
        var bn = (BatchNorm)Op.Of;
        (_train, _eps) = (bn.Mode == Mode.Train, bn.Eps);
        var x = InputTypes[0].Shape;
        int count = Count(r, x);
        (_n, _c) = (x[0], x[1]);
        _inner = count / Math.Max(1, _n * _c);
        _parts = Par.Parts(count * 8L, _c);
        _part = Part;
    }

    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        for (int j = 1; j < M; j++)
        {
            if (Gy(inputs, j) is { } gs && gs.Span.IndexOfAnyExcept(0f) >= 0)
            {
                throw new IrException($"{Node}: output {j} (updated running statistics) is not differentiable");
            }
        }
        for (int i = 3; i < 5; i++)
        {
            if (Gx(outputs, i) is { } z) z.Span.Clear();
        }
        (_gx, _gw, _gb) = (Gx(outputs, 0), Gx(outputs, 1), Gx(outputs, 2));
        if (G0(inputs) is not { } g)
        {
            // output 0 does not reach the loss: every gradient is zero
            for (int i = 0; i < 3; i++)
            {
                if (Gx(outputs, i) is { } z) z.Span.Clear();
            }
            return;
        }
        (_x, _w, _rm, _rv, _g) = (X(inputs, 0), X(inputs, 1), X(inputs, 3), X(inputs, 4), g);
        Par.Run(_parts, _part);
    }

    private void Part(int p)
    {
        ReadOnlySpan<float> x = _x.Span, g = _g.Span;
        long count = (long)_n * _inner;
        var (s, e) = Par.Range(p, _parts, _c);
        for (int ch = s; ch < e; ch++)
        {
            double mean, var;
            if (_train)
            {
                double sx = 0, sq = 0;
                for (int b = 0; b < _n; b++) sx += GradSimd.SumD(x.Slice((b * _c + ch) * _inner, _inner));
                mean = sx / count;
                for (int b = 0; b < _n; b++) sq += GradSimd.SumSqDevD(x.Slice((b * _c + ch) * _inner, _inner), mean);
                var = sq / count;
            }
            else
            {
                (mean, var) = (_rm.Span[ch], _rv.Span[ch]);
            }
            double inv = 1 / Math.Sqrt(var + _eps);
            double sumG = 0, sumGD = 0;
            for (int b = 0; b < _n; b++)
            {
                int at = (b * _c + ch) * _inner;
                var (sg, sgd) = GradSimd.SumDotDevD(g.Slice(at, _inner), x.Slice(at, _inner), mean);
                sumG += sg;
                sumGD += sgd;
            }
            if (_gw is { } gw) gw.Span[ch] = (float)(sumGD * inv);
            if (_gb is { } gb) gb.Span[ch] = (float)sumG;
            if (_gx is not { } gxb) continue;
            var gx = gxb.Span;
            double a = _w.Span[ch] * inv;
            // eval: gx = a·g; train: gx = a·g + k·(x − mean) + c with k = −a·inv²·Σg(x − mean)/count, c =
            // −a·Σg/count, in double: with few values per channel the result is a small difference of these terms
            var (k, c) = _train ? (-a * inv * inv * sumGD / count, -a * sumG / count) : (0.0, 0.0);
            for (int b = 0; b < _n; b++)
            {
                int at = (b * _c + ch) * _inner;
                if (_train)
                {
                    GradSimd.AffineDevD(g.Slice(at, _inner), a, x.Slice(at, _inner), mean, k, c, gx.Slice(at, _inner));
                }
                else Simd.MulScalar(g.Slice(at, _inner), (float)a, gx.Slice(at, _inner));
            }
        }
    }
}

/// <summary>
/// scale_bias y = x·s[c] + b[c]: gx = g·s[c], gs[c] = Σg·x, gb[c] = Σg. Split over channels, each channel's rows
/// summed in double; a channel-last layout (inner = 1) goes through <see cref="ColumnSums"/> instead.
/// </summary>
internal sealed class ScaleBiasGradKernel : ElementGradKernel
{
    private readonly int _outer, _c, _inner, _parts;
    private readonly ColumnSums? _columns;
    private readonly Action<int> _part;
    private Buf _x, _s, _g;
    private Buf? _gx, _gs, _gb;

    public ScaleBiasGradKernel(KernelRequest r) : base(r)
    {
        var x = InputTypes[0].Shape;
        int a = x.Axis(((ScaleBias)Op.Of).Axis);
        (_c, _inner) = (x[a], (int)x.Strides()[a]);
        int count = Count(r, x);
        _outer = count / Math.Max(1, _c * _inner);
        if (_inner == 1)
        {
            _columns = new ColumnSums(_outer, _c, 2);
            _parts = Par.Parts(count * 3L, _columns.Chunks);
        }
        else
        {
            _parts = Par.Parts(count * 3L, _c);
        }
        _part = Part;
    }

    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        (_x, _s, _g) = (X(inputs, 0), X(inputs, 1), Dy(inputs));
        (_gx, _gs, _gb) = (Gx(outputs, 0), Gx(outputs, 1), Gx(outputs, 2));
        Par.Run(_parts, _part);
        if (_columns is null) return;
        if (_gs is { } gs) _columns.Total(0, gs.Span);
        if (_gb is { } gb) _columns.Total(1, gb.Span);
    }

    private void Part(int p)
    {
        ReadOnlySpan<float> x = _x.Span, scale = _s.Span, g = _g.Span;
        if (_columns is { } cols)
        {
            var (cs, ce) = Par.Range(p, _parts, cols.Chunks);
            for (int chunk = cs; chunk < ce; chunk++)
            {
                var (r0, r1) = cols.Rows(chunk);
                var gsum = cols.Partial(chunk, 0);
                var bsum = cols.Partial(chunk, 1);
                for (int row = r0; row < r1; row++)
                {
                    var gr = g.Slice(row * _c, _c);
                    GradSimd.MulAddTo(gr, x.Slice(row * _c, _c), gsum);
                    Simd.AddTo(gr, bsum);
                    if (_gx is { } gx) Simd.Mul(gr, scale, gx.Span.Slice(row * _c, _c));
                }
            }
            return;
        }
        var (s, e) = Par.Range(p, _parts, _c);
        for (int ch = s; ch < e; ch++)
        {
            double sumG = 0, sumGX = 0;
            for (int o = 0; o < _outer; o++)
            {
                int at = (o * _c + ch) * _inner;
                var gr = g.Slice(at, _inner);
                sumG += Simd.Sum(gr);
                sumGX += GradSimd.Dot(gr, x.Slice(at, _inner));
                if (_gx is { } gx) Simd.MulScalar(gr, scale[ch], gx.Span.Slice(at, _inner));
            }
            if (_gs is { } gs) gs.Span[ch] = (float)sumGX;
            if (_gb is { } gb) gb.Span[ch] = (float)sumG;
        }
    }
}

/// <summary>
/// Per-column sums over the rows of a (rows, width) layout that do not depend on the partitioning: rows go in
/// fixed chunks of <see cref="ChunkRows"/>, each chunk summed in float into its own partial (written by whichever
/// part owns the chunk), and <see cref="Total"/> adds the partials in chunk order in double.
/// </summary>
internal sealed class ColumnSums
{
    /// <summary>Rows per chunk: few enough for float partial sums, many enough that the partials stay small.</summary>
    public const int ChunkRows = 64;

    private readonly int _rows, _width, _sums;
    private readonly float[] _partial;
    private readonly double[] _total;

    public ColumnSums(int rows, int width, int sums, int chunkRows = ChunkRows)
    {
        (_rows, _width, _sums) = (rows, width, sums);
        ChunkSize = chunkRows;
        Chunks = (rows + chunkRows - 1) / chunkRows;
        _partial = new float[(long)Chunks * sums * width];
        _total = new double[width];
    }

    /// <summary>Rows per chunk.</summary>
    public int ChunkSize { get; }

    /// <summary>The number of chunks.</summary>
    public int Chunks { get; }

    /// <summary>The rows [start, end) of a chunk.</summary>
    public (int Start, int End) Rows(int chunk) => (chunk * ChunkSize, Math.Min(_rows, (chunk + 1) * ChunkSize));

    /// <summary>The cleared partial of sum <paramref name="s"/> for a chunk, to accumulate into.</summary>
    public Span<float> Partial(int chunk, int s)
    {
        var span = _partial.AsSpan((chunk * _sums + s) * _width, _width);
        span.Clear();
        return span;
    }

    /// <summary>Writes the total of sum <paramref name="s"/> over all chunks, in chunk order.</summary>
    public void Total(int s, Span<float> into)
    {
        Array.Clear(_total);
        for (int chunk = 0; chunk < Chunks; chunk++)
        {
            GradSimd.Widen(_partial.AsSpan((chunk * _sums + s) * _width, _width), _total);
        }
        GradSimd.Narrow(_total, into);
    }
}
