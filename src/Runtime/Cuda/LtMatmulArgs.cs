using ShiftWise.CodegenCuda;
using ShiftWise.IR;

namespace ShiftWise.Runtime.Cuda;

/// <summary>
/// One matrix layout (<c>cublasLtMatrixLayout_t</c>) as the executor creates it: the element type
/// (<c>cudaDataType_t</c>), rows, columns and leading dimension of one column-major matrix as stored (so Aᵀ's layout
/// for CUBLAS_OP_T), then the batch count and the offset between batches in elements.
/// </summary>
/// <param name="Type">The element type.</param>
/// <param name="Rows">Rows as stored.</param>
/// <param name="Cols">Columns as stored.</param>
/// <param name="Ld">Leading dimension (elements between columns).</param>
/// <param name="BatchCount">CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT.</param>
/// <param name="StridedBatchOffset">CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET (0: every batch the same).</param>
public sealed record LtLayout(int Type, ulong Rows, ulong Cols, long Ld, int BatchCount, long StridedBatchOffset)
{
    /// <summary>The attributes set after <c>cublasLtMatrixLayoutCreate(type, rows, cols, ld)</c>.</summary>
    public IReadOnlyList<LtAttribute> Attributes() =>
    [
        new(LtMatmulArgs.LayoutBatchCount, "CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT", BatchCount, 4),
        new(LtMatmulArgs.LayoutStridedBatchOffset, "CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET", StridedBatchOffset,
            8),
    ];
}

/// <summary>
/// One descriptor attribute: its enum value, its name, the value and the size of its C type in bytes (4 for
/// int32_t / uint32_t, 8 for int64_t / uint64_t / pointers), which <c>cublasLt*SetAttribute</c> checks.
/// </summary>
/// <param name="Attr">The attribute's enum value.</param>
/// <param name="Name">Its name in cublasLt.h.</param>
/// <param name="Value">The value (a pointer as its address).</param>
/// <param name="Bytes">The size of its type.</param>
public sealed record LtAttribute(int Attr, string Name, long Value, int Bytes);

/// <summary>
/// Everything the executor passes to cuBLASLt for one <see cref="GemmCall"/> with <see cref="GemmCall.Lt"/> set
/// (issue 22): <c>cublasLtMatmulDescCreate(computeType, scaleType)</c> and the descriptor's attributes (operations,
/// epilogue, bias), the four layouts (D = C in place, β = 0), and the scalars. Built in one place so that CI checks it
/// and the CUDA emulator interprets it without a GPU. TF32 (float32 storage, <see cref="CudaRunOptions.Tf32"/>) is the
/// compute type CUBLAS_COMPUTE_32F_FAST_TF32: a cuBLASLt call does not read the cuBLAS handle's math mode.
/// <para>
/// Enum values and sizes checked against cublasLt.h (the CUDA 11 header as vendored in ggerganov/llama.cpp,
/// include/cuda/cublasLt.h: cublasLtMatmulDescAttributes_t, cublasLtMatrixLayoutAttribute_t,
/// cublasLtMatmulPreferenceAttributes_t, cublasLtEpilogue_t, cublasLtMatmulHeuristicResult_t), the epilogue values
/// also against NVIDIA's nvmath-python bindings documentation (nvmath.bindings.cublasLt.Epilogue, current), and
/// cublasComputeType_t (68, 77) against several bindings of cublas_api.h, the preference values against later headers
/// (with the FP8 scale pointers: the deprecated masks 2 and 4 dropped, MIN_ALIGNMENT still 5 to 8). CUDA 12 and 13 add
/// attributes and epilogues after these values; none of these changed. cublasLtMatmulDescCreate takes (desc*,
/// cublasComputeType_t, cudaDataType_t scaleType) in CUDA 11 to 13.
/// </para>
/// </summary>
/// <param name="ComputeType">cublasComputeType_t.</param>
/// <param name="ScaleType">cudaDataType_t of α and β (float).</param>
/// <param name="TransA">cublasOperation_t of A.</param>
/// <param name="TransB">cublasOperation_t of B.</param>
/// <param name="Epilogue">cublasLtEpilogue_t.</param>
/// <param name="Bias">The bias vector for the bias epilogues (D's type, D's rows long), else null.</param>
/// <param name="Alpha">α.</param>
/// <param name="Beta">β.</param>
/// <param name="A">The matrix A.</param>
/// <param name="ALayout">A as stored.</param>
/// <param name="B">The matrix B.</param>
/// <param name="BLayout">B as stored.</param>
/// <param name="C">C, which is also D (in place).</param>
/// <param name="CLayout">C's layout, also D's.</param>
public sealed record LtMatmulArgs(int ComputeType, int ScaleType, int TransA, int TransB, int Epilogue, ArgRef? Bias,
    float Alpha, float Beta, ArgRef A, LtLayout ALayout, ArgRef B, LtLayout BLayout, ArgRef C, LtLayout CLayout)
{
    /// <summary>CUBLAS_COMPUTE_32F_FAST_TF32 (cublas_api.h): float32 in and out, TF32 tensor-core products.</summary>
    public const int Compute32FFastTf32 = 77;

    /// <summary>CUBLASLT_MATMUL_DESC_TRANSA (int32_t).</summary>
    public const int DescTransA = 3;

    /// <summary>CUBLASLT_MATMUL_DESC_TRANSB (int32_t).</summary>
    public const int DescTransB = 4;

    /// <summary>CUBLASLT_MATMUL_DESC_EPILOGUE (uint32_t).</summary>
    public const int DescEpilogue = 7;

    /// <summary>CUBLASLT_MATMUL_DESC_BIAS_POINTER (const void*; elements of D's type, the default).</summary>
    public const int DescBiasPointer = 8;

    /// <summary>CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT (int32_t).</summary>
    public const int LayoutBatchCount = 5;

    /// <summary>CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET (int64_t, elements).</summary>
    public const int LayoutStridedBatchOffset = 6;

    /// <summary>CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES (uint64_t).</summary>
    public const int PrefMaxWorkspaceBytes = 1;

    /// <summary>
    /// CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES (uint32_t); B, C and D follow it (6, 7, 8).
    /// </summary>
    public const int PrefMinAlignmentA = 5;

    /// <summary>CUBLASLT_EPILOGUE_DEFAULT.</summary>
    public const int EpilogueDefault = 1;

    /// <summary>CUBLASLT_EPILOGUE_RELU.</summary>
    public const int EpilogueRelu = 2;

    /// <summary>CUBLASLT_EPILOGUE_BIAS: bias[row] added to every column (and batch).</summary>
    public const int EpilogueBias = 4;

    /// <summary>CUBLASLT_EPILOGUE_RELU_BIAS: bias, then ReLU.</summary>
    public const int EpilogueReluBias = 6;

    /// <summary>CUBLASLT_EPILOGUE_GELU: GELU in its tanh approximation (not our erf GELU; never lowered to).</summary>
    public const int EpilogueGelu = 32;

    /// <summary>CUBLASLT_EPILOGUE_GELU_BIAS: bias, then the tanh GELU (never lowered to).</summary>
    public const int EpilogueGeluBias = 36;

    /// <summary>sizeof(cublasLtMatmulAlgo_t): uint64_t data[8].</summary>
    public const int AlgoBytes = 64;

    /// <summary>
    /// sizeof(cublasLtMatmulHeuristicResult_t): the algo (64), size_t workspaceSize (8), cublasStatus_t state (4),
    /// float wavesCount (4), int reserved[4] (16).
    /// </summary>
    public const int HeuristicResultBytes = 96;

    /// <summary>The offset of workspaceSize in the heuristic result.</summary>
    public const int HeuristicWorkspaceOffset = 64;

    /// <summary>The offset of state in the heuristic result.</summary>
    public const int HeuristicStateOffset = 72;

    /// <summary>The workspace the executor offers cuBLASLt (32 MiB, NVIDIA's advice for Hopper).</summary>
    public const long WorkspaceBytes = 32L << 20;

    /// <summary>
    /// The call that runs <paramref name="c"/> (which must have <see cref="GemmCall.Lt"/>): every matrix of its
    /// storage type, float32 compute (TF32 with <paramref name="tf32"/> in float32), α and β float.
    /// </summary>
    public static LtMatmulArgs Of(GemmCall c, bool tf32 = false)
    {
        var lt = c.Lt ?? throw new IrException($"the GEMM of %{c.Node} runs through cuBLAS, not cuBLASLt");
        if (lt.HasBias != lt.Bias is not null)
        {
            throw new IrException($"the GEMM of %{c.Node}: epilogue {lt.Epilogue} with" +
                (lt.Bias is null ? "out a bias" : $" a bias ({lt.Bias})"));
        }
        int t = GemmStridedBatchedExArgs.DataType(c.Storage);
        int compute = tf32 && c.Storage == DType.F32 ? Compute32FFastTf32 : GemmStridedBatchedExArgs.Compute32F;
        int opA = c.TransA ? SgemmStridedBatchedArgs.OpT : SgemmStridedBatchedArgs.OpN;
        int opB = c.TransB ? SgemmStridedBatchedArgs.OpT : SgemmStridedBatchedArgs.OpN;
        LtLayout L(int rows, int cols, int ld, long stride) => new(t, (ulong)rows, (ulong)cols, ld, c.Batch, stride);
        return new LtMatmulArgs(compute, GemmStridedBatchedExArgs.R32F, opA, opB, EpilogueOf(lt.Epilogue), lt.Bias,
            c.Alpha, c.Beta, c.A, c.TransA ? L(c.K, c.M, c.Lda, c.StrideA) : L(c.M, c.K, c.Lda, c.StrideA),
            c.B, c.TransB ? L(c.N, c.K, c.Ldb, c.StrideB) : L(c.K, c.N, c.Ldb, c.StrideB),
            c.C, L(c.M, c.N, c.Ldc, c.StrideC));
    }

    /// <summary>The <c>cublasLtEpilogue_t</c> of a plan's epilogue.</summary>
    public static int EpilogueOf(GemmEpilogue e) => e switch
    {
        GemmEpilogue.Default => EpilogueDefault,
        GemmEpilogue.Relu => EpilogueRelu,
        GemmEpilogue.Bias => EpilogueBias,
        GemmEpilogue.ReluBias => EpilogueReluBias,
        _ => throw new IrException($"no cuBLASLt epilogue for {e}"),
    };

    /// <summary>Whether a <c>cublasLtEpilogue_t</c> reads the bias vector.</summary>
    public static bool ReadsBias(int epilogue) => epilogue is EpilogueBias or EpilogueReluBias or EpilogueGeluBias;

    /// <summary>The name of a <c>cublasLtEpilogue_t</c> this record uses, for messages.</summary>
    public static string EpilogueName(int e) => e switch
    {
        EpilogueDefault => "CUBLASLT_EPILOGUE_DEFAULT",
        EpilogueRelu => "CUBLASLT_EPILOGUE_RELU",
        EpilogueBias => "CUBLASLT_EPILOGUE_BIAS",
        EpilogueReluBias => "CUBLASLT_EPILOGUE_RELU_BIAS",
        EpilogueGelu => "CUBLASLT_EPILOGUE_GELU",
        EpilogueGeluBias => "CUBLASLT_EPILOGUE_GELU_BIAS",
        _ => $"cublasLtEpilogue {e}",
    };

    /// <summary>
    /// D: C itself (the call writes in place, β is 0 in every plan; the executor passes C's layout descriptor for D,
    /// as in-place calls require).
    /// </summary>
    public LtLayout DLayout => CLayout;

    /// <summary>
    /// The matmul descriptor's attributes in the order the executor sets them, the bias pointer (when the epilogue
    /// reads one) as <paramref name="biasAddress"/>, the bias's device address.
    /// </summary>
    public IReadOnlyList<LtAttribute> DescAttributes(ulong biasAddress)
    {
        var list = new List<LtAttribute>
        {
            new(DescTransA, "CUBLASLT_MATMUL_DESC_TRANSA", TransA, 4),
            new(DescTransB, "CUBLASLT_MATMUL_DESC_TRANSB", TransB, 4),
            new(DescEpilogue, "CUBLASLT_MATMUL_DESC_EPILOGUE", Epilogue, 4),
        };
        if (ReadsBias(Epilogue))
        {
            list.Add(new(DescBiasPointer, "CUBLASLT_MATMUL_DESC_BIAS_POINTER", (long)biasAddress, 8));
        }
        return list;
    }

    /// <summary>
    /// The heuristic preference's attributes: the workspace the executor offers, and the alignment of A, B, C and D
    /// as the device addresses <paramref name="a"/>, <paramref name="b"/> and <paramref name="c"/> (also D) have it
    /// (<see cref="Alignment"/>): the heuristic assumes 256 bytes unless told, and an activation at an offset in the
    /// arena may have less.
    /// </summary>
    public static IReadOnlyList<LtAttribute> PreferenceAttributes(ulong a, ulong b, ulong c) =>
    [
        new(PrefMaxWorkspaceBytes, "CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES", WorkspaceBytes, 8),
        new(PrefMinAlignmentA, "CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES", Alignment(a), 4),
        new(PrefMinAlignmentA + 1, "CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES", Alignment(b), 4),
        new(PrefMinAlignmentA + 2, "CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES", Alignment(c), 4),
        new(PrefMinAlignmentA + 3, "CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES", Alignment(c), 4),
    ];

    /// <summary>The largest power of two up to 256 that divides <paramref name="address"/>.</summary>
    public static long Alignment(ulong address) => address == 0 ? 256 : (long)Math.Min(256, address & (~address + 1));

    /// <summary>
    /// The same product as a <c>cublasSgemmStridedBatched</c> argument list (m, n, k from the layouts; the
    /// emulator's oracle and the standalone launcher's GEMM read it so).
    /// </summary>
    public SgemmStridedBatchedArgs AsStridedBatched()
    {
        bool ta = TransA != SgemmStridedBatchedArgs.OpN;
        int k = (int)(ta ? ALayout.Rows : ALayout.Cols);
        return new SgemmStridedBatchedArgs(TransA, TransB, (int)DLayout.Rows, (int)DLayout.Cols, k, Alpha, A,
            (int)ALayout.Ld, ALayout.StridedBatchOffset, B, (int)BLayout.Ld, BLayout.StridedBatchOffset, Beta, C,
            (int)CLayout.Ld, CLayout.StridedBatchOffset, DLayout.BatchCount);
    }
}
