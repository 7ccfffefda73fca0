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
        _rowsPer = rows > 0 ? rows
            : Math.Clamp(BlockBytes / (Math.Max(1, n) * sizeof(float)), 16, Math.Max(16, hw));
        _blocks = Math.Max(1, (hw + _rowsPer - 1) / _rowsPer);
        _partial = op.HasGrn ? new double[_blocks * n] : [];
    }

    /// <summary>
    /// Y = act(Xᵀ·Wᵀ + bias) (+ residual without GRN) per sample; with GRN, <paramref name="sumsq"/> (batch × N)
    /// receives the sums of squares after the activation and the caller applies the scale.
    /// </summary>
    public void Run(ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<float> y, float* bias, float* res,
        double[]? sumsq)
    {
        int k = _k, n = _n, hw = _hw, ldk = Math.Max(1, k), ldn = Math.Max(1, n), ldhw = Math.Max(1, hw);
        for (int b = 0; b < _batch; b++)
        {
            for (int blk = 0; blk < _blocks; blk++)
            {
                int h0 = blk * _rowsPer, rows = Math.Min(_rowsPer, hw - h0);
                if (rows <= 0) continue;
                var xb = x.Slice(b * k * hw + h0, k == 0 ? 0 : (k - 1) * hw + rows);
                var yb = y.Slice((b * hw + h0) * n, rows * n);
                Blas.SgemmUsing(_backend, true, true, rows, n, k, 1f, xb, ldhw, w, ldk, 0f, yb, ldn);
                fixed (float* py = yb)
                {
                    Epilogue(py, rows, bias, res == null ? null : res + (long)(b * hw + h0) * n, blk);
                }
            }
            if (sumsq is null || !_op.HasGrn) continue;
            for (int c = 0; c < n; c++)
            {
                double s = 0;
                for (int t = 0; t < _blocks; t++) s += _partial[t * n + c];
                sumsq[b * n + c] = s;
            }
        }
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
