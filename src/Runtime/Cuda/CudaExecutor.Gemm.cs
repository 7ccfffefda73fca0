using System.Runtime.InteropServices;
using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.Runtime.Native;

namespace ShiftWise.Runtime.Cuda;

/// <summary>
/// The GEMM steps: a float32 <see cref="GemmCall"/> runs as <c>cublasSgemmStridedBatched</c>
/// (<see cref="SgemmStridedBatchedArgs"/>), a bf16 or fp16 one as <c>cublasGemmStridedBatchedEx</c> with float32
/// compute (<see cref="GemmStridedBatchedExArgs"/>; issue 22), and one with <see cref="GemmCall.Lt"/> as
/// <c>cublasLtMatmul</c> (CudaExecutor.Lt.cs). α and β live in native memory for the executor's lifetime, so a captured
/// CUDA graph can replay the call.
/// </summary>
public sealed unsafe partial class CudaExecutor
{
    private Action BindGemm(GemmCall c)
    {
        var scalars = (float*)NativeMemory.Alloc(8);
        _native.Add((IntPtr)scalars);
        scalars[0] = c.Alpha;
        scalars[1] = c.Beta;
        if (c.Lt is not null && BindLt(c, scalars) is { } lt) return lt;
        if (c.Storage == DType.F32)
        {
            var s = SgemmStridedBatchedArgs.Of(c);
            ulong a = Resolve(s.A), b = Resolve(s.B), cc = Resolve(s.C);
            var what = $"cublasSgemmStridedBatched for %{c.Node} (m {s.M}, n {s.N}, k {s.K}, batch {s.BatchCount})";
            return () => CublasCheck(CublasApi.SgemmStridedBatched(_cublas, s.TransA, s.TransB, s.M, s.N, s.K,
                scalars, a, s.Lda, s.StrideA, b, s.Ldb, s.StrideB, scalars + 1, cc, s.Ldc, s.StrideC,
                s.BatchCount), what);
        }
        var e = GemmStridedBatchedExArgs.Of(c);
        var x = e.Call;
        int bytes = c.Storage.Size();
        ulong pa = Resolve(x.A, bytes), pb = Resolve(x.B, bytes), pc = Resolve(x.C, bytes);
        var whatEx = $"cublasGemmStridedBatchedEx ({GemmStridedBatchedExArgs.TypeName(e.Ctype)}) for %{c.Node} " +
            $"(m {x.M}, n {x.N}, k {x.K}, batch {x.BatchCount})";
        return () => CublasCheck(CublasApi.GemmStridedBatchedEx(_cublas, x.TransA, x.TransB, x.M, x.N, x.K, scalars,
            pa, e.Atype, x.Lda, x.StrideA, pb, e.Btype, x.Ldb, x.StrideB, scalars + 1, pc, e.Ctype, x.Ldc, x.StrideC,
            x.BatchCount, e.ComputeType, e.Algo), whatEx);
    }

    private static void CublasCheck(int status, string what)
    {
        if (status != 0) throw new CudaException(what, CublasStatus(status));
    }

    private static string CublasStatus(int s) => s switch
    {
        1 => "CUBLAS_STATUS_NOT_INITIALIZED",
        3 => "CUBLAS_STATUS_ALLOC_FAILED",
        7 => "CUBLAS_STATUS_INVALID_VALUE",
        8 => "CUBLAS_STATUS_ARCH_MISMATCH",
        11 => "CUBLAS_STATUS_MAPPING_ERROR",
        13 => "CUBLAS_STATUS_EXECUTION_FAILED",
        14 => "CUBLAS_STATUS_INTERNAL_ERROR",
        15 => "CUBLAS_STATUS_NOT_SUPPORTED",
        _ => $"cuBLAS status {s}",
    };
}
