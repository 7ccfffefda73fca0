using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using ShiftWise.IR.Ops;
using static ShiftWise.Runtime.Cpu.Activations;

namespace ShiftWise.Runtime.Cpu;

/// <summary>
/// The expand GEMM of a pointwise pair (in_nchw, channel-last output) as BLAS calls on blocks of positions, each
/// block's epilogue (bias, activation, GRN's sums of squares, the residual without GRN) applied right after its
/// call while the block is still in L2: the "better use of OpenBLAS", measured faster than both one call per
/// sample with the epilogue passes after it and the register-tiled <see cref="GemmTiled"/> (bench gemm), so it is
/// the default where OpenBLAS is installed. GRN's sums go per (block, channel) and are added in block order, so the
/// result does not depend on the schedule. One <see cref="Run"/> at a time per instance.
/// </summary>
internal sealed unsafe class GemmBlocked
{
    /// <summary>Bytes of output per block: half of a 1 MB L2 (BLAS packs the weights again for every block).</summary>
    private const int BlockBytes = 512 << 10;

    /// <summary>
    /// Below this many positions per thread a sample is cut by channels instead of positions: each thread then
    /// packs its share of the weights rather than all of them, and the blocks stay even (stage 2 of sw-tiny has
    /// 196 positions and 1280 channels, stage 3 49 and 2560).
    /// </summary>
    private const int RowsPerThreadMin = 256;

    private readonly Gemm _op;
    private readonly BlasBackend _backend;
    private readonly int _batch, _hw, _k, _n, _rowsPer, _rowBlocks, _colsPer, _colBlocks;
    private readonly double[] _partial;

    /// <summary>Whether this form runs the op: in_nchw with a channel-last output.</summary>
    public static bool Supports(Gemm op) => op.InNchw && !op.OutNchw;

    /// <summary>
    /// Binds the shapes; <paramref name="rows"/> &gt; 0 fixes the positions per block and <paramref name="cols"/>
    /// &gt; 0 the channels per block (tests).
    /// </summary>
    public GemmBlocked(Gemm op, int batch, int hw, int k, int n, BlasBackend backend, int rows = 0, int cols = 0)
    {
        if (!Supports(op)) throw new ArgumentException($"the blocked BLAS GEMM does not run {op}");
        (_op, _batch, _hw, _k, _n, _backend) = (op, batch, hw, k, n, backend);
        int threads = Blas.Threads;
        bool byCols = rows <= 0 && cols <= 0 && threads > 1 && hw < threads * RowsPerThreadMin && n >= 16 * threads;
        if (byCols || cols > 0)
        {
            _colsPer = cols > 0 ? cols : ((n + threads - 1) / threads + 15) / 16 * 16;
            _rowsPer = rows > 0 ? rows : Math.Max(1, hw);
        }
        else
        {
            // blocks that fit half of L2, and at least one per thread in a sample when its blocks run in parallel
            int perThread = (hw + threads - 1) / threads;
            int l2 = BlockBytes / (Math.Max(1, n) * sizeof(float));
            _rowsPer = rows > 0 ? rows : Math.Clamp(Math.Min(l2, (perThread + 15) / 16 * 16), 16, Math.Max(16, hw));
            _colsPer = Math.Max(1, n);
        }
        _rowBlocks = Math.Max(1, (hw + _rowsPer - 1) / _rowsPer);
        _colBlocks = Math.Max(1, (n + _colsPer - 1) / _colsPer);
        _partial = op.HasGrn ? GC.AllocateArray<double>(batch * _rowBlocks * n, pinned: true) : [];
    }

    /// <summary>
    /// Y = act(Xᵀ·Wᵀ + bias) (+ residual without GRN) per sample; with GRN, <paramref name="sumsq"/> (batch × N)
    /// receives the sums of squares after the activation and the caller applies the scale. With
    /// <see cref="Blas.OwnThreads"/> the (sample, block) pairs run in parallel, each one single-threaded OpenBLAS
    /// call followed by its epilogue on the same thread. GRN's partial sums go per (sample, block of positions,
    /// channel) and are added in block order, so the result does not depend on which thread ran which block.
    /// </summary>
    public void Run(ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<float> y, float* bias, float* res,
        double[]? sumsq)
    {
        if (x.Length < _batch * _k * _hw || w.Length < _k * _n || y.Length < _batch * _hw * _n)
        {
            throw new ArgumentException($"the blocked GEMM needs x {_batch * _k * _hw}, w {_k * _n} and y "
                + $"{_batch * _hw * _n} floats; got {x.Length}, {w.Length} and {y.Length}");
        }
        int items = _batch * _rowBlocks * _colBlocks;
        bool parallel = Blas.OwnThreads && Native.OpenBlas.Library.Found && Blas.Threads > 1 && items > 1;
        fixed (float* px = x, pw = w, py = y)
        {
            var (ax, aw, ay, ab, ar) = ((nint)px, (nint)pw, (nint)py, (nint)bias, (nint)res);
            if (parallel)
            {
                CpuWorkers.For(items, Blas.Threads,
                    i => Block(i, (float*)ax, (float*)aw, (float*)ay, (float*)ab, (float*)ar, single: true));
            }
            else
            {
                for (int i = 0; i < items; i++) Block(i, px, pw, py, bias, res, single: false);
            }
        }
        if (sumsq is null || !_op.HasGrn) return;
        for (int b = 0; b < _batch; b++)
        {
            for (int c = 0; c < _n; c++)
            {
                double s = 0;
                for (int t = 0; t < _rowBlocks; t++) s += _partial[(b * _rowBlocks + t) * _n + c];
                sumsq[b * _n + c] = s;
            }
        }
    }

    /// <summary>
    /// One block (positions × channels) of one sample: its GEMM, then its epilogue while it is in cache.
    /// </summary>
    private void Block(int item, float* x, float* w, float* y, float* bias, float* res, bool single)
    {
        int cb = item % _colBlocks, rest = item / _colBlocks, rb = rest % _rowBlocks, b = rest / _rowBlocks;
        int k = _k, n = _n, hw = _hw, h0 = rb * _rowsPer, rows = Math.Min(_rowsPer, hw - h0);
        int c0 = cb * _colsPer, cols = Math.Min(_colsPer, n - c0);
        if (rows <= 0 || cols <= 0) return;
        float* xb = x + (long)b * k * hw + h0, yb = y + ((long)b * hw + h0) * n + c0, wb = w + (long)c0 * k;
        int ldk = Math.Max(1, k), ldn = Math.Max(1, n), ldhw = Math.Max(1, hw);
        if (single)
        {
            Blas.OpenBlasSingle(true, true, rows, cols, k, xb, ldhw, wb, ldk, yb, ldn);
        }
        else
        {
            var xs = new ReadOnlySpan<float>(xb, k == 0 ? 0 : (k - 1) * hw + rows);
            Blas.SgemmUsing(_backend, true, true, rows, cols, k, 1f, xs, ldhw,
                new ReadOnlySpan<float>(wb, k == 0 ? 0 : (cols - 1) * k + k), ldk, 0f,
                new Span<float>(yb, (rows - 1) * n + cols), ldn);
        }
        float* rb0 = res == null ? null : res + ((long)b * hw + h0) * n + c0;
        double* sums = null;
        if (_op.HasGrn)
        {
            // _partial is allocated pinned, so its address outlives the fixed statement
            fixed (double* p = _partial) sums = p + (long)(b * _rowBlocks + rb) * n + c0;
        }
        Epilogue(yb, rows, cols, bias == null ? null : bias + c0, rb0, sums);
    }

    private void Epilogue(float* y, int rows, int cols, float* bias, float* res, double* sums)
    {
        switch (_op.Act)
        {
            case GemmAct.Gelu: Epilogue<GeluOp>(y, rows, cols, bias, res, sums); break;
            case GemmAct.Relu: Epilogue<ReluOp>(y, rows, cols, bias, res, sums); break;
            case GemmAct.Sigmoid: Epilogue<SigmoidOp>(y, rows, cols, bias, res, sums); break;
            default: Epilogue<NoOp>(y, rows, cols, bias, res, sums); break;
        }
    }

    /// <summary>
    /// Rows of <paramref name="n"/> channels (stride N): bias and activation per channel, sums of squares per
    /// channel in float64 into <paramref name="sums"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Epilogue<T>(float* y, int rows, int n, float* bias, float* res, double* sums)
        where T : struct, ILanes
    {
        int stride = _n;
        bool grn = _op.HasGrn, addRes = res != null && !grn;
        var tmp = stackalloc float[8];
        {
            if (grn) new Span<double>(sums, n).Clear();
            for (int r = 0; r < rows; r++)
            {
                float* row = y + (long)r * stride, rr = addRes ? res + (long)r * stride : null;
                int c = 0;
                for (; c + 8 <= n; c += 8)
                {
                    var v = Vector256.Load(row + c);
                    if (bias != null) v += Vector256.Load(bias + c);
                    v = T.Apply(v);
                    if (grn)
                    {
                        var (lo, hi) = Vector256.Widen(v);
                        Vector256.Store(Vector256.MultiplyAddEstimate(lo, lo, Vector256.Load(sums + c)), sums + c);
                        var s4 = sums + c + 4;
                        Vector256.Store(Vector256.MultiplyAddEstimate(hi, hi, Vector256.Load(s4)), s4);
                    }
                    if (rr != null) v += Vector256.Load(rr + c);
                    Vector256.Store(v, row + c);
                }
                if (c == n) continue;
                int count = n - c;
                for (int t = 0; t < 8; t++) tmp[t] = t < count ? row[c + t] + (bias != null ? bias[c + t] : 0f) : 0f;
                Vector256.Store(T.Apply(Vector256.Load(tmp)), tmp);
                for (int t = 0; t < count; t++)
                {
                    float h = tmp[t];
                    if (grn) sums[c + t] += (double)h * h;
                    row[c + t] = rr != null ? h + rr[c + t] : h;
                }
            }
        }
    }
}
