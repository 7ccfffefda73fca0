using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// CUDA lowering of linear, y = x·Wᵀ + b over the last axis, as training graphs keep it (the inference pipeline makes
/// every linear a fused gemm): x (rows×K, rows the product of the leading axes) is the column-major K×rows matrix,
/// so yᵀ (O×rows, y as stored) = W·xᵀ is one <see cref="GemmCall"/> with A = W transposed (lda K), B = x (ldb K),
/// C = y (ldc O). The bias, when present, is added afterwards in place by one pointwise kernel (pointwise.cu.sbn,
/// channel = the innermost axis): one thread per element, no atomics. An empty output needs nothing; zero input
/// features are refused, as gemm refuses them. Tunables: block, the threads per block of the bias kernel; gemm_api
/// (<see cref="GemmApi"/>: cuBLAS, cuBLASLt, or cuBLASLt with its bias epilogue instead of the bias kernel). In
/// float32, bf16 or fp16 (issue 22: the GEMM sums in float32 and rounds y once, the bias kernel rounds it again).
/// </summary>
internal static class LinearLowering
{
    /// <summary>Adds the node's GEMM call and its bias kernel.</summary>
    public static void Lower(NodeLowering ctx)
    {
        var storage = LoweringSupport.Storage(ctx);
        var (threads, api) = GemmApi.Tunables(ctx);
        var (x, w, y) = (ctx.InType(0).Shape, ctx.InType(1).Shape, ctx.OutType(0).Shape);
        if (y.Elements == 0) return;
        int o = w[0], k = w[1];
        if (k == 0)
        {
            throw new IrException($"{ctx.Node.Describe()}: a linear layer over zero input features is not supported");
        }
        long rows = x.Elements / k;
        if (rows > int.MaxValue)
        {
            throw new IrException($"{ctx.Node.Describe()}: {rows} rows exceed a 32-bit GEMM dimension");
        }
        var call = new GemmCall("", TransA: true, TransB: false, M: o, N: (int)rows, K: k, A: ctx.In(1), Lda: k,
            StrideA: 0, B: ctx.In(0), Ldb: k, StrideB: 0, C: ctx.Out(), Ldc: o, StrideC: 0, Batch: 1, Alpha: 1f,
            Beta: 0f) { Storage = storage };
        // the output channels are the rows of C: cuBLASLt's bias epilogue fits (gemm_api 2)
        var (chosen, fused) = GemmApi.Choose(call, api, ctx.Node.Inputs.Count < 3 ? null : ctx.In(2), "none",
            channelsOnRows: true);
        ctx.Gemm(chosen);
        if (fused || ctx.Node.Inputs.Count < 3) return;
        long total = y.Elements;
        var sig = new KernelSignature().Out("y", ctx.Out(), storage).In("pre_bias", ctx.In(2), storage);
        var name = ctx.AddKernel($"linear_bias_{total}_o{o}{LoweringSupport.Suffix(storage)}", "linear_bias",
            "pointwise.cu.sbn", n => new PointwiseModel(n, "linear_bias", threads, total, "none", inPlace: true,
                hasPreBias: true, hasAffine: false, hasResidual: false, o, 1, sig) { Storage = storage });
        ctx.Launch(name, LoweringSupport.Grid(ctx, total, threads), new Dim3(threads), 0, sig.Args);
    }
}
