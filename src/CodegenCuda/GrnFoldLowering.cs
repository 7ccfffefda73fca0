using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// CUDA lowering of <see cref="GemmGrnFold"/>: GRN's apply pass folded into the next GEMM (inference), so the first
/// GEMM's output u is read once by GRN and once by the second GEMM. Steps: GEMM 1 writes u into scratch; GRN's stats
/// (bias and activation in place on u) and scale give the factor f[n, k] = γ·N + 1 (<see cref="NormLowering.Grn"/>
/// without its apply); the fold kernel (<see cref="GrnFoldModel"/>) writes per sample W2·diag(f_n) into scratch; GEMM 2
/// is one strided-batched call over the samples with a per-sample weight (stride O·K) writing the output in its final
/// layout; then the second GEMM's own epilogue (the folded bias b2' = b2 + W2·β, its activation, its residual).
/// In float32, bf16 or fp16 storage (u and the scaled weights in the storage type; sums and factors float32).
/// </summary>
internal static class GrnFoldLowering
{
    /// <summary>Adds the node's kernels and steps.</summary>
    public static void Lower(NodeLowering ctx)
    {
        var storage = LoweringSupport.Storage(ctx);
        var op = (GemmGrnFold)ctx.Node.Op;
        var s = op.Slots;
        int threads = LoweringSupport.Tunables(ctx)["block"];
        var (x, w1, w2, y) = (ctx.InType(0).Shape, ctx.InType(1).Shape, ctx.InType(s.W2).Shape, ctx.OutType(0).Shape);
        int batch = x[0], k = w1[0], o = w2[0];
        long positions = op.InNchw ? (long)x[2] * x[3] : (long)x[1] * x[2];
        if (y.Elements == 0 || batch * positions * k == 0) return;
        if (w1[1] == 0 || positions > int.MaxValue)
        {
            throw new IrException($"{ctx.Node.Describe()}: zero input features or {positions} positions per sample "
                + "are not supported");
        }
        int size = storage.Size();
        var u = ctx.Scratch("grn_u", (batch * positions * k * size + 3) / 4);
        ctx.Gemm(GemmMapping.Map(op.First, x, w1, ctx.In(0), ctx.In(1), u) with { Storage = storage });
        var factor = NormLowering.Grn(ctx, threads, new GrnLayout(batch, positions, k, false), op.GrnEps, null,
            Activation.Word(op.Act), op.HasBias ? ctx.In(s.Bias) : null, ctx.In(s.Gamma), null, null, storage, u,
            apply: false)!;
        long weights = (long)batch * o * k;
        var w2s = ctx.Scratch("grn_fold_w2", (weights * size + 3) / 4);
        var name = ctx.AddKernel($"grn_fold_n{batch}o{o}k{k}" + LoweringSupport.Suffix(storage), "grn_fold",
            "grn_fold.cu.sbn", n => new GrnFoldModel(n, threads, batch, o, k) { Storage = storage });
        ctx.Launch(name, LoweringSupport.Grid(ctx, weights, threads), new Dim3(threads), 0,
            [w2s, ctx.In(s.W2), factor]);
        ctx.Gemm(Second(op.OutNchw, batch, (int)positions, o, k, u, w2s, ctx.Out()) with { Storage = storage });
        GemmLowering.Epilogue(ctx, threads, storage, ctx.In(s.Bias2), Activation.Word(op.Act2),
            op.HasResidual ? ctx.In(s.Residual) : null, o, y.Elements, op.OutNchw ? positions : 0);
    }

    /// <summary>
    /// The second GEMM, per sample b: rows out, Y_bᵀ (O×P) = W2s_b·U_bᵀ; NCHW out, Y_b (P×O column-major) =
    /// U_b·W2s_bᵀ; U_b is P×K row-major, W2s_b O×K row-major at stride O·K.
    /// </summary>
    public static GemmCall Second(bool outNchw, int batch, int positions, int o, int k, ArgRef u, ArgRef w2s,
        ArgRef y)
    {
        long us = (long)positions * k, ws = (long)o * k, ys = (long)positions * o;
        int ldk = Math.Max(1, k);
        return outNchw
            ? new GemmCall("", TransA: true, TransB: false, M: positions, N: o, K: k, A: u, Lda: ldk, StrideA: us,
                B: w2s, Ldb: ldk, StrideB: ws, C: y, Ldc: Math.Max(1, positions), StrideC: ys, Batch: batch,
                Alpha: 1f, Beta: 0f)
            : new GemmCall("", TransA: true, TransB: false, M: o, N: positions, K: k, A: w2s, Lda: ldk, StrideA: ws,
                B: u, Ldb: ldk, StrideB: us, C: y, Ldc: Math.Max(1, o), StrideC: ys, Batch: batch, Alpha: 1f, Beta: 0f);
    }
}
