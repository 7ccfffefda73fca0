using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ShiftWise.Runtime.Cpu;

/// <summary>
/// The GEMM used where OpenBLAS is missing (or where the tuner prefers it): the GotoBLAS loop structure in C#.
/// B is packed once per k-block into 16-column panels shared by all workers; each work item (a block of rows × a
/// chunk of columns) runs a 6×16 Vector256 FMA micro-kernel (12 accumulators + 2 B vectors + 1 broadcast = 15 of
/// the 16 ymm registers) over its tiles. A row-major A is read in place, six rows at a time; a transposed A is
/// packed into 6-row panels per work item. Each C element is owned by one work item and summed in a fixed order,
/// so results do not depend on the schedule or the thread count. Arguments are trusted: <see cref="Blas"/> checks
/// them.
/// </summary>
internal static unsafe class ManagedGemm
{
    private const int MR = 6;
    private const int NR = 16;

    /// <summary>
    /// Depth of a k-block: a B micro-panel (16·256·4 = 16 KB) plus an A micro-panel (6 KB) fit in L1.
    /// </summary>
    private const int KC = 256;

    /// <summary>
    /// Rows per work item: its A block (at most 120·256·4 = 120 KB) stays in L2 while B panels stream.
    /// </summary>
    private const int MC = 120;

    /// <summary>Columns per work item: with MC this gives enough items to balance two to eight cores.</summary>
    private const int NCH = 256;

    /// <summary>Below this many flops the fork/join of Parallel.For costs more than it saves.</summary>
    private const long ParallelFlops = 1L << 21;

    [ThreadStatic]
    private static float[]? _packA;

    /// <summary>Row-major C = alpha·op(A)·op(B) + beta·C for m, n, k ≥ 1 (beta = 0 never reads C).</summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha, float* a, int lda,
        float* b, int ldb, float beta, float* c, int ldc, int threads)
    {
        // even k-blocks: 320 = 160 + 160 rather than 256 + 64, so no block runs a short, overhead-bound loop
        int kBlocks = (k + KC - 1) / KC;
        int kcMax = (k + kBlocks - 1) / kBlocks;
        int panels = (n + NR - 1) / NR;
        float[] packB = ArrayPool<float>.Shared.Rent(panels * NR * kcMax);
        try
        {
            fixed (float* pb = packB)
            {
                var job = new Job(transA, transB, m, n, alpha, a, lda, b, ldb, c, ldc, pb);
                bool parallel = threads > 1 && 2L * m * n * k >= ParallelFlops;
                for (int pc = 0; pc < k; pc += kcMax)
                {
                    job.Pc = pc;
                    job.Kc = Math.Min(kcMax, k - pc);
                    job.Beta = pc == 0 ? beta : 1f;
                    int items = job.RowBlocks * job.ColChunks;
                    if (parallel && items > 1)
                    {
                        job.PackParts = Math.Min(threads, panels);
                        CpuWorkers.For(job.PackParts, threads, job.PackBPart);
                        CpuWorkers.For(items, threads, job.Item);
                    }
                    else
                    {
                        job.PackB(0, panels);
                        for (int i = 0; i < items; i++) job.Item(i);
                    }
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(packB);
        }
    }

    /// <summary>One call's operands as raw addresses (pinned by the caller for the whole call).</summary>
    private sealed class Job(bool transA, bool transB, int m, int n, float alpha, float* a, int lda, float* b,
        int ldb, float* c, int ldc, float* packB)
    {
        // pointers are kept as nint so the work delegates can be plain instance methods
        private readonly nint _a = (nint)a, _b = (nint)b, _c = (nint)c, _packB = (nint)packB;
        private readonly int _panels = (n + NR - 1) / NR;

        public int RowBlocks { get; } = (m + MC - 1) / MC;
        public int ColChunks { get; } = (n + NCH - 1) / NCH;
        public int Pc { get; set; }
        public int Kc { get; set; }
        public float Beta { get; set; }

        /// <summary>How many parts <see cref="PackBPart"/> splits the panels into.</summary>
        public int PackParts { get; set; } = 1;

        public void PackBPart(int part) =>
            PackB((int)((long)_panels * part / PackParts), (int)((long)_panels * (part + 1) / PackParts));

        /// <summary>Packs B panels [p0, p1) of the current k-block (see <see cref="GemmPack.PackB"/>).</summary>
        public void PackB(int p0, int p1) =>
            GemmPack.PackB(transB, (float*)_b, ldb, n, Pc, Kc, p0, p1, (float*)_packB);

        /// <summary>Work item: rows [ic, ic+MC) × columns [jc, jc+NCH) of C for the current k-block.</summary>
        public void Item(int index)
        {
            int ic = index / ColChunks * MC, jc = index % ColChunks * NCH;
            int mc = Math.Min(MC, m - ic), nc = Math.Min(NCH, n - jc), kc = Kc;
            _packA ??= new float[MC * KC];
            float* tile = stackalloc float[MR * NR];
            // with A row-major the micro-kernel reads its six rows in place (packing would cost as much as the
            // multiply when n is small); only a ragged last panel is packed, since reading six rows would overrun m
            bool direct = !transA;
            fixed (float* pa = _packA)
            {
                PackA(pa, ic, direct ? mc / MR * MR : 0, mc);
                for (int jr = 0; jr < nc; jr += NR)
                {
                    float* bp = (float*)_packB + (long)((jc + jr) / NR) * kc * NR;
                    int nr = Math.Min(NR, nc - jr);
                    for (int ir = 0; ir < mc; ir += MR)
                    {
                        int mr = Math.Min(MR, mc - ir);
                        float* cp = (float*)_c + (long)(ic + ir) * ldc + jc + jr;
                        bool full = mr == MR && nr == NR;
                        // an edge tile is computed whole into a scratch tile, then its valid corner merged
                        float* target = full ? cp : tile;
                        (int ldt, float at, float bt) = full ? (ldc, alpha, Beta) : (NR, 1f, 0f);
                        if (direct && mr == MR)
                        {
                            float* ar = (float*)_a + (long)(ic + ir) * lda + Pc;
                            Micro.KernelInPlace(kc, ar, lda, bp, target, ldt, at, bt);
                        }
                        else
                        {
                            Micro.Kernel(kc, pa + ir * kc, bp, target, ldt, at, bt);
                        }
                        if (!full) Micro.Merge(tile, cp, ldc, mr, nr, alpha, Beta);
                    }
                }
            }
        }

        private void PackA(float* dst, int ic, int from, int mc) =>
            GemmPack.PackA(transA, (float*)_a, lda, ic, from, mc, Pc, Kc, dst);
    }

    /// <summary>The 6×16 register tile.</summary>
    private static class Micro
    {
        /// <summary>
        /// C[0..6, 0..16] = alpha·(Ap·Bp) + beta·C over kc steps; Ap is a packed 6-row panel (6 floats per step),
        /// Bp a packed 16-column panel (16 floats per step). beta = 0 stores without reading C, as BLAS does, so
        /// NaN in an output buffer never leaks into the result.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Kernel(int kc, float* a, float* b, float* c, int ldc, float alpha, float beta)
        {
            Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
            Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
            for (int p = 0; p < kc; p++)
            {
                var b0 = Vector256.Load(b);
                var b1 = Vector256.Load(b + 8);
                var av = Vector256.Create(a[0]);
                c00 = Fmadd(av, b0, c00);
                c01 = Fmadd(av, b1, c01);
                av = Vector256.Create(a[1]);
                c10 = Fmadd(av, b0, c10);
                c11 = Fmadd(av, b1, c11);
                av = Vector256.Create(a[2]);
                c20 = Fmadd(av, b0, c20);
                c21 = Fmadd(av, b1, c21);
                av = Vector256.Create(a[3]);
                c30 = Fmadd(av, b0, c30);
                c31 = Fmadd(av, b1, c31);
                av = Vector256.Create(a[4]);
                c40 = Fmadd(av, b0, c40);
                c41 = Fmadd(av, b1, c41);
                av = Vector256.Create(a[5]);
                c50 = Fmadd(av, b0, c50);
                c51 = Fmadd(av, b1, c51);
                a += MR;
                b += NR;
            }
            Finish(c, ldc, alpha, beta, c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51);
        }

        /// <summary>
        /// <see cref="Kernel"/> with A read in place from six rows of a row-major matrix (row r at a + r·lda),
        /// rather than from a packed panel.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void KernelInPlace(int kc, float* a, int lda, float* b, float* c, int ldc, float alpha,
            float beta)
        {
            Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
            Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
            float* a0 = a, a1 = a + lda, a2 = a1 + lda, a3 = a2 + lda, a4 = a3 + lda, a5 = a4 + lda;
            for (int p = 0; p < kc; p++)
            {
                var b0 = Vector256.Load(b);
                var b1 = Vector256.Load(b + 8);
                var av = Vector256.Create(a0[p]);
                c00 = Fmadd(av, b0, c00);
                c01 = Fmadd(av, b1, c01);
                av = Vector256.Create(a1[p]);
                c10 = Fmadd(av, b0, c10);
                c11 = Fmadd(av, b1, c11);
                av = Vector256.Create(a2[p]);
                c20 = Fmadd(av, b0, c20);
                c21 = Fmadd(av, b1, c21);
                av = Vector256.Create(a3[p]);
                c30 = Fmadd(av, b0, c30);
                c31 = Fmadd(av, b1, c31);
                av = Vector256.Create(a4[p]);
                c40 = Fmadd(av, b0, c40);
                c41 = Fmadd(av, b1, c41);
                av = Vector256.Create(a5[p]);
                c50 = Fmadd(av, b0, c50);
                c51 = Fmadd(av, b1, c51);
                b += NR;
            }
            Finish(c, ldc, alpha, beta, c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51);
        }

        /// <summary>C = alpha·acc + beta·C for the 6×16 tile; beta = 0 stores without reading C.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Finish(float* c, int ldc, float alpha, float beta, Vector256<float> c00,
            Vector256<float> c01, Vector256<float> c10, Vector256<float> c11, Vector256<float> c20,
            Vector256<float> c21, Vector256<float> c30, Vector256<float> c31, Vector256<float> c40,
            Vector256<float> c41, Vector256<float> c50, Vector256<float> c51)
        {
            var va = Vector256.Create(alpha);
            if (beta == 0f)
            {
                Put(c, c00, c01, va);
                Put(c + ldc, c10, c11, va);
                Put(c + 2 * ldc, c20, c21, va);
                Put(c + 3 * ldc, c30, c31, va);
                Put(c + 4 * ldc, c40, c41, va);
                Put(c + 5 * ldc, c50, c51, va);
            }
            else
            {
                var vb = Vector256.Create(beta);
                Update(c, c00, c01, va, vb);
                Update(c + ldc, c10, c11, va, vb);
                Update(c + 2 * ldc, c20, c21, va, vb);
                Update(c + 3 * ldc, c30, c31, va, vb);
                Update(c + 4 * ldc, c40, c41, va, vb);
                Update(c + 5 * ldc, c50, c51, va, vb);
            }
        }

        /// <summary>Adds the valid mr×nr corner of an edge tile (computed into a 6×16 scratch) to C.</summary>
        public static void Merge(float* tile, float* c, int ldc, int mr, int nr, float alpha, float beta)
        {
            for (int r = 0; r < mr; r++)
            {
                float* row = c + (long)r * ldc;
                for (int j = 0; j < nr; j++)
                {
                    float acc = alpha * tile[r * NR + j];
                    row[j] = beta == 0f ? acc : acc + beta * row[j];
                }
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Put(float* c, Vector256<float> lo, Vector256<float> hi, Vector256<float> va)
        {
            Vector256.Store(lo * va, c);
            Vector256.Store(hi * va, c + 8);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Update(float* c, Vector256<float> lo, Vector256<float> hi, Vector256<float> va,
            Vector256<float> vb)
        {
            Vector256.Store(Fmadd(lo, va, Vector256.Load(c) * vb), c);
            Vector256.Store(Fmadd(hi, va, Vector256.Load(c + 8) * vb), c + 8);
        }

        /// <summary>x·y + z, fused where the CPU has FMA (the JIT folds the check away).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector256<float> Fmadd(Vector256<float> x, Vector256<float> y, Vector256<float> z) =>
            Fma.IsSupported ? Fma.MultiplyAdd(x, y, z) : x * y + z;
    }
}
