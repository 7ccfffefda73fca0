using System.Runtime.Intrinsics;
using ShiftWise.IR.Ops;
using static ShiftWise.Runtime.Cpu.Activations;

namespace ShiftWise.Runtime.Cpu;

/// <summary>
/// The register-tiled GEMM of <see cref="GemmKernel"/> with its epilogue applied per tile, for the two layouts of
/// a pointwise conv pair; per sample, Yᵀ (N×HW) or Y (HW×N) from the weight W (N×K):
/// <list type="bullet">
/// <item>in_nchw (the sample's input is Xᵀ, K×HW): <see cref="GemmMicro.Rows6x2{TS, TV}"/> broadcasts six weight
/// rows (channels) against a strip of 2 vectors of positions of each Xᵀ row, both read in place, so nothing is
/// packed; bias, activation and GRN's sums of squares run on the tile, which is then stored channel-first (vector
/// rows) or channel-last (transposed). A strip that would overrun a row is copied zero-padded first.</item>
/// <item>channel-last input, out_nchw: <see cref="GemmMicro.Dot4x3{TS, TV}"/>, dot products along K of four weight
/// rows with three input rows (both contiguous), then bias, activation and residual on the output rows while they
/// are in L1.</item>
/// </list>
/// Work items are (weight-row chunk × position group) per sample, sized so a chunk of W stays in L2; each output
/// and each partial GRN sum is written by one item in a fixed order, so results do not depend on the schedule.
/// GRN's scale is applied afterwards (by <see cref="GemmEpilogue"/>) or folded into the next GEMM's weights by
/// the caller (<see cref="Run"/>'s kScale). One <see cref="Run"/> at a time per instance.
/// </summary>
internal sealed unsafe class GemmTiled
{
    /// <summary>Bytes of weight rows a work item keeps hot: a chunk of W in a quarter of a 1 MB L2.</summary>
    private const int ChunkBytes = 256 << 10;

    /// <summary>Bytes of a strip's block of B (K block × 2 vectors): it stays in L1 with the weight rows.</summary>
    private const int RowBlockBytes = 16 << 10;

    /// <summary>K per block of the dot-product tile: four weight rows of it (8 KB) stay in L1.</summary>
    private const int DotBlock = 512;

    private readonly Gemm _op;
    private readonly GemmVectors _isa;
    private readonly int _batch, _hw, _k, _n, _lanes, _strip, _strips, _rowsPer, _chunks, _groups, _perGroup;
    private readonly double[] _partial;
    private float[]? _scaled;
    private readonly Action<int> _item;
    private nint _x, _w, _y, _bias, _res;

    /// <summary>Per-thread zero-padded copies of edge rows and strips, grown as needed.</summary>
    [ThreadStatic]
    private static float[]? _padA, _padB, _block;

    /// <summary>Whether the tiled GEMM runs this op (in_nchw with any epilogue, or channel-last in and out_nchw
    /// without GRN) on <paramref name="isa"/>.</summary>
    public static bool Supports(Gemm op, GemmVectors isa) =>
        isa != GemmVectors.None && GemmIsa.Supported(isa) && (op.InNchw || (op.OutNchw && !op.HasGrn));

    public GemmTiled(Gemm op, int batch, int hw, int k, int n, GemmVectors isa, int threads)
    {
        if (!Supports(op, isa)) throw new ArgumentException($"the tiled GEMM does not run {op} on {isa}");
        (_op, _isa, _batch, _hw, _k, _n) = (op, isa, batch, hw, k, n);
        _lanes = isa == GemmVectors.Avx512 ? 16 : 8;
        _strip = 2 * _lanes;
        int kb = Math.Max(1, k) * sizeof(float);
        if (op.InNchw)
        {
            // rows = weight rows in groups of 6, columns = strips of positions
            _rowsPer = Math.Clamp(ChunkBytes / kb / 6 * 6, 6, (n + 5) / 6 * 6);
            _strips = (hw + _strip - 1) / _strip;
        }
        else
        {
            // rows = weight rows in groups of 4, columns = input rows in groups of 3
            _rowsPer = Math.Clamp(ChunkBytes / kb / 4 * 4, 4, (n + 3) / 4 * 4);
            _strips = (hw + 2) / 3;
        }
        _chunks = Math.Max(1, (n + _rowsPer - 1) / _rowsPer);
        _groups = Math.Clamp((4 * threads + _chunks - 1) / _chunks, 1, Math.Max(1, _strips));
        _perGroup = (_strips + _groups - 1) / _groups;
        _groups = Math.Max(1, (_strips + _perGroup - 1) / _perGroup);
        _partial = op.HasGrn ? new double[_strips * n] : [];
        Threads = threads;
        _item = Item;
    }

    /// <summary>Degree of parallelism of <see cref="Run"/>.</summary>
    public int Threads { get; }

    /// <summary>
    /// The GEMM and the per-tile epilogue for all samples. <paramref name="sumsq"/> (batch × N, with GRN) receives
    /// each channel's sum of squares after the activation; the residual is added here only without GRN (with GRN
    /// it follows the scale). <paramref name="kScale"/> (batch × K, optional) multiplies column k of W per sample:
    /// a preceding GRN's scale folded into this GEMM.
    /// </summary>
    public void Run(float* x, float* w, float* y, float* bias, float* res, double[]? sumsq, float* kScale)
    {
        (_bias, _res) = ((nint)bias, _op.HasGrn ? 0 : (nint)res);
        // a scaled copy of W only where a GRN scale is folded in, not a second copy of every weight
        if (kScale != null) _scaled ??= new float[(long)_n * _k];
        fixed (float* scaled = _scaled)
        {
            for (int b = 0; b < _batch; b++)
            {
                _x = (nint)(x + (long)b * _hw * _k);
                _y = (nint)(y + (long)b * _hw * _n);
                if (_res != 0) _res = (nint)(res + (long)b * _hw * _n);
                _w = (nint)w;
                if (kScale != null)
                {
                    Scale(w, kScale + (long)b * _k, scaled);
                    _w = (nint)scaled;
                }
                int items = _chunks * _groups;
                if (Threads > 1 && items > 1) CpuWorkers.For(items, Threads, _item);
                else for (int i = 0; i < items; i++) _item(i);
                if (sumsq is null || !_op.HasGrn) continue;
                for (int c = 0; c < _n; c++)
                {
                    double s = 0;
                    for (int t = 0; t < _strips; t++) s += _partial[t * _n + c];
                    sumsq[b * _n + c] = s;
                }
            }
        }
    }

    private static float[] Scratch(ref float[]? a, int length) =>
        a is not null && a.Length >= length ? a : a = new float[length];

    private void Scale(float* w, float* s, float* dst)
    {
        for (int r = 0; r < _n; r++)
        {
            float* src = w + (long)r * _k, d = dst + (long)r * _k;
            int p = 0;
            for (; p + 8 <= _k; p += 8) Vector256.Store(Vector256.Load(src + p) * Vector256.Load(s + p), d + p);
            for (; p < _k; p++) d[p] = src[p] * s[p];
        }
    }

    private void Item(int index)
    {
        bool wide = _isa == GemmVectors.Avx512;
        switch (_op.Act)
        {
            case GemmAct.Gelu: Dispatch<GeluOp>(index, wide); break;
            case GemmAct.Relu: Dispatch<ReluOp>(index, wide); break;
            case GemmAct.Sigmoid: Dispatch<SigmoidOp>(index, wide); break;
            default: Dispatch<NoOp>(index, wide); break;
        }
    }

    private void Dispatch<T>(int index, bool wide) where T : struct, ILanes
    {
        if (_op.InNchw)
        {
            if (wide) Rows<Simd512, Vector512<float>, T>(index);
            else Rows<Simd256, Vector256<float>, T>(index);
        }
        else if (wide)
        {
            Dots<Simd512, Vector512<float>, T>(index);
        }
        else
        {
            Dots<Simd256, Vector256<float>, T>(index);
        }
    }

    /// <summary>One in_nchw work item: its weight rows × its strips of positions.</summary>
    private void Rows<TS, TV, T>(int index) where TS : struct, ISimd<TV> where TV : struct where T : struct, ILanes
    {
        int chunk = index / _groups, group = index % _groups, k = _k, n = _n, hw = _hw, l = _lanes, s = _strip;
        int r0 = chunk * _rowsPer, r1 = Math.Min(n, r0 + _rowsPer);
        int t0 = group * _perGroup, t1 = Math.Min(_strips, t0 + _perGroup);
        float* x = (float*)_x, w = (float*)_w, y = (float*)_y, bias = (float*)_bias, res = (float*)_res;
        bool grn = _op.HasGrn, cf = _op.OutNchw;
        // the strip's tiles for all K blocks; a channel-last output then goes out in 8×8 transposes
        fixed (float* pb = Scratch(ref _padB, Math.Max(1, k) * s), pa = Scratch(ref _padA, 6 * Math.Max(1, k)),
            blk = Scratch(ref _block, (_rowsPer + 6) * s))
        {
            for (int t = t0; t < t1; t++)
            {
                int h0 = t * s, len = Math.Min(s, hw - h0);
                bool narrow = len <= l;
                float* b = x + h0;
                nint ldb = hw;
                if (h0 + (narrow ? l : s) > hw)
                {
                    // the strip would read past its row: copy it zero-padded
                    for (int p = 0; p < k; p++)
                    {
                        for (int j = 0; j < s; j++) pb[p * s + j] = j < len ? x[(long)p * hw + h0 + j] : 0f;
                    }
                    b = pb;
                    ldb = s;
                }
                // K in blocks so that the strip's block of B stays in L1 while the weight rows stream from L2
                int kStep = RowBlockBytes / (s * sizeof(float));
                for (int kb = 0; kb < k || kb == 0; kb += kStep)
                {
                    int kl = Math.Min(kStep, k - kb);
                    for (int c0 = r0; c0 < r1; c0 += 6)
                    {
                        int rows = Math.Min(6, r1 - c0);
                        float* a = w + (long)c0 * k;
                        if (rows < 6)
                        {
                            new Span<float>(pa, 6 * k).Clear();
                            new Span<float>(a, rows * k).CopyTo(new Span<float>(pa, rows * k));
                            a = pa;
                        }
                        float* dst = blk + (c0 - r0) * s;
                        if (narrow) GemmMicro.Rows6x1<TS, TV>(kl, a + kb, k, b + kb * ldb, ldb, dst, kb > 0);
                        else GemmMicro.Rows6x2<TS, TV>(kl, a + kb, k, b + kb * ldb, ldb, dst, kb > 0);
                    }
                }
                int width = narrow ? l : s;
                for (int c = r0; c < r1; c++)
                {
                    float* v = blk + (c - r0) * s;
                    double q = GemmRows.Tile<T>(v, width, len, bias != null ? bias[c] : 0f, grn);
                    if (grn) _partial[t * n + c] = q;
                    if (cf)
                    {
                        long at = (long)c * hw + h0;
                        GemmRows.Copy(v, y + at, res != null ? res + at : null, len);
                    }
                }
                if (!cf)
                {
                    long at = (long)h0 * n + r0;
                    GemmRows.Transpose(blk, s, r1 - r0, len, y + at, n, res != null ? res + at : null);
                }
            }
        }
    }

    /// <summary>One channel-last-input work item: its weight rows × its groups of three input rows.</summary>
    private void Dots<TS, TV, T>(int index) where TS : struct, ISimd<TV> where TV : struct where T : struct, ILanes
    {
        int chunk = index / _groups, group = index % _groups, k = _k, n = _n, hw = _hw;
        int r0 = chunk * _rowsPer, r1 = Math.Min(n, r0 + _rowsPer);
        int m0 = group * _perGroup * 3, m1 = Math.Min(hw, m0 + _perGroup * 3);
        float* x = (float*)_x, w = (float*)_w, y = (float*)_y, bias = (float*)_bias, res = (float*)_res;
        float* dot = stackalloc float[12];
        fixed (float* pa = Scratch(ref _padA, 4 * Math.Max(1, k)), pb = Scratch(ref _padB, 3 * Math.Max(1, k)))
        {
            for (int c0 = r0; c0 < r1; c0 += 4)
            {
                int rows = Math.Min(4, r1 - c0);
                float* a = w + (long)c0 * k;
                if (rows < 4)
                {
                    new Span<float>(pa, 4 * k).Clear();
                    new Span<float>(a, rows * k).CopyTo(new Span<float>(pa, rows * k));
                    a = pa;
                }
                // K in blocks so that the four weight rows stay in L1 while the input rows stream from L2
                for (int kb = 0; kb < k || kb == 0; kb += DotBlock)
                {
                    int kl = Math.Min(DotBlock, k - kb);
                    for (int m = m0; m < m1; m += 3)
                    {
                        int cols = Math.Min(3, m1 - m);
                        float* b = x + (long)m * k;
                        if (cols < 3)
                        {
                            new Span<float>(pb, 3 * k).Clear();
                            new Span<float>(b, cols * k).CopyTo(new Span<float>(pb, cols * k));
                            b = pb;
                        }
                        GemmMicro.Dot4x3<TS, TV>(kl, a + kb, k, b + kb, k, dot);
                        for (int i = 0; i < rows; i++)
                        {
                            float* yr = y + (long)(c0 + i) * hw + m;
                            for (int j = 0; j < cols; j++) yr[j] = kb == 0 ? dot[i * 3 + j] : yr[j] + dot[i * 3 + j];
                        }
                    }
                }
                for (int i = 0; i < rows; i++)
                {
                    long at = (long)(c0 + i) * hw + m0;
                    GemmRows.InPlace<T>(y + at, m1 - m0, bias != null ? bias[c0 + i] : 0f,
                        res != null ? res + at : null);
                }
            }
        }
    }
}
