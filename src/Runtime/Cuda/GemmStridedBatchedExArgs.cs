using ShiftWise.CodegenCuda;
using ShiftWise.IR;

namespace ShiftWise.Runtime.Cuda;

/// <summary>
/// The argument list of one <c>cublasGemmStridedBatchedEx</c> call exactly as <see cref="CudaExecutor"/> passes it
/// for a 16-bit <see cref="GemmCall"/> (issue 22): the operands of the SGEMM form (<see cref="Call"/>: operations,
/// sizes, the matrices, leading dimensions and strides in elements of their type, α and β as float32, passed by
/// pointer to float as <c>CUBLAS_COMPUTE_32F</c> requires), plus the element types of A, B and C as
/// <c>cudaDataType_t</c> values, the compute type (<c>cublasComputeType_t</c>) and the algorithm
/// (<c>cublasGemmAlgo_t</c>). Built in one place so that what the driver receives can be checked without a GPU.
/// </summary>
/// <param name="Call">Everything the call shares with <c>cublasSgemmStridedBatched</c>, in the same meaning.</param>
/// <param name="Atype">The element type of A.</param>
/// <param name="Btype">The element type of B.</param>
/// <param name="Ctype">The element type of C.</param>
/// <param name="ComputeType">The accumulation type.</param>
/// <param name="Algo">The algorithm choice.</param>
public sealed record GemmStridedBatchedExArgs(SgemmStridedBatchedArgs Call, int Atype, int Btype, int Ctype,
    int ComputeType, int Algo)
{
    /// <summary>CUDA_R_32F (library_types.h): float.</summary>
    public const int R32F = 0;

    /// <summary>CUDA_R_16F (library_types.h): IEEE binary16.</summary>
    public const int R16F = 2;

    /// <summary>CUDA_R_16BF (library_types.h): bfloat16.</summary>
    public const int R16BF = 14;

    /// <summary>CUBLAS_COMPUTE_32F (cublas_api.h): float32 accumulation, α and β as float.</summary>
    public const int Compute32F = 68;

    /// <summary>CUBLAS_GEMM_DEFAULT (cublas_api.h): cuBLAS's heuristic choice.</summary>
    public const int GemmDefault = -1;

    /// <summary>The <c>cudaDataType_t</c> of a storage type (float32, bf16, fp16).</summary>
    public static int DataType(DType t) => t switch
    {
        DType.F32 => R32F,
        DType.F16 => R16F,
        DType.BF16 => R16BF,
        _ => throw new IrException($"cuBLAS GEMMs take f32, bf16 or f16 matrices, not {t.Name()}"),
    };

    /// <summary>The call that runs <paramref name="c"/> (A, B and C of its storage type, float32 compute).</summary>
    public static GemmStridedBatchedExArgs Of(GemmCall c)
    {
        int t = DataType(c.Storage);
        return new(SgemmStridedBatchedArgs.Operands(c), t, t, t, Compute32F, GemmDefault);
    }

    /// <summary>The name of a <c>cudaDataType_t</c> this record uses, for messages.</summary>
    public static string TypeName(int t) => t switch
    {
        R32F => "CUDA_R_32F",
        R16F => "CUDA_R_16F",
        R16BF => "CUDA_R_16BF",
        _ => $"cudaDataType {t}",
    };
}
