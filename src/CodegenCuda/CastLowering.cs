using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// CUDA lowering of cast between float32 and a 16-bit storage type (cast16.cu.sbn, one thread per element): float32
/// to bf16/fp16 rounds to nearest even, 16-bit to float32 widens exactly. The precision passes put these at the graph's
/// edges and, in mixed-precision training, after each float32 master weight; the gradient of a cast is the cast of
/// its output's gradient the other way. A cast to the type it already has is an alias; other pairs (f64, 16-bit to
/// 16-bit) are refused.
/// </summary>
internal static class CastLowering
{
    /// <summary>Adds the node's kernel and launch.</summary>
    public static void Lower(NodeLowering ctx)
    {
        if (ctx.InType(0).DType == ctx.OutType(0).DType)
        {
            ctx.Alias();
            return;
        }
        Add(ctx, ctx.InType(0).DType, ctx.OutType(0).DType, ctx.Out(), ctx.In(0));
    }

    /// <summary>The grad of a cast (inputs x, y, dy): dy cast to x's type.</summary>
    public static void LowerGrad(NodeLowering ctx, Grad op)
    {
        if (op.OutGrads.Count != 1 || op.Wrt.Count != 1)
        {
            throw new IrException($"{ctx.Node.Describe()}: the grad of a cast takes its output's gradient");
        }
        Add(ctx, ctx.InType(2).DType, ctx.OutType(0).DType, ctx.Out(), ctx.In(2));
    }

    private static void Add(NodeLowering ctx, DType from, DType to, ArgRef y, ArgRef x)
    {
        bool widen = to == DType.F32;
        var half = widen ? from : to;
        if ((widen ? to : from) != DType.F32 || half is not (DType.BF16 or DType.F16))
        {
            throw new IrException($"{ctx.Node.Describe()}: the CUDA target casts between f32 and bf16 or f16 only, "
                + $"not {from.Name()} to {to.Name()}");
        }
        long n = ctx.OutType(0).Shape.Elements;
        if (n == 0) return;
        var model = new Types16.CastModel(Types16.Name(half), n, widen, false, Types16.Prelude);
        string prefix = $"cast_{(widen ? "widen" : "round")}_{model.Type}_n{n}";
        var name = ctx.AddKernel(prefix, model.Kind, "cast16.cu.sbn", k => model with { Name = k });
        ctx.Launch(name, Types16.Grid(n), new Dim3(Types16.Threads), 0, [y, x]);
    }
}
