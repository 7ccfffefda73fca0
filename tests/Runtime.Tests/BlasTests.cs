using ShiftWise.Runtime.Cpu;
using ShiftWise.Runtime.Native;

namespace ShiftWise.Runtime.Tests;

/// <summary>
/// <see cref="Blas"/> against a naive float64 loop: every transpose combination, odd sizes, padded leading
/// dimensions, alpha and beta, both backends; plus the BLAS conventions (beta = 0 ignores C, k = 0 scales C) and
/// the argument checks that keep native code inside the spans.
/// </summary>
public sealed class BlasTests
{
    public static TheoryData<BlasBackend, bool, bool> Combos()
    {
        var d = new TheoryData<BlasBackend, bool, bool>();
        foreach (var b in new[] { BlasBackend.Managed, BlasBackend.OpenBlas })
        foreach (var ta in new[] { false, true })
        foreach (var tb in new[] { false, true })
        {
            d.Add(b, ta, tb);
        }
        return d;
    }

    private static void SkipWithoutOpenBlas(BlasBackend backend) =>
        Assert.SkipWhen(backend == BlasBackend.OpenBlas && !OpenBlasFound,
            NativeLibraries.Load(NativeLibraries.OpenBlas).Missing("Skipping the OpenBLAS half of this test."));

    private static bool OpenBlasFound => NativeLibraries.Load(NativeLibraries.OpenBlas).Found;

    /// <summary>
    /// Runs one GEMM and checks every element against the float64 result, within the classical bound for a sum of
    /// k products in float32: |error| ≤ (k + 2)·u·(|alpha|·Σ|a||b| + |beta|·|c|), u = 2⁻²⁴ (a few more u for the
    /// scaling steps). The check is per element, so a single wrong index fails however large the matrix; the
    /// elements outside the m×n window of a padded C must come back untouched.
    /// </summary>
    private static void Check(Random rng, BlasBackend backend, bool ta, bool tb, int m, int n, int k, float alpha,
        float beta, int padA, int padB, int padC)
    {
        int lda = (ta ? m : k) + padA, ldb = (tb ? k : n) + padB, ldc = n + padC;
        var a = RandArray(rng, (ta ? k : m) * lda);
        var b = RandArray(rng, (tb ? n : k) * ldb);
        var c = RandArray(rng, m * ldc);
        var c0 = (float[])c.Clone();
        Blas.SgemmUsing(backend, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        AssertWithinBound($"{backend} ta={ta} tb={tb} m={m} n={n} k={k} alpha={alpha} beta={beta}", ta, tb, m, n, k,
            alpha, a, lda, b, ldb, beta, c0, c, ldc);
    }

    /// <summary>
    /// C (from C0) against the float64 GEMM, element by element within (k + 6)·2⁻²⁴·(|alpha|·Σ|a·b| + |beta|·|c0|),
    /// and C's padding beyond column n untouched; <paramref name="what"/> starts the failure message.
    /// </summary>
    internal static void AssertWithinBound(string what, bool ta, bool tb, int m, int n, int k, float alpha, float[] a,
        int lda, float[] b, int ldb, float beta, float[] c0, float[] c, int ldc)
    {
        for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
        {
            double acc = 0, mag = 0;
            for (int p = 0; p < k; p++)
            {
                double av = ta ? a[p * lda + i] : a[i * lda + p];
                double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
                acc += av * bv;
                mag += Math.Abs(av * bv);
            }
            double old = c0[i * ldc + j];
            double expect = alpha * acc + (beta == 0 ? 0 : beta * old);
            double bound = (k + 6) * Math.Pow(2, -24) * (Math.Abs(alpha) * mag + Math.Abs(beta) * Math.Abs(old))
                + 1e-30;
            double got = c[i * ldc + j];
            Assert.True(Math.Abs(got - expect) <= bound,
                $"{what}: C[{i},{j}] = {got}, expected {expect} ± {bound:e2}");
        }
        for (int i = 0; i < m; i++)
        for (int j = n; j < ldc; j++)
        {
            Assert.Equal(c0[i * ldc + j], c[i * ldc + j]);
        }
    }

    private static float[] RandArray(Random rng, int n)
    {
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float)(rng.NextDouble() * 2 - 1);
        return v;
    }

    [Theory]
    [MemberData(nameof(Combos))]
    public void OddSizesAllTransposes(BlasBackend backend, bool ta, bool tb)
    {
        SkipWithoutOpenBlas(backend);
        var rng = new Random(17 + (ta ? 1 : 0) + (tb ? 2 : 0));
        int[] sizes = [1, 2, 3, 5, 6, 7, 8, 13, 16, 17, 31, 33, 48, 67];
        for (int trial = 0; trial < 40; trial++)
        {
            int m = sizes[rng.Next(sizes.Length)], n = sizes[rng.Next(sizes.Length)], k = rng.Next(1, 68);
            float alpha = trial % 3 == 0 ? 1f : (float)(rng.NextDouble() * 4 - 2);
            float beta = (trial % 4) switch { 0 => 0f, 1 => 1f, _ => (float)(rng.NextDouble() * 4 - 2) };
            Check(rng, backend, ta, tb, m, n, k, alpha, beta, rng.Next(0, 5), rng.Next(0, 5), rng.Next(0, 5));
        }
    }

    /// <summary>Sizes past every block boundary of the managed GEMM (120 rows, 256 columns, 256-deep k-blocks).</summary>
    [Theory]
    [MemberData(nameof(Combos))]
    public void SizesAcrossBlockBoundaries(BlasBackend backend, bool ta, bool tb)
    {
        SkipWithoutOpenBlas(backend);
        var rng = new Random(5);
        Check(rng, backend, ta, tb, 247, 269, 531, 0.75f, 0.5f, 3, 1, 2);
        Check(rng, backend, ta, tb, 121, 257, 257, 1f, 0f, 0, 0, 0);
    }

    [Theory]
    [InlineData(BlasBackend.Managed)]
    [InlineData(BlasBackend.OpenBlas)]
    public void BetaZeroNeverReadsC(BlasBackend backend)
    {
        SkipWithoutOpenBlas(backend);
        var rng = new Random(3);
        var a = RandArray(rng, 9 * 20);
        var b = RandArray(rng, 20 * 18);
        var c = new float[9 * 18];
        Array.Fill(c, float.NaN);
        Blas.SgemmUsing(backend, false, false, 9, 18, 20, 1f, a, 20, b, 18, 0f, c, 18);
        Assert.DoesNotContain(c, float.IsNaN);
    }

    [Theory]
    [InlineData(BlasBackend.Managed)]
    [InlineData(BlasBackend.OpenBlas)]
    public void EmptyDepthOnlyScalesC(BlasBackend backend)
    {
        SkipWithoutOpenBlas(backend);
        var c = new float[] { 1, 2, 3, 4, 5, 6 };
        Blas.SgemmUsing(backend, false, true, 2, 3, 0, 1f, [], 1, [], 1, 2f, c, 3);
        Assert.Equal(new float[] { 2, 4, 6, 8, 10, 12 }, c);
        Blas.SgemmUsing(backend, false, true, 2, 3, 0, 1f, [], 1, [], 1, 0f, c, 3);
        Assert.All(c, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void ManagedResultDoesNotDependOnTheThreadCount()
    {
        var rng = new Random(11);
        int m = 300, n = 290, k = 300;
        var a = RandArray(rng, m * k);
        var b = RandArray(rng, n * k);
        var c1 = new float[m * n];
        var c2 = new float[m * n];
        int saved = Blas.Threads;
        try
        {
            Blas.Threads = 1;
            Blas.SgemmUsing(BlasBackend.Managed, false, true, m, n, k, 1f, a, k, b, k, 0f, c1, n);
            Blas.Threads = Math.Max(2, Environment.ProcessorCount);
            Blas.SgemmUsing(BlasBackend.Managed, false, true, m, n, k, 1f, a, k, b, k, 0f, c2, n);
        }
        finally
        {
            Blas.Threads = saved;
        }
        Assert.Equal(c1, c2);
    }

    [Fact]
    public void ShortSpansAndSmallLeadingDimensionsAreRefused()
    {
        var a = new float[6];
        var b = new float[6];
        var c = new float[4];
        // A is 2×3 with lda 3: 6 elements fit; lda 4 would need 7
        Blas.Sgemm(false, false, 2, 2, 3, 1f, a, 3, b, 2, 0f, c, 2);
        var e = Assert.Throws<ArgumentException>(() => Blas.Sgemm(false, false, 2, 2, 3, 1f, a, 4, b, 2, 0f, c, 2));
        Assert.Contains("A has 6 elements", e.Message);
        Assert.Throws<ArgumentException>(() => Blas.Sgemm(false, false, 2, 2, 3, 1f, a, 2, b, 2, 0f, c, 2));
        Assert.Throws<ArgumentException>(() => Blas.Sgemm(false, false, 2, 3, 3, 1f, a, 3, b, 2, 0f, c, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => Blas.Sgemm(false, false, -1, 2, 3, 1f, a, 3, b, 2, 0f, c, 2));
    }

    [Fact]
    public void MissingLibraryIsOneClearSentence()
    {
        var spec = new NativeLibrarySpec("swc-test-missing", "Nothing", ["libswc-missing.so.7", "libswc-missing.so"],
            "nothing at all");
        var load = NativeLibraries.Load(spec);
        Assert.False(load.Found);
        Assert.Null(load.LoadedName);
        Assert.Equal("Nothing (libswc-missing.so.7) was not found; install nothing at all. Carrying on.",
            load.Missing("Carrying on."));
        Assert.Same(load, NativeLibraries.Load(spec));
    }

    [Fact]
    public void OpenBlasIsFoundByItsVersionedNameWhereInstalled()
    {
        var load = NativeLibraries.Load(NativeLibraries.OpenBlas);
        Assert.SkipUnless(load.Found, load.Missing("Nothing to check here."));
        Assert.Contains(load.LoadedName, NativeLibraries.OpenBlas.Names);
        Assert.True(load.Exports("cblas_sgemm"));
        bool forced = Environment.GetEnvironmentVariable("SWC_BLAS")?.Trim().ToLowerInvariant() == "managed";
        Assert.Equal(!forced, Blas.UsingOpenBlas);
        Assert.Null(Blas.Warning);
    }
}
