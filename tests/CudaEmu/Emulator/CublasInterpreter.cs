using ShiftWise.IR;
using ShiftWise.Runtime.Cuda;

namespace ShiftWise.CudaEmu;

/// <summary>What a cuBLAS call returned: the <c>cublasStatus_t</c> value, its name, and (unless success) why.</summary>
public readonly record struct CublasStatus(int Code, string Name, string? Why)
{
    /// <summary>CUBLAS_STATUS_SUCCESS.</summary>
    public static CublasStatus Success => new(0, "CUBLAS_STATUS_SUCCESS", null);

    /// <summary>CUBLAS_STATUS_INVALID_VALUE (7 in cublas_api.h) for <paramref name="why"/>.</summary>
    public static CublasStatus InvalidValue(string why) => new(7, "CUBLAS_STATUS_INVALID_VALUE", why);

    /// <summary>CUBLAS_STATUS_NOT_SUPPORTED (15 in cublas_api.h) for <paramref name="why"/>.</summary>
    public static CublasStatus NotSupported(string why) => new(15, "CUBLAS_STATUS_NOT_SUPPORTED", why);

    /// <inheritdoc/>
    public override string ToString() => Why is null ? Name : $"{Name}: {Why}";
}

/// <summary>
/// <c>cublasSgemmStridedBatched</c> as the cuBLAS documentation defines it, applied to host memory: it takes the
/// argument list the runtime passes (<see cref="SgemmStridedBatchedArgs"/>) and knows nothing of the row-major
/// tensors the plan meant. For i in [0, batchCount): C_i = α·op(A_i)·op(B_i) + β·C_i with X_i = X + i·strideX,
/// every matrix column-major (element (r, c) of X at X[r + c·ldX]), op(X) = X for CUBLAS_OP_N and Xᵀ for
/// CUBLAS_OP_T (and CUBLAS_OP_C, the same for real types); op(A) is m×k, op(B) k×n, C m×n. Sums accumulate in
/// double (an oracle, not cuBLAS's rounding).
/// <para>
/// Checked first, as cuBLAS does, and answered with CUBLAS_STATUS_INVALID_VALUE: m, n, k or batchCount below 0; an
/// operation other than N, T or C; lda &lt; max(1, m) for N (max(1, k) otherwise); ldb &lt; max(1, k) for N
/// (max(1, n) otherwise); ldc &lt; max(1, m). Then BLAS's quick returns: nothing is touched when m, n or batchCount is
/// 0, or when β = 1 and α or k is 0. A and B are not read when α or k is 0; C is not read when β is 0 (so NaN there
/// does not propagate), as the documentation allows.
/// </para>
/// <para>
/// What cuBLAS cannot see but an emulator can, each an <see cref="EmuException"/> rather than a status: an element
/// read or written outside the floats behind its pointer (on a GPU a fault or silent garbage); output matrices of two
/// batches sharing an element, or C sharing memory with A or B (results that depend on cuBLAS's schedule).
/// </para>
/// <para>
/// <c>cublasGemmStridedBatchedEx</c> (<see cref="GemmStridedBatchedExArgs"/>; issue 22) the same way, with the same
/// checks, leading dimensions, strides and bounds counted in elements of the matrices' type: A, B and C all bf16,
/// all fp16 or all float32 with CUBLAS_COMPUTE_32F and CUBLAS_GEMM_DEFAULT (anything else is
/// CUBLAS_STATUS_NOT_SUPPORTED here). 16-bit elements are widened exactly (<see cref="Float16Bits"/>), summed in double
/// with α·sum + β·C (C widened from 16 bits), and the result rounded once to nearest even into C.
/// </para>
/// <para>
/// <c>cublasLtMatmul</c> (<see cref="LtMatmulArgs"/>; issue 22) as the same product with its epilogue applied before
/// that one rounding (<see cref="RunLt"/>).
/// </para>
/// </summary>
public static unsafe class CublasInterpreter
{
    /// <summary>CUBLAS_OP_C: the conjugate transpose, Xᵀ for real types.</summary>
    public const int OpC = 2;

    /// <summary>The parameter checks cuBLAS makes before touching memory.</summary>
    public static CublasStatus Validate(SgemmStridedBatchedArgs s)
    {
        if (s.M < 0 || s.N < 0 || s.K < 0 || s.BatchCount < 0)
        {
            return CublasStatus.InvalidValue($"negative size (m {s.M}, n {s.N}, k {s.K}, batchCount {s.BatchCount})");
        }
        foreach (var (name, op) in new[] { ("transa", s.TransA), ("transb", s.TransB) })
        {
            if (op is not (SgemmStridedBatchedArgs.OpN or SgemmStridedBatchedArgs.OpT or OpC))
            {
                return CublasStatus.InvalidValue($"{name} {op} is not CUBLAS_OP_N, CUBLAS_OP_T or CUBLAS_OP_C");
            }
        }
        bool ta = s.TransA != SgemmStridedBatchedArgs.OpN, tb = s.TransB != SgemmStridedBatchedArgs.OpN;
        if (s.Lda < Math.Max(1, ta ? s.K : s.M))
        {
            return CublasStatus.InvalidValue($"lda {s.Lda} < max(1, {(ta ? "k" : "m")} = {(ta ? s.K : s.M)}) " +
                $"with transa {Op(s.TransA)}");
        }
        if (s.Ldb < Math.Max(1, tb ? s.N : s.K))
        {
            return CublasStatus.InvalidValue($"ldb {s.Ldb} < max(1, {(tb ? "n" : "k")} = {(tb ? s.N : s.K)}) " +
                $"with transb {Op(s.TransB)}");
        }
        if (s.Ldc < Math.Max(1, s.M)) return CublasStatus.InvalidValue($"ldc {s.Ldc} < max(1, m = {s.M})");
        return CublasStatus.Success;
    }

    /// <summary>
    /// Runs the call on <paramref name="a"/>, <paramref name="b"/> and <paramref name="c"/> (the addresses the call
    /// would get), behind which <paramref name="aFloats"/>, <paramref name="bFloats"/> and <paramref name="cFloats"/>
    /// floats are readable; returns the status cuBLAS would.
    /// </summary>
    public static CublasStatus Run(SgemmStridedBatchedArgs s, float* a, long aFloats, float* b, long bFloats, float* c,
        long cFloats)
    {
        var status = Validate(s);
        return status.Code != 0 ? status
            : Core<F32>(s, "cublasSgemmStridedBatched", (nint)a, aFloats, (nint)b, bFloats, (nint)c, cFloats);
    }

    /// <summary>
    /// The checks of <see cref="Validate(SgemmStridedBatchedArgs)"/>, then the types this call supports.
    /// </summary>
    public static CublasStatus Validate(GemmStridedBatchedExArgs e)
    {
        var status = Validate(e.Call);
        if (status.Code != 0) return status;
        if (e.Atype != e.Ctype || e.Btype != e.Ctype
            || e.Ctype is not (GemmStridedBatchedExArgs.R16BF or GemmStridedBatchedExArgs.R16F
                or GemmStridedBatchedExArgs.R32F))
        {
            return CublasStatus.NotSupported($"Atype {GemmStridedBatchedExArgs.TypeName(e.Atype)}, Btype " +
                $"{GemmStridedBatchedExArgs.TypeName(e.Btype)}, Ctype {GemmStridedBatchedExArgs.TypeName(e.Ctype)}: " +
                "interpreted are A, B and C all CUDA_R_16BF, all CUDA_R_16F or all CUDA_R_32F");
        }
        if (e.ComputeType != GemmStridedBatchedExArgs.Compute32F)
        {
            return CublasStatus.NotSupported($"computeType {e.ComputeType} is not CUBLAS_COMPUTE_32F");
        }
        return e.Algo == GemmStridedBatchedExArgs.GemmDefault ? status
            : CublasStatus.NotSupported($"algo {e.Algo} is not CUBLAS_GEMM_DEFAULT");
    }

    /// <summary>
    /// Runs the Ex call on <paramref name="a"/>, <paramref name="b"/> and <paramref name="c"/>, behind which
    /// <paramref name="aElements"/>, <paramref name="bElements"/> and <paramref name="cElements"/> elements of their
    /// types are readable; returns the status cuBLAS would.
    /// </summary>
    public static CublasStatus RunEx(GemmStridedBatchedExArgs e, void* a, long aElements, void* b, long bElements,
        void* c, long cElements)
    {
        const string fn = "cublasGemmStridedBatchedEx";
        var status = Validate(e);
        if (status.Code != 0) return status;
        var (s, pa, pb, pc) = (e.Call, (nint)a, (nint)b, (nint)c);
        return e.Ctype switch
        {
            GemmStridedBatchedExArgs.R16BF => Core<Bf16>(s, fn, pa, aElements, pb, bElements, pc, cElements),
            GemmStridedBatchedExArgs.R16F => Core<Fp16>(s, fn, pa, aElements, pb, bElements, pc, cElements),
            _ => Core<F32>(s, fn, pa, aElements, pb, bElements, pc, cElements),
        };
    }

    /// <summary>
    /// The parameter checks of <c>cublasLtMatmul</c> on the record the runtime builds (<see cref="LtMatmulArgs"/>),
    /// as far as this interpreter goes: A, B, C and D of one type (CUDA_R_16BF, CUDA_R_16F or CUDA_R_32F), scale type
    /// CUDA_R_32F, compute type CUBLAS_COMPUTE_32F (or CUBLAS_COMPUTE_32F_FAST_TF32 on float32, summed here exactly
    /// as the SGEMM oracle is), layouts that agree on m, n, k and the batch count, D's layout C's, an epilogue among
    /// DEFAULT, RELU, BIAS, RELU_BIAS, GELU and GELU_BIAS with a bias exactly when it reads one; then the checks of
    /// <see cref="Validate(SgemmStridedBatchedArgs)"/> on the same product.
    /// </summary>
    public static CublasStatus Validate(LtMatmulArgs l)
    {
        var (a, b, c) = (l.ALayout, l.BLayout, l.CLayout);
        if (a.Type != c.Type || b.Type != c.Type || c.Type is not (GemmStridedBatchedExArgs.R16BF
            or GemmStridedBatchedExArgs.R16F or GemmStridedBatchedExArgs.R32F))
        {
            return CublasStatus.NotSupported($"A {GemmStridedBatchedExArgs.TypeName(a.Type)}, B " +
                $"{GemmStridedBatchedExArgs.TypeName(b.Type)}, C/D {GemmStridedBatchedExArgs.TypeName(c.Type)}");
        }
        bool tf32 = l.ComputeType == LtMatmulArgs.Compute32FFastTf32 && c.Type == GemmStridedBatchedExArgs.R32F;
        if (l.ScaleType != GemmStridedBatchedExArgs.R32F
            || (l.ComputeType != GemmStridedBatchedExArgs.Compute32F && !tf32))
        {
            return CublasStatus.NotSupported($"computeType {l.ComputeType}, scaleType {l.ScaleType}");
        }
        bool ta = l.TransA != SgemmStridedBatchedArgs.OpN, tb = l.TransB != SgemmStridedBatchedArgs.OpN;
        ulong k = ta ? a.Rows : a.Cols;
        if ((ta ? a.Cols : a.Rows) != c.Rows || (tb ? b.Cols : b.Rows) != k || (tb ? b.Rows : b.Cols) != c.Cols)
        {
            return CublasStatus.InvalidValue($"op(A) {(ta ? $"{a.Cols}x{a.Rows}" : $"{a.Rows}x{a.Cols}")}, op(B) " +
                $"{(tb ? $"{b.Cols}x{b.Rows}" : $"{b.Rows}x{b.Cols}")} and D {c.Rows}x{c.Cols} do not agree");
        }
        if (a.BatchCount != c.BatchCount || b.BatchCount != c.BatchCount)
        {
            return CublasStatus.InvalidValue($"batch counts A {a.BatchCount}, B {b.BatchCount}, D {c.BatchCount}");
        }
        if (l.Epilogue is not (LtMatmulArgs.EpilogueDefault or LtMatmulArgs.EpilogueRelu or LtMatmulArgs.EpilogueBias
            or LtMatmulArgs.EpilogueReluBias or LtMatmulArgs.EpilogueGelu or LtMatmulArgs.EpilogueGeluBias))
        {
            return CublasStatus.NotSupported($"epilogue {l.Epilogue} is not interpreted");
        }
        if (LtMatmulArgs.ReadsBias(l.Epilogue) != l.Bias is not null)
        {
            return CublasStatus.InvalidValue($"{LtMatmulArgs.EpilogueName(l.Epilogue)} with" +
                (l.Bias is null ? "out a bias pointer" : " a bias pointer it does not read"));
        }
        return Validate(l.AsStridedBatched());
    }

    /// <summary>
    /// Runs <c>cublasLtMatmul</c> on <paramref name="a"/>, <paramref name="b"/>, <paramref name="c"/> (also D) and
    /// <paramref name="bias"/> (null unless the epilogue reads one), behind which that many elements of their type are
    /// readable: the product as <see cref="RunEx"/> computes it, then in double, before the one rounding to D's type,
    /// the epilogue: BIAS adds bias[row] (widened from D's type, the same vector for every column and batch), RELU
    /// takes max(x, 0) after it, GELU is cuBLASLt's tanh approximation 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    /// (which is why the plan never asks for it: our gelu is the erf form).
    /// </summary>
    public static CublasStatus RunLt(LtMatmulArgs l, void* a, long aElements, void* b, long bElements, void* c,
        long cElements, void* bias, long biasElements)
    {
        const string fn = "cublasLtMatmul";
        var status = Validate(l);
        if (status.Code != 0) return status;
        var s = l.AsStridedBatched();
        bool readsBias = LtMatmulArgs.ReadsBias(l.Epilogue);
        if (readsBias && (bias is null || biasElements < s.M))
        {
            throw new EmuException($"{fn}: the bias vector needs {s.M} elements, {biasElements} are behind it");
        }
        int e = l.Epilogue;
        var (pa, pb, pc, pbias) = ((nint)a, (nint)b, (nint)c, (nint)bias);
        return l.CLayout.Type switch
        {
            GemmStridedBatchedExArgs.R16BF => Core<Bf16>(s, fn, pa, aElements, pb, bElements, pc, cElements,
                Epilogue<Bf16>(e, pbias)),
            GemmStridedBatchedExArgs.R16F => Core<Fp16>(s, fn, pa, aElements, pb, bElements, pc, cElements,
                Epilogue<Fp16>(e, pbias)),
            _ => Core<F32>(s, fn, pa, aElements, pb, bElements, pc, cElements, Epilogue<F32>(e, pbias)),
        };
    }

    /// <summary>cuBLASLt's GELU: the tanh approximation.</summary>
    public static double GeluTanh(double x) =>
        0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));

    // the epilogue of a cublasLtEpilogue_t on the double result of row r (null: DEFAULT)
    private static Func<int, double, double>? Epilogue<TE>(int e, nint bias) where TE : IElement
    {
        if (e == LtMatmulArgs.EpilogueDefault) return null;
        bool addBias = LtMatmulArgs.ReadsBias(e);
        return (r, v) =>
        {
            if (addBias) v += TE.Load(bias, r);
            return (e & ~LtMatmulArgs.EpilogueBias) switch
            {
                LtMatmulArgs.EpilogueRelu => Math.Max(v, 0),
                LtMatmulArgs.EpilogueGelu => GeluTanh(v),
                _ => v,
            };
        };
    }

    /// <summary>
    /// A double rounded once to bf16 or fp16, to nearest with ties to even: first to float32 rounding to odd (the
    /// bracketing float whose last bit is 1 when v is not a float: 13 or more spare bits keep every tie and
    /// near-tie of the 16-bit rounding where it was), then <see cref="Float16Bits.Round"/>.
    /// </summary>
    public static ushort RoundOnce(double v, DType t)
    {
        float f = (float)v;
        if (float.IsFinite(f) && f != v && (BitConverter.SingleToUInt32Bits(f) & 1) == 0)
        {
            f = f < v ? MathF.BitIncrement(f) : MathF.BitDecrement(f);
        }
        return Float16Bits.Round(f, t);
    }

    // the validated call on elements of type TE
    private static CublasStatus Core<TE>(SgemmStridedBatchedArgs s, string fn, nint a, long aElements, nint b,
        long bElements, nint c, long cElements, Func<int, double, double>? epilogue = null) where TE : IElement
    {
        var status = CublasStatus.Success;
        if (s.M == 0 || s.N == 0 || s.BatchCount == 0) return status;
        bool product = s.Alpha != 0 && s.K > 0;
        if (!product && s.Beta == 1 && epilogue is null) return status;
        bool ta = s.TransA != SgemmStridedBatchedArgs.OpN, tb = s.TransB != SgemmStridedBatchedArgs.OpN;
        // A and B as stored: op(A) = Aᵀ stores k×m, op(B) = Bᵀ stores n×k
        var aSpan = product
            ? Extent<TE>(fn, "A", ta ? s.K : s.M, ta ? s.M : s.K, s.Lda, s.StrideA, s.BatchCount, aElements)
            : default;
        var bSpan = product
            ? Extent<TE>(fn, "B", tb ? s.N : s.K, tb ? s.K : s.N, s.Ldb, s.StrideB, s.BatchCount, bElements)
            : default;
        var cSpan = Extent<TE>(fn, "C", s.M, s.N, s.Ldc, s.StrideC, s.BatchCount, cElements);
        if (product)
        {
            Disjoint(fn, "A", a, aSpan, c, cSpan, TE.Bytes);
            Disjoint(fn, "B", b, bSpan, c, cSpan, TE.Bytes);
        }
        BatchesDisjoint(fn, s);
        Parallel.For(0, (long)s.BatchCount * s.N, job =>
        {
            long i = job / s.N;
            int col = (int)(job % s.N);
            long a0 = i * s.StrideA, b0 = i * s.StrideB, c0 = i * s.StrideC;
            for (int r = 0; r < s.M; r++)
            {
                double acc = 0;
                if (product)
                {
                    for (int q = 0; q < s.K; q++)
                    {
                        double x = TE.Load(a, a0 + (ta ? q + (long)r * s.Lda : r + (long)q * s.Lda));
                        double y = TE.Load(b, b0 + (tb ? col + (long)q * s.Ldb : q + (long)col * s.Ldb));
                        acc += x * y;
                    }
                }
                long at = c0 + r + (long)col * s.Ldc;
                double v = product ? s.Alpha * acc : 0;
                if (s.Beta != 0) v += s.Beta * TE.Load(c, at);
                if (epilogue is not null) v = epilogue(r, v);
                TE.Store(c, at, v);
            }
        });
        return status;
    }

    // how the interpreter reads and writes one element of a matrix type
    private interface IElement
    {
        static abstract int Bytes { get; }
        static abstract string Unit { get; }
        static abstract double Load(nint p, long i);
        static abstract void Store(nint p, long i, double v);
    }

    private readonly struct F32 : IElement
    {
        public static int Bytes => 4;
        public static string Unit => "floats";
        public static double Load(nint p, long i) => ((float*)p)[i];
        public static void Store(nint p, long i, double v) => ((float*)p)[i] = (float)v;
    }

    private readonly struct Bf16 : IElement
    {
        public static int Bytes => 2;
        public static string Unit => "bf16 values";
        public static double Load(nint p, long i) => Float16Bits.Widen(((ushort*)p)[i], DType.BF16);
        public static void Store(nint p, long i, double v) => ((ushort*)p)[i] = RoundOnce(v, DType.BF16);
    }

    private readonly struct Fp16 : IElement
    {
        public static int Bytes => 2;
        public static string Unit => "fp16 values";
        public static double Load(nint p, long i) => Float16Bits.Widen(((ushort*)p)[i], DType.F16);
        public static void Store(nint p, long i, double v) => ((ushort*)p)[i] = RoundOnce(v, DType.F16);
    }

    private static string Op(int op) => op switch { 0 => "N", 1 => "T", _ => "C" };

    // the first and last element the batches of a rows×cols matrix touch, relative to its pointer
    private static (long First, long Last) Extent<TE>(string fn, string name, int rows, int cols, int ld, long stride,
        int batch, long available) where TE : IElement
    {
        long span = (cols - 1) * (long)ld + rows - 1;
        long lastBatch = (batch - 1) * stride;
        long first = Math.Min(0, lastBatch), last = Math.Max(0, lastBatch) + span;
        if (first < 0 || last >= available)
        {
            throw new EmuException($"{fn}: {name} ({rows}x{cols}, ld {ld}, stride {stride}, " +
                $"batchCount {batch}, as stored) reaches {TE.Unit} {first}..{last}, but only {available} {TE.Unit} " +
                "are behind its pointer");
        }
        return (first, last);
    }

    private static void Disjoint(string fn, string name, long p, (long First, long Last) read, long c,
        (long First, long Last) written, int bytes)
    {
        // the byte ranges, each to the end of its last element
        long r0 = p + read.First * bytes, r1 = p + read.Last * bytes + bytes - 1;
        long w0 = c + written.First * bytes, w1 = c + written.Last * bytes + bytes - 1;
        if (r0 <= w1 && w0 <= r1)
        {
            throw new EmuException($"{fn}: C overlaps {name}, which it reads (the result would " +
                "depend on cuBLAS's schedule)");
        }
    }

    // two batches i < j write one element when (j − i)·strideC = dr + dc·ldc with |dr| < m and |dc| < n
    private static void BatchesDisjoint(string fn, SgemmStridedBatchedArgs s)
    {
        for (long d = 1; d < s.BatchCount; d++)
        {
            long off = d * s.StrideC;
            for (long dc = -(s.N - 1); dc <= s.N - 1; dc++)
            {
                if (Math.Abs(off - dc * s.Ldc) < s.M)
                {
                    throw new EmuException($"{fn}: the outputs of batches 0 and {d} share an " +
                        $"element (strideC {s.StrideC}, ldc {s.Ldc}, {s.M}x{s.N}): the result would depend on " +
                        "cuBLAS's schedule");
                }
            }
        }
    }
}
