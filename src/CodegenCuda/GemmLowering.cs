using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// CUDA lowering of gemm: the product is one cuBLAS-convention <see cref="GemmCall"/> (<see cref="GemmMapping"/>)
/// writing the node's output in its final layout; what follows runs in place on that output. Without GRN, bias,
/// activation and residual are one pointwise kernel (none when there is nothing to do). With GRN, the three GRN
/// entries: stats (bias and activation applied in place on the way), per-sample scale, apply (with β and the
/// residual; <see cref="GrnFoldLowering"/> folds the apply into the consuming GEMM where the fold-grn-apply pass
/// paired them). Tunable: block, the threads per block of the epilogue kernels. In float32, bf16 or fp16 (issue 22: the
/// GEMM sums in float32 and rounds its output once; the epilogue reads it, computes in float32 and rounds again).
/// </summary>
internal static class GemmLowering
{
    /// <summary>Adds the node's kernels and steps.</summary>
    public static void Lower(NodeLowering ctx)
    {
        var storage = LoweringSupport.Storage(ctx);
        var op = (Gemm)ctx.Node.Op;
        var (threads, api) = GemmApi.Tunables(ctx); // gemm_api: cuBLAS or cuBLASLt (GemmApi)
        var (x, w, y) = (ctx.InType(0).Shape, ctx.InType(1).Shape, ctx.OutType(0).Shape);
        if (y.Elements == 0) return;
        if (w[1] == 0)
        {
            throw new IrException($"{ctx.Node.Describe()}: a GEMM over zero input features is not supported");
        }
        var call = GemmMapping.Map(op, x, w, ctx.In(0), ctx.In(1), ctx.Out()) with { Storage = storage };
        if (GemmApi.Add(ctx, call, api)) return; // cuBLASLt's epilogue is the whole epilogue (gemm_api 2)
        var s = op.Slots;
        ArgRef? bias = op.HasBias ? ctx.In(s.Bias) : null;
        ArgRef? residual = op.HasResidual ? ctx.In(s.Residual) : null;
        string act = Activation.Word(op.Act);
        int o = w[0];
        long total = y.Elements;
        // the channel axis of the output: innermost for rows out, planes of H·W for NCHW out
        long inner = op.OutNchw ? (long)y[2] * y[3] : 1;
        if (op.HasGrn)
        {
            int batch = y[0];
            long positions = total / ((long)batch * o);
            NormLowering.Grn(ctx, threads, new GrnLayout(batch, positions, o, op.OutNchw), op.GrnEps, null, act, bias,
                ctx.In(s.Gamma), ctx.In(s.Beta), residual, storage);
            return;
        }
        Epilogue(ctx, threads, storage, bias, act, residual, o, total, op.OutNchw ? inner : 0);
    }

    /// <summary>
    /// The pointwise epilogue in place on the node's output of <paramref name="total"/> elements and
    /// <paramref name="o"/> channels: bias, activation, residual (none when there is nothing to do).
    /// <paramref name="planes"/> is the channel plane H·W for an NCHW output, 0 for rows.
    /// </summary>
    internal static void Epilogue(NodeLowering ctx, int threads, DType storage, ArgRef? bias, string act,
        ArgRef? residual, int o, long total, long planes)
    {
        long inner = planes > 0 ? planes : 1;
        if (bias is null && act == "none" && residual is null) return;
        var sig = new KernelSignature().Out("y", ctx.Out(), storage);
        if (bias is not null) sig.In("pre_bias", bias, storage);
        if (residual is not null) sig.In("res", residual, storage);
        string prefix = $"gemm_epilogue_{total}_o{o}" + (planes > 0 ? $"p{inner}" : "")
            + LoweringSupport.Suffix(storage);
        var name = ctx.AddKernel(prefix, "gemm_epilogue", "pointwise.cu.sbn", n =>
            new PointwiseModel(n, "gemm_epilogue", threads, total, act, inPlace: true, hasPreBias: bias is not null,
                hasAffine: false, hasResidual: residual is not null, o, inner, sig) { Storage = storage });
        ctx.Launch(name, LoweringSupport.Grid(ctx, total, threads), new Dim3(threads), 0, sig.Args);
    }
}
