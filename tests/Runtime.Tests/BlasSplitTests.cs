using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Runtime.Cpu;
using ShiftWise.Runtime.Native;
using ShiftWise.Tests;
using static ShiftWise.Runtime.Tests.KernelHarness;

namespace ShiftWise.Runtime.Tests;

/// <summary>
/// OpenBLAS on one thread of its own with its calls split over <see cref="CpuWorkers"/>
/// (<see cref="Blas.OwnThreads"/>): the default; and a split call gives C bit for bit as one unsplit call does (each
/// element is still one dot product over all of K), by rows and by columns, every transpose, padded leading
/// dimensions, beta ≠ 0, within the float32 bound of a float64 reference. In the process-state collection because the
/// tests change <see cref="Blas.Threads"/>. Skipped, with the install sentence, where OpenBLAS is missing: with CI=true
/// scripts/test.sh counts a skip that is not on tests/ci-allowed-skips.txt as a failure, and these are not on it.
/// </summary>
[Collection(ProcessState.Name)]
public sealed class BlasSplitTests
{
    private static NativeLoad Library => NativeLibraries.Load(NativeLibraries.OpenBlas);

    /// <summary>
    /// The split path needs OpenBLAS, Auto choosing it, and OpenBLAS at one thread; without them the comparison would
    /// compare one unsplit call with itself, so the test is skipped with the reason (or fails where OwnThreads is off
    /// although nothing asked for that, see <see cref="OpenBlasRunsOnOneThreadOfItsOwnByDefault"/>).
    /// </summary>
    private static void SkipUnlessSplitting()
    {
        Assert.SkipUnless(Library.Found, Library.Missing("The split OpenBLAS path cannot run."));
        Assert.SkipUnless(Blas.UsingOpenBlas, "SWC_BLAS=managed: Blas.Sgemm does not call OpenBLAS");
        string? user = Environment.GetEnvironmentVariable("OPENBLAS_NUM_THREADS");
        Assert.SkipUnless(Blas.OwnThreads, "OpenBLAS runs its own threads (SWC_BLAS_THREADS=openblas or "
            + $"OPENBLAS_NUM_THREADS={user}): calls are not split");
    }

    /// <summary>
    /// With OpenBLAS loaded and neither SWC_BLAS_THREADS=openblas nor an OPENBLAS_NUM_THREADS above 1 in the
    /// environment, OpenBLAS reports one thread (OPENBLAS_NUM_THREADS=1 was set natively before it loaded) and
    /// <see cref="Blas.OwnThreads"/> is on; setting <see cref="Blas.Threads"/> leaves OpenBLAS at one thread.
    /// </summary>
    [Fact]
    public void OpenBlasRunsOnOneThreadOfItsOwnByDefault()
    {
        Assert.SkipUnless(Library.Found, Library.Missing("Nothing to check here."));
        string? mode = Environment.GetEnvironmentVariable("SWC_BLAS_THREADS")?.Trim().ToLowerInvariant();
        Assert.SkipWhen(mode == "openblas", "SWC_BLAS_THREADS=openblas asks for OpenBLAS's own threads");
        string? user = Environment.GetEnvironmentVariable("OPENBLAS_NUM_THREADS");
        Assert.SkipWhen(user is not null && user.Trim() != "1", $"the user set OPENBLAS_NUM_THREADS={user}");
        Assert.True(Library.Exports("openblas_get_num_threads"), "this OpenBLAS has no openblas_get_num_threads");
        Assert.True(NativeLibraries.OpenBlasSingleThreaded);
        Assert.Equal(1, OpenBlas.Threads());
        Assert.True(Blas.OwnThreads);
        int saved = Blas.Threads;
        try
        {
            Blas.Threads = 3;
            Assert.Equal(1, OpenBlas.Threads());
        }
        finally
        {
            Blas.Threads = saved;
        }
    }

    /// <summary>
    /// (m, n, k, padA, padB, padC): m ≥ n splits by rows, m &lt; n by columns; m·n·k ≥ 2¹⁸ and the long side ≥ 32 so
    /// that the call is split (into 2 parts on 2 threads, 3 on 3); sides that are not multiples of 16, so the last
    /// part is short. The third shape's parts would be small (m·n ≤ 1200 where the whole call's is above): there
    /// OpenBLAS 0.3.21 on AVX-512 (skylakex) computes row-major A·Bᵀ (column-major TN) with its small-matrix kernel,
    /// which sums in another order than the kernel of the whole call (measured when such calls were split: ~1100 of
    /// 1332 elements differed in their last bits), so Blas does not split calls into parts under 4096 elements of C,
    /// and this shape must come out bit-identical too.
    /// </summary>
    private static readonly (int M, int N, int K, int PadA, int PadB, int PadC)[] Shapes =
    [
        (203, 70, 61, 3, 5, 7),
        (45, 181, 67, 2, 1, 4),
        (37, 36, 260, 1, 2, 3),
    ];

    public static TheoryData<bool, bool> Transposes() => new() { { false, false }, { false, true }, { true, false },
        { true, true } };

    /// <summary>
    /// C = 0.75·op(A)·op(B) − 0.5·C on 1 thread (one OpenBLAS call) and on 2 and 3 (2 and 3 parts): bit-identical C
    /// (see <see cref="Shapes"/>), and for every thread count the padding of C untouched and every
    /// element within the float32 bound of the float64 result (as in
    /// <see cref="BlasTests"/>: |error| ≤ (k + 6)·2⁻²⁴·(|alpha|·Σ|a·b| + |beta|·|c|), per element, so an element
    /// computed twice (beta applied twice) or never fails however large C is).
    /// </summary>
    [Theory]
    [MemberData(nameof(Transposes))]
    public void SplitCallsMatchOneCallBitForBit(bool ta, bool tb)
    {
        SkipUnlessSplitting();
        var rng = new Random(31 + (ta ? 1 : 0) + (tb ? 2 : 0));
        const float alpha = 0.75f, beta = -0.5f;
        foreach (var (m, n, k, padA, padB, padC) in Shapes)
        {
            Assert.True((long)m * n * k >= 1 << 18 && Math.Max(m, n) >= 32, "the shape is too small to split");
            int lda = (ta ? m : k) + padA, ldb = (tb ? k : n) + padB, ldc = n + padC;
            var a = Rand(rng, (ta ? k : m) * lda);
            var b = Rand(rng, (tb ? n : k) * ldb);
            var c0 = Rand(rng, m * ldc);
            var one = Run(1);
            Check(one, 1);
            foreach (int threads in new[] { 2, 3 })
            {
                var split = Run(threads);
                Check(split, threads);
                for (int i = 0; i < one.Length; i++)
                {
                    if (BitConverter.SingleToInt32Bits(one[i]) == BitConverter.SingleToInt32Bits(split[i])) continue;
                    Assert.Fail($"ta={ta} tb={tb} {m}×{n}×{k} on {threads} threads: C[{i / ldc},{i % ldc}] = "
                        + $"{split[i]:R}, one call gave {one[i]:R}");
                }
            }

            float[] Run(int threads)
            {
                var c = (float[])c0.Clone();
                int saved = Blas.Threads;
                try
                {
                    Blas.Threads = threads;
                    Blas.Sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
                }
                finally
                {
                    Blas.Threads = saved;
                }
                return c;
            }

            void Check(float[] c, int threads) => BlasTests.AssertWithinBound(
                $"ta={ta} tb={tb} {m}×{n}×{k} on {threads} threads", ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c0,
                c, ldc);
        }
    }

    /// <summary>
    /// The blocked expand GEMM (<see cref="GemmBlocked"/>) runs its (sample, block) pairs on <see cref="CpuWorkers"/>
    /// when <see cref="Blas.Threads"/> &gt; 1 and one after another at 1: each block is the same single OpenBLAS call
    /// followed by the same epilogue either way, and the GRN sums are added in block order afterwards, so the outputs
    /// must be bit-identical (GELU, bias, GRN, residual after the scale; ReLU, bias, residual in the block epilogue;
    /// 16-position blocks with a ragged last one, and the default block size).
    /// </summary>
    [Fact]
    public void BlockedGemmGivesTheSameBitsOnOneAndTwoThreads()
    {
        SkipUnlessSplitting();
        var rng = new Random(9);
        foreach (bool grn in new[] { true, false })
        foreach (var (b, h, w, k, n, rows) in new[] { (2, 9, 13, 67, 50, 16), (3, 7, 7, 40, 30, 0) })
        {
            var op = new Gemm(true, false, grn ? GemmAct.Gelu : GemmAct.Relu, true, grn, 1e-6, true);
            var inputs = new List<Tensor>
            {
                KernelHarness.Rand(rng, b, k, h, w), KernelHarness.Rand(rng, new Shape(n, k), 1 / Math.Sqrt(k)),
                KernelHarness.Rand(rng, n),
            };
            if (grn) inputs.AddRange([KernelHarness.Rand(rng, 1, 1, 1, n), KernelHarness.Rand(rng, 1, 1, 1, n)]);
            inputs.Add(KernelHarness.Rand(rng, b, h, w, n));
            var types = inputs.Select(t => t.Type).ToArray();
            var kernel = new GemmKernel(new KernelRequest(NodeFor(op, types), types, new Tensor?[types.Length]))
            {
                Backend = BlasBackend.OpenBlasBlocked, BlockRows = rows,
            };
            Assert.True(kernel.Blocked);
            var ins = inputs.Select(t => Buf.Of(t.ToDoubles().Select(v => (float)v).ToArray())).ToArray();
            var one = RunOn(1);
            var two = RunOn(2);
            for (int i = 0; i < one.Length; i++)
            {
                if (BitConverter.SingleToInt32Bits(one[i]) == BitConverter.SingleToInt32Bits(two[i])) continue;
                Assert.Fail($"{op} b={b} {h}×{w} k={k} n={n} rows={rows}: y[{i}] = {two[i]:R} on 2 threads, "
                    + $"{one[i]:R} on 1");
            }
            Assert.DoesNotContain(one, float.IsNaN);

            float[] RunOn(int threads)
            {
                var y = new float[b * h * w * n];
                Array.Fill(y, float.NaN);
                int saved = Blas.Threads;
                try
                {
                    Blas.Threads = threads;
                    kernel.Run(ins, [Buf.Of(y)]);
                }
                finally
                {
                    Blas.Threads = saved;
                }
                return y;
            }
        }
    }

    private static float[] Rand(Random rng, int count)
    {
        var v = new float[count];
        for (int i = 0; i < count; i++) v[i] = (float)(rng.NextDouble() * 2 - 1);
        return v;
    }
}
