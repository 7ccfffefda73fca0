using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// How a <see cref="Gemm"/> node's product maps onto one strided-batched SGEMM in cuBLAS's column-major convention,
/// chosen so that the output is written directly in its final layout (no transposition kernels). A row-major
/// matrix R (r×c) is the column-major matrix Rᵀ (c×r) with leading dimension c; W is the weight, O×K row-major.
/// <list type="table">
/// <item><term>rows in, rows out</term><description>x is (rows×K): Yᵀ (O×rows) = W·Xᵀ: A = W (transposed, lda
/// K), B = x (lda K), one batch.</description></item>
/// <item><term>NCHW in, rows out</term><description>per image X_b is K×HW: Y_bᵀ (O×HW) = W·X_b: A = W
/// (transposed), B = x (transposed, ldb HW), batch N.</description></item>
/// <item><term>rows in, NCHW out</term><description>per image X_b is HW×K: Y_b (O×HW row-major, i.e. HW×O
/// column-major) = X_b·Wᵀ: A = x (transposed, lda K), B = W (ldb K), batch N.</description></item>
/// <item><term>NCHW in, NCHW out</term><description>Y_b (HW×O column-major) = X_bᵀ·Wᵀ: A = x (lda HW),
/// B = W (ldb K), batch N.</description></item>
/// </list>
/// </summary>
public static class GemmMapping
{
    /// <summary>
    /// The GEMM call for input shape <paramref name="x"/> and weight shape <paramref name="w"/> (Node left empty).
    /// </summary>
    public static GemmCall Map(Gemm op, Shape x, Shape w, ArgRef xArg, ArgRef wArg, ArgRef y)
    {
        int o = w[0], k = w[1];
        if (!op.InNchw && !op.OutNchw)
        {
            int rows = Int(k == 0 ? 0 : x.Elements / k, "rows");
            return new GemmCall("", TransA: true, TransB: false, M: o, N: rows, K: k, A: wArg, Lda: Math.Max(1, k),
                StrideA: 0, B: xArg, Ldb: Math.Max(1, k), StrideB: 0, C: y, Ldc: Math.Max(1, o), StrideC: 0, Batch: 1,
                Alpha: 1f, Beta: 0f);
        }
        int batch = x[0];
        int hw = Int(op.InNchw ? (long)x[2] * x[3] : (long)x[1] * x[2], "positions per image");
        long xs = (long)hw * k, ys = (long)hw * o;
        if (!op.OutNchw)
        {
            return new GemmCall("", TransA: true, TransB: true, M: o, N: hw, K: k, A: wArg, Lda: Math.Max(1, k),
                StrideA: 0, B: xArg, Ldb: Math.Max(1, hw), StrideB: xs, C: y, Ldc: Math.Max(1, o), StrideC: ys,
                Batch: batch, Alpha: 1f, Beta: 0f);
        }
        return op.InNchw
            ? new GemmCall("", TransA: false, TransB: false, M: hw, N: o, K: k, A: xArg, Lda: Math.Max(1, hw),
                StrideA: xs, B: wArg, Ldb: Math.Max(1, k), StrideB: 0, C: y, Ldc: Math.Max(1, hw), StrideC: ys,
                Batch: batch, Alpha: 1f, Beta: 0f)
            : new GemmCall("", TransA: true, TransB: false, M: hw, N: o, K: k, A: xArg, Lda: Math.Max(1, k),
                StrideA: xs, B: wArg, Ldb: Math.Max(1, k), StrideB: 0, C: y, Ldc: Math.Max(1, hw), StrideC: ys,
                Batch: batch, Alpha: 1f, Beta: 0f);
    }

    private static int Int(long v, string what) =>
        v <= int.MaxValue ? (int)v : throw new IrException($"{v} {what} exceed a 32-bit GEMM dimension");
}
