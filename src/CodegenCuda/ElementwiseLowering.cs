using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// CUDA lowering of element-wise nodes: unary activations and scale_bias as one pointwise kernel, binary ops with
/// broadcasting as one kernel whose index arithmetic is collapsed in <see cref="BinaryModel"/>.
/// </summary>
internal static class ElementwiseLowering
{
    /// <summary>Adds the node's kernels and steps.</summary>
    public static void Lower(NodeLowering ctx)
    {
        var storage = LoweringSupport.Storage(ctx);
        int threads = LoweringSupport.Tunables(ctx)["block"];
        switch (ctx.Node.Op)
        {
            case Unary u:
                Pointwise(ctx, threads, Activation.Word(u.Kind), null, storage);
                break;
            case ScaleBias sb:
                Pointwise(ctx, threads, "none", sb, storage);
                break;
            case Binary b:
                BinaryKernel(ctx, threads, b, storage);
                break;
            default:
                throw new IrException($"{ctx.Node.Describe()}: not an element-wise op");
        }
    }

    private static void Pointwise(NodeLowering ctx, int threads, string act, ScaleBias? sb, DType storage)
    {
        var x = ctx.InType(0).Shape;
        long total = x.Elements;
        if (total == 0) return;
        var sig = new KernelSignature().Out("y", ctx.Out(), storage).In("x", ctx.In(0), storage);
        int channels = 1;
        long inner = 1;
        if (sb is not null)
        {
            int axis = x.Axis(sb.Axis);
            channels = x[axis];
            inner = x.Strides()[axis];
            sig.In("scale", ctx.In(1), storage).In("shift", ctx.In(2), storage);
        }
        string kind = sb is null ? act : "scale_bias";
        string prefix = $"{kind}_{total}" + (sb is null ? "" : $"_c{channels}i{inner}")
            + LoweringSupport.Suffix(storage);
        var name = ctx.AddKernel(prefix, "pointwise", "pointwise.cu.sbn", n =>
            new PointwiseModel(n, "pointwise", threads, total, act, inPlace: false, hasPreBias: false,
                hasAffine: sb is not null, hasResidual: false, channels, inner, sig) { Storage = storage });
        ctx.Launch(name, LoweringSupport.Grid(ctx, total, threads), new Dim3(threads), 0, sig.Args);
    }

    private static void BinaryKernel(NodeLowering ctx, int threads, Binary b, DType storage)
    {
        var outShape = ctx.OutType(0).Shape;
        long total = outShape.Elements;
        if (total == 0) return;
        string op = b.Kind == BinaryKind.Add ? "+" : "*";
        string word = b.Kind == BinaryKind.Add ? "add" : "mul";
        var (sa, sb) = (ctx.InType(0).Shape, ctx.InType(1).Shape);
        string suffix = LoweringSupport.Suffix(storage);
        var name = ctx.AddKernel($"{word}_{LoweringSupport.Tag(sa)}_{LoweringSupport.Tag(sb)}{suffix}", "binary",
            "binary.cu.sbn", n => new BinaryModel(n, threads, op, sa, sb, outShape) { Storage = storage });
        ctx.Launch(name, LoweringSupport.Grid(ctx, total, threads), new Dim3(threads), 0,
            [ctx.Out(), ctx.In(0), ctx.In(1)]);
    }
}
