using System.Runtime.InteropServices;

namespace ShiftWise.Runtime.Native;

/// <summary>
/// The few OpenBLAS entry points we use. Raw: no argument checks, pointers must cover the matrices;
/// <see cref="Cpu.Blas"/> is the checked entry point everything else calls.
/// </summary>
internal static unsafe partial class OpenBlas
{
    private const string Lib = "openblas";

    // CBLAS enum values (cblas.h): CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112.
    private const int RowMajor = 101;
    private const int NoTrans = 111;
    private const int Trans = 112;

    // An explicit static constructor runs before the first call, so the resolver is in place when the runtime
    // binds the first [LibraryImport] below.
    static OpenBlas() => NativeLibraries.EnsureResolver();

    /// <summary>
    /// The load result (cached); <see cref="NativeLoad.Found"/> says whether the calls below may be made.
    /// </summary>
    public static NativeLoad Library => NativeLibraries.Load(NativeLibraries.OpenBlas);

    /// <summary>Row-major C = alpha·op(A)·op(B) + beta·C; blasint is 32-bit in Debian's (non-ILP64) build.</summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha, float* a, int lda,
        float* b, int ldb, float beta, float* c, int ldc) =>
        CblasSgemm(RowMajor, transA ? Trans : NoTrans, transB ? Trans : NoTrans, m, n, k, alpha, a, lda, b, ldb,
            beta, c, ldc);

    /// <summary>Sets OpenBLAS's thread count where the build exports the setter; returns whether it did.</summary>
    public static bool TrySetThreads(int threads)
    {
        if (!Library.Exports("openblas_set_num_threads")) return false;
        SetNumThreads(threads);
        return true;
    }

    [LibraryImport(Lib, EntryPoint = "cblas_sgemm")]
    private static partial void CblasSgemm(int order, int transA, int transB, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc);

    /// <summary>OpenBLAS's thread count, or 0 where the build does not export the getter.</summary>
    public static int Threads() => Library.Exports("openblas_get_num_threads") ? GetNumThreads() : 0;

    [LibraryImport(Lib, EntryPoint = "openblas_get_num_threads")]
    private static partial int GetNumThreads();

    [LibraryImport(Lib, EntryPoint = "openblas_set_num_threads")]
    private static partial void SetNumThreads(int threads);
}
