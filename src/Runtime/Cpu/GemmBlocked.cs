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

    private readonly Gemm _op;
    private readonly BlasBackend _backend;
    private readonly int _batch, _hw, _k, _n, _rowsPer, _blocks;
    private readonly double[] _partial;

    /// <summary>Whether this form runs the op: in_nchw with a channel-last output.</summary>
    public static bool Supports(Gemm op) => op.InNchw && !op.OutNchw;

    /// <summary>Binds the shapes; <paramref name="rows"/> &gt; 0 fixes the positions per block (tests).</summary>
    public GemmBlocked(Gemm op, int batch, int hw, int k, int n, BlasBackend backend, int rows = 0)
    {
        if (!Supports(op)) throw new ArgumentException($"the blocked BLAS GEMM does not run {op}");
        (_op, _batch, _hw, _k, _n, _backend) = (op, batch, hw, k, n, backend);
        // blocks that fit half of L2, and at least one per thread in a sample when its blocks run in parallel
        int perThread = (hw + Blas.Threads - 1) / Blas.Threads;
        int l2 = BlockBytes / (Math.Max(1, n) * sizeof(float));
        _rowsPer = rows > 0 ? rows : Math.Clamp(Math.Min(l2, (perThread + 15) / 16 * 16), 16, Math.Max(16, hw));
        _blocks = Math.Max(1, (hw + _rowsPer - 1) / _rowsPer);
        _partial = op.HasGrn ? new double[batch * _blocks * n] : [];
    }

    /// <summary>
    /// Y = act(Xᵀ·Wᵀ + bias) (+ residual without GRN) per sample; with GRN, <paramref name="sumsq"/> (batch × N)
    /// receives the sums of squares after the activation and the caller applies the scale. With
    /// <see cref="Blas.OwnThreads"/> the (sample, block) pairs run in parallel, each one single-threaded OpenBLAS
    /// call followed by its epilogue on the same thread.
    /// </summary>
    public void Run(ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<float> y, float* bias, float* res,
        double[]? sumsq)
    {
        if (x.Length < _batch * _k * _hw || w.Length < _k * _n || y.Length < _batch * _hw * _n)
        {
            throw new ArgumentException($"the blocked GEMM needs x {_batch * _k * _hw}, w {_k * _n} and y "
                + $"{_batch * _hw * _n} floats; got {x.Length}, {w.Length} and {y.Length}");
        }
        int items = _batch * _blocks;
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
                for (int t = 0; t < _blocks; t++) s += _partial[(b * _blocks + t) * _n + c];
                sumsq[b * _n + c] = s;
            }
        }
    }

    /// <summary>One block of positions of one sample: its GEMM, then its epilogue while it is in cache.</summary>
    private void Block(int item, float* x, float* w, float* y, float* bias, float* res, bool single)
    {
        int b = item / _blocks, blk = item % _blocks;
        int k = _k, n = _n, hw = _hw, h0 = blk * _rowsPer, rows = Math.Min(_rowsPer, hw - h0);
        if (rows <= 0) return;
        float* xb = x + (long)b * k * hw + h0, yb = y + ((long)b * hw + h0) * n;
        int ldk = Math.Max(1, k), ldn = Math.Max(1, n), ldhw = Math.Max(1, hw);
        if (single)
        {
            Blas.OpenBlasSingle(true, true, rows, n, k, xb, ldhw, w, ldk, yb, ldn);
        }
        else
        {
            var xs = new ReadOnlySpan<float>(xb, k == 0 ? 0 : (k - 1) * hw + rows);
            Blas.SgemmUsing(_backend, true, true, rows, n, k, 1f, xs, ldhw, new ReadOnlySpan<float>(w, k * n), ldk,
                0f, new Span<float>(yb, rows * n), ldn);
        }
        Epilogue(yb, rows, bias, res == null ? null : res + ((long)b * hw + h0) * n, item);
    }

    private void Epilogue(float* y, int rows, float* bias, float* res, int blk)
    {
        switch (_op.Act)
        {
            case GemmAct.Gelu: Epilogue<GeluOp>(y, rows, bias, res, blk); break;
            case GemmAct.Relu: Epilogue<ReluOp>(y, rows, bias, res, blk); break;
            case GemmAct.Sigmoid: Epilogue<SigmoidOp>(y, rows, bias, res, blk); break;
            default: Epilogue<NoOp>(y, rows, bias, res, blk); break;
        }
    }

    /// <summary>Rows of N channels: bias and activation per channel, sums of squares per channel in float64.</summary>
    private void Epilogue<T>(float* y, int rows, float* bias, float* res, int blk) where T : struct, ILanes
    {
        int n = _n;
        bool grn = _op.HasGrn, addRes = res != null && !grn;
        var tmp = stackalloc float[8];
        fixed (double* sums = grn ? _partial.AsSpan(blk * n, n) : default)
        {
            if (grn) new Span<double>(sums, n).Clear();
            for (int r = 0; r < rows; r++)
            {
                float* row = y + (long)r * n, rr = addRes ? res + (long)r * n : null;
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
