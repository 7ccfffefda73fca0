using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using ShiftWise.IR.Ops;
using static ShiftWise.Runtime.Cpu.Activations;

namespace ShiftWise.Runtime.Cpu;

/// <summary>
/// What follows the GEMM of a <see cref="Gemm"/> node, in place on its output: bias, activation, GRN and residual.
/// The output is either channel-last (rows of N channels) or channel-first (per sample, N rows of HW positions).
/// Without GRN it is one pass. With GRN the statistics need the whole activated sample first, so pass one applies
/// bias and activation and sums squares per (sample, channel) in float64; pass two applies
/// y = (γ·G/(mean G + ε) + 1)·h + β and the residual. Work items are fixed at construction, and every sum runs in
/// one item in a fixed order, so the result does not depend on the schedule.
/// </summary>
internal sealed unsafe class GemmEpilogue
{
    /// <summary>Elements per work item: big enough to amortise the fork, small enough to stay in L2.</summary>
    private const int Chunk = 16384;

    /// <summary>Channels per statistics item in channel-last layout (one cache line per row).</summary>
    private const int Strip = 16;

    private readonly GemmAct _act;
    private readonly bool _grn, _channelFirst, _needed, _parallel;
    private readonly double _eps;
    private readonly int _batch, _hw, _n, _rows, _rowLength, _rowsPerItem, _items, _strips;
    private readonly double[] _sumsq;
    private readonly float[] _scale;
    private readonly Action<int> _pass1, _stats, _pass2;
    private Buf _y, _bias, _beta, _res;
    private bool _hasBias, _hasRes;

    public GemmEpilogue(Gemm op, int batch, int hw, int n, bool channelFirst)
    {
        (_act, _grn, _eps, _channelFirst) = (op.Act, op.HasGrn, op.GrnEps, channelFirst);
        (_batch, _hw, _n) = (batch, hw, n);
        _needed = op.HasBias || op.Act != GemmAct.None || op.HasGrn || op.HasResidual;
        // a "row" is a run of contiguous elements that share their bias and scale handling
        (_rows, _rowLength) = channelFirst ? (batch * n, hw) : (batch * hw, n);
        _rowsPerItem = Math.Max(1, Chunk / Math.Max(1, _rowLength));
        _items = (_rows + _rowsPerItem - 1) / _rowsPerItem;
        _strips = (n + Strip - 1) / Strip;
        _parallel = (long)_rows * _rowLength >= Chunk * 2L;
        _sumsq = op.HasGrn ? new double[batch * n] : [];
        _scale = op.HasGrn ? new float[batch * n] : [];
        (_pass1, _stats, _pass2) = (Pass1, Stats, Pass2);
    }

    /// <summary>Applies the epilogue to <paramref name="y"/>; absent operands are null.</summary>
    public void Run(Buf y, Buf? bias, Buf? gamma, Buf? beta, Buf? residual)
    {
        if (!_needed) return;
        (_y, _hasBias, _hasRes) = (y, bias.HasValue, residual.HasValue);
        (_bias, _res, _beta) = (bias ?? default, residual ?? default, beta ?? default);
        try
        {
            if (!_grn)
            {
                Fork(_items, _pass1);
                return;
            }
            if (_channelFirst) Fork(_items, _pass1);
            else Fork(_batch * _strips, _stats);
            Scales(gamma!.Value.Span);
            Fork(_items, _pass2);
        }
        finally
        {
            // drop the references so the kernel does not keep an arena alive between runs
            (_y, _bias, _beta, _res) = (default, default, default, default);
        }
    }

    /// <summary>
    /// Sums of squares per (sample, channel) after the activation: <see cref="GemmTiled"/> writes them here before
    /// <see cref="ApplyGrn"/> or <see cref="GrnScales"/>.
    /// </summary>
    internal double[] Sums => _sumsq;

    /// <summary>
    /// GRN's second pass alone, on an output that already holds bias and activation and whose sums of squares are
    /// in <see cref="Sums"/>: y = scale·h + β (+ residual).
    /// </summary>
    internal void ApplyGrn(Buf y, Buf gamma, Buf beta, Buf? residual)
    {
        (_y, _beta, _hasRes, _res) = (y, beta, residual.HasValue, residual ?? default);
        try
        {
            Scales(gamma.Span);
            Fork(_items, _pass2);
        }
        finally
        {
            (_y, _beta, _res) = (default, default, default);
        }
    }

    /// <summary>
    /// GRN's scale γ·G/(mean G + ε) + 1 per (sample, channel) from <see cref="Sums"/>, batch × N; the array
    /// is this instance's and is overwritten by the next call.
    /// </summary>
    internal float[] GrnScales(ReadOnlySpan<float> gamma)
    {
        Scales(gamma);
        return _scale;
    }

    private void Fork(int items, Action<int> body)
    {
        if (_parallel && items > 1)
        {
            CpuWorkers.For(items, body);
            return;
        }
        for (int i = 0; i < items; i++) body(i);
    }

    /// <summary>G = √Σh², scale = γ·G/(mean G + ε) + 1, per sample and channel.</summary>
    private void Scales(ReadOnlySpan<float> gamma)
    {
        for (int s = 0; s < _batch; s++)
        {
            var q = _sumsq.AsSpan(s * _n, _n);
            double sum = 0;
            for (int c = 0; c < _n; c++) sum += q[c] = Math.Sqrt(q[c]);
            double denominator = sum / _n + _eps;
            for (int c = 0; c < _n; c++) _scale[s * _n + c] = (float)(gamma[c] * q[c] / denominator + 1);
        }
    }

    private void Pass1(int item)
    {
        switch (_act)
        {
            case GemmAct.Gelu: Pass1<GeluOp>(item); break;
            case GemmAct.Relu: Pass1<ReluOp>(item); break;
            case GemmAct.Sigmoid: Pass1<SigmoidOp>(item); break;
            default: Pass1<NoOp>(item); break;
        }
    }

    private void Stats(int item)
    {
        switch (_act)
        {
            case GemmAct.Gelu: Stats<GeluOp>(item); break;
            case GemmAct.Relu: Stats<ReluOp>(item); break;
            case GemmAct.Sigmoid: Stats<SigmoidOp>(item); break;
            default: Stats<NoOp>(item); break;
        }
    }

    /// <summary>
    /// Bias and activation, then the residual (without GRN) or the sum of squares of each channel-first row (with
    /// GRN; channel-last statistics are gathered by <see cref="Stats{T}"/> instead).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Pass1<T>(int item) where T : struct, ILanes
    {
        int r0 = item * _rowsPerItem, r1 = Math.Min(_rows, r0 + _rowsPerItem), len = _rowLength;
        fixed (float* py = _y.Span, pb = _hasBias ? _bias.Span : default, pr = _hasRes ? _res.Span : default)
        {
            for (int r = r0; r < r1; r++)
            {
                float* row = py + (long)r * len;
                float* res = _hasRes && !_grn ? pr + (long)r * len : null;
                if (_channelFirst)
                {
                    var vb = Vector256.Create(_hasBias ? pb[r % _n] : 0f);
                    double q = 0;
                    int j = 0;
                    var acc = Vector256<double>.Zero;
                    for (; j + 8 <= len; j += 8)
                    {
                        var v = T.Apply(Vector256.Load(row + j) + vb);
                        if (_grn) acc = SumSquares(v, acc);
                        if (res != null) v += Vector256.Load(res + j);
                        Vector256.Store(v, row + j);
                    }
                    if (j < len)
                    {
                        int count = len - j;
                        var v = T.Apply(LoadPart(row + j, count) + vb);
                        if (res != null) v += LoadPart(res + j, count);
                        StorePart(v, row + j, count);
                        // only the real lanes count: act(0 + bias) in the padding need not be zero
                        for (int t = 0; t < count; t++) q += (double)row[j + t] * row[j + t];
                    }
                    if (_grn) _sumsq[r] = Vector256.Sum(acc) + q;
                }
                else
                {
                    int j = 0;
                    for (; j + 8 <= len; j += 8)
                    {
                        var v = Vector256.Load(row + j);
                        if (_hasBias) v += Vector256.Load(pb + j);
                        v = T.Apply(v);
                        if (res != null) v += Vector256.Load(res + j);
                        Vector256.Store(v, row + j);
                    }
                    if (j < len)
                    {
                        int count = len - j;
                        var v = LoadPart(row + j, count);
                        if (_hasBias) v += LoadPart(pb + j, count);
                        v = T.Apply(v);
                        if (res != null) v += LoadPart(res + j, count);
                        StorePart(v, row + j, count);
                    }
                }
            }
        }
    }

    /// <summary>
    /// Channel-last with GRN: bias and activation for one sample's strip of up to 16 channels, down all its rows,
    /// summing squares per channel. Strips rather than row blocks so that each sum lives in one item and the
    /// scratch stays batch × N.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Stats<T>(int item) where T : struct, ILanes
    {
        int s = item / _strips, c0 = item % _strips * Strip;
        int w0 = Math.Min(8, _n - c0), w1 = Math.Min(8, _n - c0 - 8);
        fixed (float* py = _y.Span, pb = _hasBias ? _bias.Span : default)
        {
            var b0 = _hasBias ? LoadPart(pb + c0, w0) : default;
            var b1 = _hasBias && w1 > 0 ? LoadPart(pb + c0 + 8, w1) : default;
            Vector256<double> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int p = 0; p < _hw; p++)
            {
                float* at = py + ((long)s * _hw + p) * _n + c0;
                var v = T.Apply(LoadPart(at, w0) + b0);
                StorePart(v, at, w0);
                (var lo, var hi) = Vector256.Widen(Mask(v, w0));
                a0 = Vector256.MultiplyAddEstimate(lo, lo, a0);
                a1 = Vector256.MultiplyAddEstimate(hi, hi, a1);
                if (w1 <= 0) continue;
                v = T.Apply(LoadPart(at + 8, w1) + b1);
                StorePart(v, at + 8, w1);
                (lo, hi) = Vector256.Widen(Mask(v, w1));
                a2 = Vector256.MultiplyAddEstimate(lo, lo, a2);
                a3 = Vector256.MultiplyAddEstimate(hi, hi, a3);
            }
            var sums = stackalloc double[Strip];
            a0.Store(sums);
            a1.Store(sums + 4);
            a2.Store(sums + 8);
            a3.Store(sums + 12);
            for (int c = 0; c < Math.Min(Strip, _n - c0); c++) _sumsq[s * _n + c0 + c] = sums[c];
        }
    }

    /// <summary>
    /// y = scale·h + β (+ residual) with the per-sample, per-channel scales of <see cref="Scales"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Pass2(int item)
    {
        int r0 = item * _rowsPerItem, r1 = Math.Min(_rows, r0 + _rowsPerItem), len = _rowLength;
        fixed (float* py = _y.Span, pbeta = _beta.Span, pr = _hasRes ? _res.Span : default, ps = _scale)
        {
            for (int r = r0; r < r1; r++)
            {
                float* row = py + (long)r * len;
                float* res = _hasRes ? pr + (long)r * len : null;
                // channel-first: one scale per row; channel-last: a vector of them per row, from the row's sample
                float* scale = _channelFirst ? null : ps + (long)(r / _hw) * _n;
                var vs = _channelFirst ? Vector256.Create(ps[r]) : default;
                var vb = _channelFirst ? Vector256.Create(pbeta[r % _n]) : default;
                for (int j = 0; j < len; j += 8)
                {
                    int count = Math.Min(8, len - j);
                    var h = LoadPart(row + j, count);
                    var v = _channelFirst
                        ? Vector256.MultiplyAddEstimate(vs, h, vb)
                        : Vector256.MultiplyAddEstimate(LoadPart(scale + j, count), h, LoadPart(pbeta + j, count));
                    if (res != null) v += LoadPart(res + j, count);
                    StorePart(v, row + j, count);
                }
            }
        }
    }

    private static Vector256<double> SumSquares(Vector256<float> v, Vector256<double> acc)
    {
        var (lo, hi) = Vector256.Widen(v);
        return Vector256.MultiplyAddEstimate(hi, hi, Vector256.MultiplyAddEstimate(lo, lo, acc));
    }

    /// <summary>Zeroes lanes from <paramref name="count"/> on, so padding adds nothing to a sum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Mask(Vector256<float> v, int count) =>
        count >= 8 ? v : v & Vector256.GreaterThan(Vector256.Create((float)count), Lanes).AsSingle();

    private static readonly Vector256<float> Lanes = Vector256.Create(0f, 1, 2, 3, 4, 5, 6, 7);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> LoadPart(float* p, int count)
    {
        if (count >= 8) return Vector256.Load(p);
        Vector256<float> v = default;
        var d = (float*)&v;
        for (int i = 0; i < count; i++) d[i] = p[i];
        return v;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StorePart(Vector256<float> v, float* p, int count)
    {
        if (count >= 8)
        {
            Vector256.Store(v, p);
            return;
        }
        var s = (float*)&v;
        for (int i = 0; i < count; i++) p[i] = s[i];
    }
}
