using ShiftWise.Runtime.Native;

namespace ShiftWise.Runtime.Cpu;

/// <summary>Which GEMM implementation a call uses.</summary>
public enum BlasBackend
{
    /// <summary>
    /// OpenBLAS when it loaded and <c>SWC_BLAS</c> does not say <c>managed</c>; the managed GEMM otherwise.
    /// </summary>
    Auto,
    /// <summary>OpenBLAS; a call fails with the not-found sentence when it is missing.</summary>
    OpenBlas,
    /// <summary>The managed, cache-blocked Vector256 GEMM.</summary>
    Managed,
    /// <summary>
    /// For <see cref="GemmKernel"/> only: OpenBLAS on blocks of positions with each block's epilogue while it is in
    /// L2 (<see cref="GemmBlocked"/>, in_nchw with a channel-last output); plain OpenBLAS elsewhere.
    /// </summary>
    OpenBlasBlocked,
    /// <summary>
    /// For <see cref="GemmKernel"/> and <see cref="GemmGrnFoldKernel"/>: the register-tiled GEMM with its epilogue
    /// per tile (<see cref="GemmTiled"/>) where it covers the layout; Auto elsewhere.
    /// </summary>
    Tiled,
}

/// <summary>
/// float32 GEMM for the CPU target, row-major: OpenBLAS where it is installed, a managed blocked GEMM otherwise.
/// Every call checks its arguments against the spans, so a wrong leading dimension fails here instead of reading
/// past a buffer inside native code. Set <c>SWC_BLAS=managed</c> to force the managed GEMM (auto and openblas
/// pick OpenBLAS when present; openblas also turns off the blocked expand GEMM, see <see cref="AutoBlocked"/>),
/// <c>SWC_BLAS=tiled</c> to make the GEMM kernels' Auto take the register-tiled GEMM
/// (it does so anyway for in_nchw GEMMs when OpenBLAS is missing: measured faster than the managed GEMM there, and
/// not faster than OpenBLAS at sw-tiny's shapes; bench/results/gemm.md).
/// </summary>
public static unsafe class Blas
{
    private static readonly (bool Open, bool Tiled, bool Blocked, string? Warning) Choice = Choose();
    private static readonly bool Forced = Environment.GetEnvironmentVariable("SWC_BLAS")?.Trim().ToLowerInvariant()
        == "tiled";
    private static int _threads = Environment.ProcessorCount;

    /// <summary>Whether <see cref="BlasBackend.Auto"/> calls go to OpenBLAS.</summary>
    public static bool UsingOpenBlas => Choice.Open;

    /// <summary>
    /// Whether the GEMM kernels' <see cref="BlasBackend.Auto"/> takes the register-tiled GEMM: everywhere it
    /// applies with <c>SWC_BLAS=tiled</c> (<see cref="TiledEverywhere"/>), for in_nchw GEMMs when OpenBLAS is
    /// missing and <c>SWC_BLAS</c> is not <c>managed</c>.
    /// </summary>
    public static bool AutoTiled => Choice.Tiled;

    /// <summary>Whether <c>SWC_BLAS=tiled</c> asks for the register-tiled GEMM wherever it applies.</summary>
    public static bool TiledEverywhere => Forced;

    /// <summary>
    /// Whether the GEMM kernels' <see cref="BlasBackend.Auto"/> runs the expand GEMM as OpenBLAS calls on blocks
    /// (<see cref="GemmBlocked"/>): when OpenBLAS is loaded and <c>SWC_BLAS</c> is not <c>openblas</c>, which keeps
    /// one call per sample followed by the epilogue passes (the behaviour before the blocked path, for comparisons).
    /// </summary>
    public static bool AutoBlocked => Choice.Blocked;

    /// <summary>
    /// The sentence to show once when <see cref="BlasBackend.Auto"/> falls back to the managed GEMM because OpenBLAS
    /// is missing (or <c>SWC_BLAS</c> holds an unknown value); null when there is nothing to say. The library does not
    /// print it: the caller (the CLI) decides where warnings go.
    /// </summary>
    public static string? Warning => Choice.Warning;

    /// <summary>
    /// Threads for either backend (default: the processor count). OpenBLAS itself runs on one thread (see
    /// <see cref="OwnThreads"/>); a call is split into this many parts on <see cref="CpuWorkers"/> instead.
    /// </summary>
    public static int Threads
    {
        get => _threads;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            _threads = value;
            if (OpenBlas.Library.Found && !OwnThreads) OpenBlas.TrySetThreads(value);
        }
    }

    /// <summary>
    /// Whether OpenBLAS runs on one thread and its calls are split over swc's <see cref="CpuWorkers"/> by rows or
    /// columns of C (<see cref="SplitOpenBlas"/>): the default. OpenBLAS's own workers spin (sched_yield) between
    /// calls, and on a machine with few cores they compete with the .NET work between GEMMs (epilogues, SW kernels):
    /// perf counted 13% of sw-tiny's samples in sched_yield on 2 cores. <c>SWC_BLAS_THREADS=openblas</c> gives
    /// OpenBLAS its own threads again, for comparisons; so does an OPENBLAS_NUM_THREADS above 1 set by the user.
    /// </summary>
    public static bool OwnThreads { get; } = NativeLibraries.OpenBlasSingleThreaded
        && (!OpenBlas.Library.Found || OpenBlas.Threads() == 1);

    /// <summary>Below this many multiply-adds a call is not split: the fork would cost more than it saves.</summary>
    private const long SplitMin = 1L << 18;

    /// <summary>Elements of C a part needs at least: above OpenBLAS's small-matrix cut-off (SplitOpenBlas).</summary>
    private const long PartMin = 4096;

    /// <summary>
    /// One OpenBLAS call on the calling thread, as the blocked GEMM makes from its own parallel loop (OpenBLAS is at
    /// one thread when <see cref="OwnThreads"/>). Raw pointers: the caller has checked the matrices.
    /// </summary>
    internal static void OpenBlasSingle(bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b,
        int ldb, float* c, int ldc) => OpenBlas.Sgemm(transA, transB, m, n, k, 1f, a, lda, b, ldb, 0f, c, ldc);

    /// <summary>
    /// An OpenBLAS call split into up to <see cref="Threads"/> parts along the longer of C's two sides, in
    /// multiples of 16, each part one single-threaded OpenBLAS call on <see cref="CpuWorkers"/>. Each element of C
    /// is still one dot product over all of K computed by the same kernel, so the result is bit-identical to one
    /// call (tests/Runtime.Tests/BlasSplitTests.cs). That needs parts of at least <see cref="PartMin"/> elements of C:
    /// OpenBLAS 0.3.21 on AVX-512 computes calls of m·n ≤ 1200 with a small-matrix kernel that sums in another order
    /// (measured for row-major A·Bᵀ: most elements of a 37×36×260 call differed in their last bits when split).
    /// </summary>
    private static void SplitOpenBlas(bool transA, bool transB, int m, int n, int k, float alpha, float* a, int lda,
        float* b, int ldb, float beta, float* c, int ldc)
    {
        int threads = OwnThreads ? _threads : 1;
        bool byRows = m >= n;
        int side = byRows ? m : n;
        int step = (side + threads - 1) / threads;
        step = (step + 15) / 16 * 16;
        int parts = (side + step - 1) / step;
        if (parts <= 1 || (long)m * n * k < SplitMin || (long)step * (byRows ? n : m) < PartMin)
        {
            OpenBlas.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            return;
        }
        nint pa = (nint)a, pb = (nint)b, pc = (nint)c;
        CpuWorkers.For(parts, threads, p =>
        {
            int s = p * step, len = Math.Min(step, side - s);
            float* a0 = (float*)pa, b0 = (float*)pb, c0 = (float*)pc;
            if (byRows)
            {
                OpenBlas.Sgemm(transA, transB, len, n, k, alpha, transA ? a0 + s : a0 + (long)s * lda, lda, b0, ldb,
                    beta, c0 + (long)s * ldc, ldc);
            }
            else
            {
                OpenBlas.Sgemm(transA, transB, m, len, k, alpha, a0, lda, transB ? b0 + (long)s * ldb : b0 + s, ldb,
                    beta, c0 + s, ldc);
            }
        });
    }

    /// <summary>
    /// C = alpha·op(A)·op(B) + beta·C with row-major matrices: op(A) is m×k (A is stored k×m with leading
    /// dimension lda when <paramref name="transA"/>), op(B) is k×n, C is m×n. As in BLAS, beta = 0 overwrites C
    /// without reading it, and k = 0 or alpha = 0 only scales C.
    /// </summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha, ReadOnlySpan<float> a,
        int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc) =>
        SgemmUsing(BlasBackend.Auto, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);

    /// <summary>
    /// <see cref="Sgemm"/> with an explicit backend (for tests, and for the tuner, which may prefer the managed GEMM
    /// at some shapes). A separate name rather than an overload keeps <c>cref="Blas.Sgemm"</c> unambiguous.
    /// </summary>
    public static void SgemmUsing(BlasBackend backend, bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        CheckMatrix("A", a.Length, transA ? k : m, transA ? m : k, lda);
        CheckMatrix("B", b.Length, transB ? n : k, transB ? k : n, ldb);
        CheckMatrix("C", c.Length, m, n, ldc);
        if (m == 0 || n == 0) return;
        if (k == 0 || alpha == 0f)
        {
            Scale(c, m, n, ldc, beta);
            return;
        }
        bool open = backend switch
        {
            BlasBackend.Auto => Choice.Open,
            BlasBackend.OpenBlas or BlasBackend.OpenBlasBlocked => OpenBlas.Library.Found
                ? true
                : throw new InvalidOperationException(OpenBlas.Library.Missing("The OpenBLAS backend was requested.")),
            _ => false,
        };
        fixed (float* pa = a, pb = b, pc = c)
        {
            if (open)
            {
                SplitOpenBlas(transA, transB, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc);
            }
            else
            {
                ManagedGemm.Sgemm(transA, transB, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc, _threads);
            }
        }
    }

    /// <summary>
    /// A stored rows×cols matrix needs ld ≥ max(1, cols) (OpenBLAS rejects less, even for empty matrices) and
    /// (rows−1)·ld + cols elements.
    /// </summary>
    private static void CheckMatrix(string name, int length, int rows, int cols, int ld)
    {
        if (ld < Math.Max(1, cols))
        {
            throw new ArgumentException($"the leading dimension {ld} of {name} must be at least max(1, {cols})");
        }
        long need = rows == 0 || cols == 0 ? 0 : (long)(rows - 1) * ld + cols;
        if (length < need)
        {
            throw new ArgumentException(
                $"{name} has {length} elements; a {rows}×{cols} matrix with leading dimension {ld} needs {need}");
        }
    }

    private static void Scale(Span<float> c, int m, int n, int ldc, float beta)
    {
        for (int i = 0; i < m; i++)
        {
            var row = c.Slice(i * ldc, n);
            if (beta == 0f)
            {
                row.Clear();
            }
            else if (beta != 1f)
            {
                for (int j = 0; j < n; j++) row[j] *= beta;
            }
        }
    }

    private static (bool, bool, bool, string?) Choose()
    {
        const string fallback = "Using the managed GEMM, which is slower.";
        var env = Environment.GetEnvironmentVariable("SWC_BLAS")?.Trim().ToLowerInvariant();
        if (env == "managed") return (false, false, false, null);
        var lib = OpenBlas.Library;
        if (env == "tiled") return (lib.Found, true, false, null);
        string? unknown = env is null or "" or "auto" or "openblas"
            ? null
            : $"SWC_BLAS='{env}' is not one of auto, openblas, managed, tiled; treating it as auto. ";
        if (lib.Found) return (true, false, env != "openblas", unknown?.TrimEnd());
        return (false, true, false, unknown + lib.Missing(fallback));
    }
}
