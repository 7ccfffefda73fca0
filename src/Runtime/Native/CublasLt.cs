using System.Runtime.InteropServices;

namespace ShiftWise.Runtime.Native;

/// <summary>
/// cuBLASLt (cublasLt.h): the handle, the matmul, layout and preference descriptors, the heuristic and
/// <c>cublasLtMatmul</c>; every handle and descriptor is an opaque pointer, every call returns a
/// <c>cublasStatus_t</c>. Signatures checked against cublasLt.h (CUDA 11, as vendored in ggerganov/llama.cpp
/// include/cuda/cublasLt.h), unchanged in CUDA 12 and 13. What is passed is built by
/// <see cref="Cuda.LtMatmulArgs"/>; <see cref="Cuda.CudaExecutor"/> makes the calls.
/// </summary>
internal static unsafe partial class CublasLtApi
{
    private const string Lib = "cublaslt";

    static CublasLtApi() => NativeLibraries.EnsureResolver();

    /// <summary>The load result (cached).</summary>
    public static NativeLoad Library => NativeLibraries.Load(NativeLibraries.CublasLt);

    [LibraryImport(Lib, EntryPoint = "cublasLtCreate")]
    public static partial int Create(out IntPtr handle);

    [LibraryImport(Lib, EntryPoint = "cublasLtDestroy")]
    public static partial int Destroy(IntPtr handle);

    /// <summary>cublasLtMatmulDescCreate(desc*, cublasComputeType_t computeType, cudaDataType_t scaleType).</summary>
    [LibraryImport(Lib, EntryPoint = "cublasLtMatmulDescCreate")]
    public static partial int MatmulDescCreate(out IntPtr desc, int computeType, int scaleType);

    [LibraryImport(Lib, EntryPoint = "cublasLtMatmulDescSetAttribute")]
    public static partial int MatmulDescSetAttribute(IntPtr desc, int attr, void* buf, nuint sizeInBytes);

    [LibraryImport(Lib, EntryPoint = "cublasLtMatmulDescDestroy")]
    public static partial int MatmulDescDestroy(IntPtr desc);

    /// <summary>cublasLtMatrixLayoutCreate(layout*, cudaDataType, uint64_t rows, uint64_t cols, int64_t ld).</summary>
    [LibraryImport(Lib, EntryPoint = "cublasLtMatrixLayoutCreate")]
    public static partial int MatrixLayoutCreate(out IntPtr layout, int type, ulong rows, ulong cols, long ld);

    [LibraryImport(Lib, EntryPoint = "cublasLtMatrixLayoutSetAttribute")]
    public static partial int MatrixLayoutSetAttribute(IntPtr layout, int attr, void* buf, nuint sizeInBytes);

    [LibraryImport(Lib, EntryPoint = "cublasLtMatrixLayoutDestroy")]
    public static partial int MatrixLayoutDestroy(IntPtr layout);

    [LibraryImport(Lib, EntryPoint = "cublasLtMatmulPreferenceCreate")]
    public static partial int MatmulPreferenceCreate(out IntPtr pref);

    [LibraryImport(Lib, EntryPoint = "cublasLtMatmulPreferenceSetAttribute")]
    public static partial int MatmulPreferenceSetAttribute(IntPtr pref, int attr, void* buf, nuint sizeInBytes);

    [LibraryImport(Lib, EntryPoint = "cublasLtMatmulPreferenceDestroy")]
    public static partial int MatmulPreferenceDestroy(IntPtr pref);

    /// <summary>
    /// cublasLtMatmulAlgoGetHeuristic: up to <paramref name="requested"/> results
    /// (cublasLtMatmulHeuristicResult_t, <see cref="Cuda.LtMatmulArgs.HeuristicResultBytes"/> bytes each) into
    /// <paramref name="results"/>, best first; <paramref name="count"/> of them written.
    /// </summary>
    [LibraryImport(Lib, EntryPoint = "cublasLtMatmulAlgoGetHeuristic")]
    public static partial int MatmulAlgoGetHeuristic(IntPtr handle, IntPtr desc, IntPtr aDesc, IntPtr bDesc,
        IntPtr cDesc, IntPtr dDesc, IntPtr pref, int requested, byte* results, out int count);

    /// <summary>
    /// cublasLtMatmul: D = epilogue(α·op(A)·op(B) + β·C) on <paramref name="stream"/>; α and β point to host values of
    /// the scale type (the default pointer mode); <paramref name="algo"/> points to a cublasLtMatmulAlgo_t.
    /// </summary>
    [LibraryImport(Lib, EntryPoint = "cublasLtMatmul")]
    public static partial int Matmul(IntPtr handle, IntPtr desc, float* alpha, ulong a, IntPtr aDesc, ulong b,
        IntPtr bDesc, float* beta, ulong c, IntPtr cDesc, ulong d, IntPtr dDesc, byte* algo, ulong workspace,
        nuint workspaceBytes, IntPtr stream);
}
