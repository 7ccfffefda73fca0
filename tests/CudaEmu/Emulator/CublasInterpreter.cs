using ShiftWise.Runtime.Cuda;

namespace ShiftWise.CudaEmu;

/// <summary>What a cuBLAS call returned: the <c>cublasStatus_t</c> value, its name, and (unless success) why.</summary>
public readonly record struct CublasStatus(int Code, string Name, string? Why)
{
    /// <summary>CUBLAS_STATUS_SUCCESS.</summary>
    public static CublasStatus Success => new(0, "CUBLAS_STATUS_SUCCESS", null);

    /// <summary>CUBLAS_STATUS_INVALID_VALUE (7 in cublas_api.h) for <paramref name="why"/>.</summary>
    public static CublasStatus InvalidValue(string why) => new(7, "CUBLAS_STATUS_INVALID_VALUE", why);

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
        if (status.Code != 0) return status;
        if (s.M == 0 || s.N == 0 || s.BatchCount == 0) return status;
        bool product = s.Alpha != 0 && s.K > 0;
        if (!product && s.Beta == 1) return status;
        bool ta = s.TransA != SgemmStridedBatchedArgs.OpN, tb = s.TransB != SgemmStridedBatchedArgs.OpN;
        // A and B as stored: op(A) = Aᵀ stores k×m, op(B) = Bᵀ stores n×k
        var aSpan = product ? Extent("A", ta ? s.K : s.M, ta ? s.M : s.K, s.Lda, s.StrideA, s.BatchCount, aFloats)
            : default;
        var bSpan = product ? Extent("B", tb ? s.N : s.K, tb ? s.K : s.N, s.Ldb, s.StrideB, s.BatchCount, bFloats)
            : default;
        var cSpan = Extent("C", s.M, s.N, s.Ldc, s.StrideC, s.BatchCount, cFloats);
        if (product)
        {
            Disjoint("A", (long)a, aSpan, (long)c, cSpan);
            Disjoint("B", (long)b, bSpan, (long)c, cSpan);
        }
        BatchesDisjoint(s);
        long aP = (long)a, bP = (long)b, cP = (long)c; // pointers cannot be captured by the lambda
        Parallel.For(0, (long)s.BatchCount * s.N, job =>
        {
            long i = job / s.N;
            int col = (int)(job % s.N);
            float* A = (float*)aP + i * s.StrideA, B = (float*)bP + i * s.StrideB, C = (float*)cP + i * s.StrideC;
            for (int r = 0; r < s.M; r++)
            {
                double acc = 0;
                if (product)
                {
                    for (int q = 0; q < s.K; q++)
                    {
                        double x = ta ? A[q + (long)r * s.Lda] : A[r + (long)q * s.Lda];
                        double y = tb ? B[col + (long)q * s.Ldb] : B[q + (long)col * s.Ldb];
                        acc += x * y;
                    }
                }
                long at = r + (long)col * s.Ldc;
                double v = product ? s.Alpha * acc : 0;
                if (s.Beta != 0) v += s.Beta * (double)C[at];
                C[at] = (float)v;
            }
        });
        return status;
    }

    private static string Op(int op) => op switch { 0 => "N", 1 => "T", _ => "C" };

    // the first and last float the batches of a rows×cols matrix touch, relative to its pointer
    private static (long First, long Last) Extent(string name, int rows, int cols, int ld, long stride, int batch,
        long available)
    {
        long span = (cols - 1) * (long)ld + rows - 1;
        long lastBatch = (batch - 1) * stride;
        long first = Math.Min(0, lastBatch), last = Math.Max(0, lastBatch) + span;
        if (first < 0 || last >= available)
        {
            throw new EmuException($"cublasSgemmStridedBatched: {name} ({rows}x{cols}, ld {ld}, stride {stride}, " +
                $"batchCount {batch}, as stored) reaches floats {first}..{last}, but only {available} floats are " +
                "behind its pointer");
        }
        return (first, last);
    }

    private static void Disjoint(string name, long p, (long First, long Last) read, long c,
        (long First, long Last) written)
    {
        long r0 = p + read.First * 4, r1 = p + read.Last * 4, w0 = c + written.First * 4, w1 = c + written.Last * 4;
        if (r0 <= w1 && w0 <= r1)
        {
            throw new EmuException($"cublasSgemmStridedBatched: C overlaps {name}, which it reads (the result would " +
                "depend on cuBLAS's schedule)");
        }
    }

    // two batches i < j write one element when (j − i)·strideC = dr + dc·ldc with |dr| < m and |dc| < n
    private static void BatchesDisjoint(SgemmStridedBatchedArgs s)
    {
        for (long d = 1; d < s.BatchCount; d++)
        {
            long off = d * s.StrideC;
            for (long dc = -(s.N - 1); dc <= s.N - 1; dc++)
            {
                if (Math.Abs(off - dc * s.Ldc) < s.M)
                {
                    throw new EmuException($"cublasSgemmStridedBatched: the outputs of batches 0 and {d} share an " +
                        $"element (strideC {s.StrideC}, ldc {s.Ldc}, {s.M}x{s.N}): the result would depend on " +
                        "cuBLAS's schedule");
                }
            }
        }
    }
}
