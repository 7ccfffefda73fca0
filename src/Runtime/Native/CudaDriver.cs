using System.Runtime.InteropServices;

namespace ShiftWise.Runtime.Native;

/// <summary>
/// The CUDA driver API (cuda.h): raw entry points, versioned symbols (_v2) where the header maps to them.
/// <see cref="Cuda.CudaDevice"/> and the handle types are the checked entry points.
/// </summary>
internal static unsafe partial class CudaDriver
{
    private const string Lib = "cuda";

    static CudaDriver() => NativeLibraries.EnsureResolver();

    /// <summary>The load result (cached).</summary>
    public static NativeLoad Library => NativeLibraries.Load(NativeLibraries.Cuda);

    [LibraryImport(Lib, EntryPoint = "cuInit")]
    public static partial int Init(uint flags);

    [LibraryImport(Lib, EntryPoint = "cuDriverGetVersion")]
    public static partial int DriverGetVersion(out int version);

    [LibraryImport(Lib, EntryPoint = "cuGetErrorName")]
    public static partial int GetErrorName(int error, out IntPtr name);

    [LibraryImport(Lib, EntryPoint = "cuDeviceGetCount")]
    public static partial int DeviceGetCount(out int count);

    [LibraryImport(Lib, EntryPoint = "cuDeviceGet")]
    public static partial int DeviceGet(out int device, int ordinal);

    [LibraryImport(Lib, EntryPoint = "cuDeviceGetName")]
    public static partial int DeviceGetName(byte* name, int len, int device);

    [LibraryImport(Lib, EntryPoint = "cuDeviceGetAttribute")]
    public static partial int DeviceGetAttribute(out int value, int attribute, int device);

    [LibraryImport(Lib, EntryPoint = "cuDeviceTotalMem_v2")]
    public static partial int DeviceTotalMem(out nuint bytes, int device);

    [LibraryImport(Lib, EntryPoint = "cuDevicePrimaryCtxRetain")]
    public static partial int DevicePrimaryCtxRetain(out IntPtr ctx, int device);

    [LibraryImport(Lib, EntryPoint = "cuCtxSetCurrent")]
    public static partial int CtxSetCurrent(IntPtr ctx);

    [LibraryImport(Lib, EntryPoint = "cuModuleLoadData")]
    public static partial int ModuleLoadData(out IntPtr module, byte* image);

    [LibraryImport(Lib, EntryPoint = "cuModuleUnload")]
    public static partial int ModuleUnload(IntPtr module);

    [LibraryImport(Lib, EntryPoint = "cuModuleGetFunction")]
    public static partial int ModuleGetFunction(out IntPtr function, IntPtr module, byte* name);

    [LibraryImport(Lib, EntryPoint = "cuLaunchKernel")]
    public static partial int LaunchKernel(IntPtr function, uint gx, uint gy, uint gz, uint bx, uint by, uint bz,
        uint sharedBytes, IntPtr stream, IntPtr* parameters, IntPtr* extra);

    [LibraryImport(Lib, EntryPoint = "cuMemAlloc_v2")]
    public static partial int MemAlloc(out ulong ptr, nuint bytes);

    [LibraryImport(Lib, EntryPoint = "cuMemFree_v2")]
    public static partial int MemFree(ulong ptr);

    [LibraryImport(Lib, EntryPoint = "cuMemcpyHtoD_v2")]
    public static partial int MemcpyHtoD(ulong dst, void* src, nuint bytes);

    [LibraryImport(Lib, EntryPoint = "cuMemcpyDtoH_v2")]
    public static partial int MemcpyDtoH(void* dst, ulong src, nuint bytes);

    [LibraryImport(Lib, EntryPoint = "cuMemsetD32_v2")]
    public static partial int MemsetD32(ulong dst, uint value, nuint count);

    [LibraryImport(Lib, EntryPoint = "cuMemcpyHtoDAsync_v2")]
    public static partial int MemcpyHtoDAsync(ulong dst, void* src, nuint bytes, IntPtr stream);

    [LibraryImport(Lib, EntryPoint = "cuMemcpyDtoHAsync_v2")]
    public static partial int MemcpyDtoHAsync(void* dst, ulong src, nuint bytes, IntPtr stream);

    [LibraryImport(Lib, EntryPoint = "cuMemcpyDtoDAsync_v2")]
    public static partial int MemcpyDtoDAsync(ulong dst, ulong src, nuint bytes, IntPtr stream);

    [LibraryImport(Lib, EntryPoint = "cuMemsetD32Async")]
    public static partial int MemsetD32Async(ulong dst, uint value, nuint count, IntPtr stream);

    [LibraryImport(Lib, EntryPoint = "cuMemAllocHost_v2")]
    public static partial int MemAllocHost(out IntPtr ptr, nuint bytes);

    [LibraryImport(Lib, EntryPoint = "cuMemFreeHost")]
    public static partial int MemFreeHost(IntPtr ptr);

    [LibraryImport(Lib, EntryPoint = "cuStreamWaitEvent")]
    public static partial int StreamWaitEvent(IntPtr stream, IntPtr ev, uint flags);

    [LibraryImport(Lib, EntryPoint = "cuMemGetInfo_v2")]
    public static partial int MemGetInfo(out nuint free, out nuint total);

    [LibraryImport(Lib, EntryPoint = "cuStreamCreate")]
    public static partial int StreamCreate(out IntPtr stream, uint flags);

    [LibraryImport(Lib, EntryPoint = "cuStreamDestroy_v2")]
    public static partial int StreamDestroy(IntPtr stream);

    [LibraryImport(Lib, EntryPoint = "cuStreamSynchronize")]
    public static partial int StreamSynchronize(IntPtr stream);

    [LibraryImport(Lib, EntryPoint = "cuEventCreate")]
    public static partial int EventCreate(out IntPtr ev, uint flags);

    [LibraryImport(Lib, EntryPoint = "cuEventDestroy_v2")]
    public static partial int EventDestroy(IntPtr ev);

    [LibraryImport(Lib, EntryPoint = "cuEventRecord")]
    public static partial int EventRecord(IntPtr ev, IntPtr stream);

    [LibraryImport(Lib, EntryPoint = "cuEventSynchronize")]
    public static partial int EventSynchronize(IntPtr ev);

    [LibraryImport(Lib, EntryPoint = "cuEventElapsedTime")]
    public static partial int EventElapsedTime(out float ms, IntPtr start, IntPtr end);

    [LibraryImport(Lib, EntryPoint = "cuStreamBeginCapture_v2")]
    public static partial int StreamBeginCapture(IntPtr stream, int mode);

    [LibraryImport(Lib, EntryPoint = "cuStreamEndCapture")]
    public static partial int StreamEndCapture(IntPtr stream, out IntPtr graph);

    [LibraryImport(Lib, EntryPoint = "cuGraphInstantiateWithFlags")]
    public static partial int GraphInstantiateWithFlags(out IntPtr exec, IntPtr graph, ulong flags);

    [LibraryImport(Lib, EntryPoint = "cuGraphLaunch")]
    public static partial int GraphLaunch(IntPtr exec, IntPtr stream);

    [LibraryImport(Lib, EntryPoint = "cuGraphExecDestroy")]
    public static partial int GraphExecDestroy(IntPtr exec);

    [LibraryImport(Lib, EntryPoint = "cuGraphDestroy")]
    public static partial int GraphDestroy(IntPtr graph);

    // device attributes (CUdevice_attribute)
    public const int AttrMaxSharedPerBlock = 8;
    public const int AttrClockRateKhz = 13;
    public const int AttrMultiprocessors = 16;
    public const int AttrMemoryClockKhz = 36;
    public const int AttrBusWidthBits = 37;
    public const int AttrCcMajor = 75;
    public const int AttrCcMinor = 76;
}

/// <summary>cuBLAS (v2 API): handle, stream, math mode, strided-batched SGEMM and its Ex form.</summary>
internal static unsafe partial class CublasApi
{
    private const string Lib = "cublas";

    static CublasApi() => NativeLibraries.EnsureResolver();

    /// <summary>The load result (cached).</summary>
    public static NativeLoad Library => NativeLibraries.Load(NativeLibraries.Cublas);

    [LibraryImport(Lib, EntryPoint = "cublasCreate_v2")]
    public static partial int Create(out IntPtr handle);

    [LibraryImport(Lib, EntryPoint = "cublasDestroy_v2")]
    public static partial int Destroy(IntPtr handle);

    [LibraryImport(Lib, EntryPoint = "cublasSetStream_v2")]
    public static partial int SetStream(IntPtr handle, IntPtr stream);

    [LibraryImport(Lib, EntryPoint = "cublasSetMathMode")]
    public static partial int SetMathMode(IntPtr handle, int mode);

    [LibraryImport(Lib, EntryPoint = "cublasSgemmStridedBatched")]
    public static partial int SgemmStridedBatched(IntPtr handle, int transa, int transb, int m, int n, int k,
        float* alpha, ulong a, int lda, long strideA, ulong b, int ldb, long strideB, float* beta, ulong c, int ldc,
        long strideC, int batchCount);

    /// <summary>
    /// cublasGemmStridedBatchedEx: A, B and C of the given <c>cudaDataType_t</c>s, summed in
    /// <paramref name="computeType"/> (a <c>cublasComputeType_t</c>); α and β point to values of the compute type's
    /// scalar type (float for CUBLAS_COMPUTE_32F).
    /// </summary>
    [LibraryImport(Lib, EntryPoint = "cublasGemmStridedBatchedEx")]
    public static partial int GemmStridedBatchedEx(IntPtr handle, int transa, int transb, int m, int n, int k,
        float* alpha, ulong a, int atype, int lda, long strideA, ulong b, int btype, int ldb, long strideB, float* beta,
        ulong c, int ctype, int ldc, long strideC, int batchCount, int computeType, int algo);

    /// <summary>CUBLAS_DEFAULT_MATH: full fp32 (no TF32).</summary>
    public const int MathDefault = 0;

    /// <summary>CUBLAS_TF32_TENSOR_OP_MATH.</summary>
    public const int MathTf32 = 3;
}
