using ShiftWise.CodegenCuda;
using ShiftWise.Runtime.Cuda;

namespace ShiftWise.CudaEmu;

/// <summary>
/// <see cref="CublasInterpreter"/> against hand-computed cases and an independent formulation of cuBLAS's documented
/// semantics (column-major storage, op(X), leading dimensions, per-batch strides), and its parameter checks.
/// </summary>
public sealed unsafe class CublasInterpreterTests
{
    private const int N = 0, T = 1;

    private static readonly ArgRef Any = new(ArgKind.Value, "x");

    private static SgemmStridedBatchedArgs Call(int ta, int tb, int m, int n, int k, int lda, int ldb, int ldc,
        long sa = 0, long sb = 0, long sc = 0, int batch = 1, float alpha = 1, float beta = 0) =>
        new(ta, tb, m, n, k, alpha, Any, lda, sa, Any, ldb, sb, beta, Any, ldc, sc, batch);

    private static CublasStatus Run(SgemmStridedBatchedArgs s, float[] a, float[] b, float[] c)
    {
        fixed (float* pa = a, pb = b, pc = c) return CublasInterpreter.Run(s, pa, a.Length, pb, b.Length, pc, c.Length);
    }

    private const float X = float.NaN; // padding that must never be read

    [Fact]
    public void A_2x3_times_B_3x2_stored_column_major_by_hand()
    {
        // A = [1 3 5; 2 4 6] is stored by columns 1,2 | 3,4 | 5,6; B = [7 10; 8 11; 9 12] as 7,8,9 | 10,11,12.
        // A·B = [1·7+3·8+5·9, 1·10+3·11+5·12; 2·7+4·8+6·9, 2·10+4·11+6·12] = [76 103; 100 136]
        var c = new float[4];
        Assert.Equal(0, Run(Call(N, N, 2, 2, 3, 2, 3, 2), [1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12], c).Code);
        Assert.Equal([76, 100, 103, 136], c);
    }

    [Fact]
    public void Transposed_operands_with_leading_dimensions_past_their_rows_by_hand()
    {
        // transa T: op(A) = Aᵀ is 2x3, so A is stored 3x2 with lda 4 (one NaN pad row): the columns of A are
        // (1,3,5) and (2,4,6), i.e. the rows of op(A) = [1 3 5; 2 4 6] as above. transb T: op(B) = Bᵀ is 3x2, B
        // stored 2x3 with ldb 3: columns (7,10), (8,11), (9,12) are the rows of op(B) = [7 10; 8 11; 9 12].
        float[] a = [1, 3, 5, X, 2, 4, 6, X];
        float[] b = [7, 10, X, 8, 11, X, 9, 12, X];
        // ldc 3: C's pad row stays as it was (the -1s), alpha 2 doubles the product
        float[] c = [X, X, -1, X, X, -1];
        Assert.Equal(0, Run(Call(T, T, 2, 2, 3, 4, 3, 3, alpha: 2), a, b, c).Code);
        Assert.Equal([152, 200, -1, 206, 272, -1], c);
    }

    [Fact]
    public void Batches_follow_their_strides_and_a_zero_stride_shares_one_matrix()
    {
        // op(A) = A 1x2 = [1 2] shared by both batches (strideA 0); B_i 2x1 at strideB 3 (one pad float);
        // C_i 1x1 at strideC 2; beta 1 adds the old C: C_0 = 10 + 1·3 + 2·4, C_1 = 20 + 1·5 + 2·6
        float[] b = [3, 4, X, 5, 6, X];
        float[] c = [10, -1, 20, -1];
        Assert.Equal(0, Run(Call(N, N, 1, 1, 2, 1, 2, 1, sa: 0, sb: 3, sc: 2, batch: 2, beta: 1), [1, 2], b, c).Code);
        Assert.Equal([21, -1, 37, -1], c);
    }

    [Fact]
    public void Interleaved_batches_that_share_no_element_are_legal()
    {
        // two 1x2 outputs in one 2x2 column-major block: batch i is row i (strideC 1, ldc 2)
        float[] c = new float[4];
        var call = Call(N, N, 1, 2, 1, 1, 1, 2, sa: 1, sb: 2, sc: 1, batch: 2);
        Assert.Equal(0, Run(call, [2, 3], [1, 10, 100, 1000], c).Code);
        Assert.Equal([2, 300, 20, 3000], c);
    }

    [Fact]
    public void Beta_zero_does_not_read_C_and_alpha_zero_does_not_read_A_or_B()
    {
        float[] c = [X, X];
        Assert.Equal(0, Run(Call(N, N, 2, 1, 1, 2, 1, 2), [3, 4], [2], c).Code);
        Assert.Equal([6, 8], c);
        // alpha 0: C = beta·C with A and B all NaN; beta 1 as well: BLAS's quick return leaves C as it is
        c = [5, 6];
        Assert.Equal(0, Run(Call(N, N, 2, 1, 1, 2, 1, 2, alpha: 0, beta: 0.5f), [X, X], [X], c).Code);
        Assert.Equal([2.5f, 3], c);
        Assert.Equal(0, Run(Call(N, N, 2, 1, 1, 2, 1, 2, alpha: 0, beta: 1), [X, X], [X], c).Code);
        Assert.Equal([2.5f, 3], c);
        // k = 0: no product, C = beta·C
        Assert.Equal(0, Run(Call(N, N, 2, 1, 0, 2, 1, 2, beta: 2), [], [], c).Code);
        Assert.Equal([5, 6], c);
    }

    [Fact]
    public void Random_cases_match_an_independent_formulation_of_the_semantics()
    {
        const int M = 3, Nn = 4, K = 5, Batch = 3;
        var rnd = new Random(11);
        foreach (var (ta, tb) in new[] { (N, N), (T, N), (N, T), (T, T), (CublasInterpreter.OpC, N) })
        {
            // op(A) (MxK), op(B) (KxN) and C0 (MxN) per batch as 2-D arrays; small integers make every sum exact
            var opA = new double[Batch, M, K];
            var opB = new double[Batch, K, Nn];
            var c0 = new double[Batch, M, Nn];
            for (int i = 0; i < Batch; i++)
            {
                for (int r = 0; r < M; r++) for (int k = 0; k < K; k++) opA[i, r, k] = rnd.Next(-4, 5);
                for (int k = 0; k < K; k++) for (int c = 0; c < Nn; c++) opB[i, k, c] = rnd.Next(-4, 5);
                for (int r = 0; r < M; r++) for (int c = 0; c < Nn; c++) c0[i, r, c] = rnd.Next(-4, 5);
            }
            bool tA = ta != N, tB = tb != N;
            int aRows = tA ? K : M, aCols = tA ? M : K, bRows = tB ? Nn : K, bCols = tB ? K : Nn;
            int lda = aRows + 1, ldb = bRows + 2, ldc = M + 1;
            long sa = lda * aCols + 3, sb = ldb * bCols + 1, sc = ldc * Nn + 2;
            var A = Enumerable.Repeat(X, (int)(sa * Batch)).ToArray();
            var B = Enumerable.Repeat(X, (int)(sb * Batch)).ToArray();
            var C = new float[sc * Batch];
            for (int i = 0; i < Batch; i++)
            {
                // a stored matrix S (rows x cols) holds S(row, col) at row + col·ld; a transposed operand stores opᵀ
                for (int r = 0; r < M; r++) for (int k = 0; k < K; k++)
                    A[i * sa + (tA ? k + r * lda : r + k * lda)] = (float)opA[i, r, k];
                for (int k = 0; k < K; k++) for (int c = 0; c < Nn; c++)
                    B[i * sb + (tB ? c + k * ldb : k + c * ldb)] = (float)opB[i, k, c];
                for (int r = 0; r < M; r++) for (int c = 0; c < Nn; c++) C[i * sc + r + c * ldc] = (float)c0[i, r, c];
            }
            var call = Call(ta, tb, M, Nn, K, lda, ldb, ldc, sa, sb, sc, Batch, alpha: 1.5f, beta: 0.5f);
            Assert.Equal(0, Run(call, A, B, C).Code);
            for (int i = 0; i < Batch; i++)
            {
                for (int r = 0; r < M; r++)
                {
                    for (int c = 0; c < Nn; c++)
                    {
                        double s = 0;
                        for (int k = 0; k < K; k++) s += opA[i, r, k] * opB[i, k, c];
                        Assert.Equal(1.5 * s + 0.5 * c0[i, r, c], C[i * sc + r + c * ldc]);
                    }
                }
            }
        }
    }

    public static TheoryData<string, string> InvalidCalls() => new()
    {
        // name of the case, what the status names
        { "m -1", "negative size" },
        { "batchCount -1", "negative size" },
        { "transa 3", "transa 3 is not CUBLAS_OP_N" },
        { "lda < m with N", "lda 2 < max(1, m = 3) with transa N" },
        { "lda = m < k with T", "lda 3 < max(1, k = 4) with transa T" },
        { "ldb < k with N", "ldb 3 < max(1, k = 4) with transb N" },
        { "ldb = k < n with T", "ldb 4 < max(1, n = 5) with transb T" },
        { "ldc < m", "ldc 2 < max(1, m = 3)" },
        { "ld 0 for an empty matrix", "ldc 0 < max(1, m = 0)" },
    };

    [Theory]
    [MemberData(nameof(InvalidCalls))]
    public void Parameter_checks_answer_invalid_value_before_touching_memory(string name, string why)
    {
        // valid base: m 3, n 5, k 4, N/N, lda 3, ldb 4, ldc 3
        var ok = Call(N, N, 3, 5, 4, 3, 4, 3);
        Assert.Equal(0, CublasInterpreter.Validate(ok).Code);
        var bad = name switch
        {
            "m -1" => ok with { M = -1 },
            "batchCount -1" => ok with { BatchCount = -1 },
            "transa 3" => ok with { TransA = 3 },
            "lda < m with N" => ok with { Lda = 2 },
            "lda = m < k with T" => ok with { TransA = T },
            "ldb < k with N" => ok with { Ldb = 3 },
            "ldb = k < n with T" => ok with { TransB = T },
            "ldc < m" => ok with { Ldc = 2 },
            _ => ok with { M = 0, Lda = 1, Ldc = 0 },
        };
        // memory too small for anything: the status comes first, nothing is read or written
        var c = new float[1];
        var status = Run(bad, [], [], c);
        Assert.Equal(7, status.Code);
        Assert.Equal("CUBLAS_STATUS_INVALID_VALUE", status.Name);
        Assert.Contains(why, status.Why, StringComparison.Ordinal);
        Assert.Equal(0, c[0]);
    }

    [Fact]
    public void Empty_products_touch_nothing()
    {
        var c = new float[] { X };
        Assert.Equal(0, Run(Call(N, N, 0, 5, 4, 1, 4, 1), [], [], c).Code);
        Assert.Equal(0, Run(Call(N, N, 3, 5, 4, 3, 4, 3, batch: 0), [], [], c).Code);
        Assert.True(float.IsNaN(c[0]));
    }

    [Fact]
    public void What_cublas_cannot_see_the_emulator_refuses()
    {
        // one float too few behind C
        var e = Assert.Throws<EmuException>(() => Run(Call(N, N, 2, 2, 1, 2, 1, 2), [1, 2], [1, 2], new float[3]));
        Assert.Contains("C (2x2, ld 2, stride 0, batchCount 1, as stored) reaches floats 0..3, but only 3", e.Message,
            StringComparison.Ordinal);
        // two batches writing one C (strideC 0)
        e = Assert.Throws<EmuException>(() => Run(Call(N, N, 1, 1, 1, 1, 1, 1, batch: 2), [1], [1], new float[1]));
        Assert.Contains("batches 0 and 1 share an element", e.Message, StringComparison.Ordinal);
        // C on top of A
        var buf = new float[4];
        e = Assert.Throws<EmuException>(() =>
        {
            fixed (float* p = buf) CublasInterpreter.Run(Call(N, N, 2, 1, 1, 2, 1, 2), p, 4, p + 2, 2, p + 1, 3);
        });
        Assert.Contains("C overlaps A", e.Message, StringComparison.Ordinal);
    }
}
