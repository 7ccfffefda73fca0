using ShiftWise.CodegenCuda;
using ShiftWise.IR;

namespace ShiftWise.Runtime.Cuda;

/// <summary>
/// The argument list of one <c>cublasSgemmStridedBatched</c> call exactly as <see cref="CudaExecutor"/> passes it
/// (in cuBLAS's parameter order, the handle left out): the operations as <c>cublasOperation_t</c> values, the sizes,
/// the leading dimensions and strides in floats, the scalars, and the three matrices as the plan arguments whose
/// device addresses the executor passes. Built in one place so that what the driver receives can be checked without
/// a GPU (the CUDA emulator interprets these arguments by cuBLAS's documented semantics).
/// </summary>
public sealed record SgemmStridedBatchedArgs(int TransA, int TransB, int M, int N, int K, float Alpha,
    ArgRef A, int Lda, long StrideA, ArgRef B, int Ldb, long StrideB, float Beta, ArgRef C, int Ldc, long StrideC,
    int BatchCount)
{
    /// <summary>CUBLAS_OP_N: op(X) = X.</summary>
    public const int OpN = 0;

    /// <summary>CUBLAS_OP_T: op(X) = Xᵀ.</summary>
    public const int OpT = 1;

    /// <summary>
    /// The call that runs <paramref name="c"/>, a float32 GEMM (a 16-bit one runs as
    /// <see cref="GemmStridedBatchedExArgs"/>, and is refused here).
    /// </summary>
    public static SgemmStridedBatchedArgs Of(GemmCall c) => c.Storage == DType.F32 ? Operands(c)
        : throw new IrException($"the GEMM of %{c.Node} is {c.Storage.Name()}: it runs as cublasGemmStridedBatchedEx, "
            + "not cublasSgemmStridedBatched");

    /// <summary>
    /// The arguments <paramref name="c"/> gives either call, whatever its storage (leading dimensions and strides in
    /// elements of that type).
    /// </summary>
    public static SgemmStridedBatchedArgs Operands(GemmCall c) => new(c.TransA ? OpT : OpN, c.TransB ? OpT : OpN,
        c.M, c.N, c.K, c.Alpha, c.A, c.Lda, c.StrideA, c.B, c.Ldb, c.StrideB, c.Beta, c.C, c.Ldc, c.StrideC, c.Batch);
}
