using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// CUDA lowering of conv2d (dense, grouped and depthwise, any stride, padding and dilation): one direct-convolution
/// kernel (<see cref="ConvModel"/>). Tunables: block (threads per block) and channels (output channels per thread,
/// 1, 2, 4 or 8, dividing the output channels of a group).
/// </summary>
internal static class ConvLowering
{
    /// <summary>Adds the node's kernels and steps.</summary>
    public static void Lower(NodeLowering ctx)
    {
        LoweringSupport.RequireF32(ctx);
        var op = (Conv2d)ctx.Node.Op;
        var (x, w) = (ctx.InType(0).Shape, ctx.InType(1).Shape);
        bool hasBias = ctx.Node.Inputs.Count == 3;
        var t = LoweringSupport.Tunables(ctx, new Dictionary<string, int>
        {
            ["block"] = LoweringSupport.DefaultBlock,
            ["channels"] = DefaultChannels(w, op.Groups),
        });
        int threads = t["block"], channels = t["channels"];
        int perGroup = w[0] / op.Groups;
        if (channels is not (1 or 2 or 4 or 8) || perGroup % channels != 0)
        {
            throw new IrException($"{ctx.Node.Describe()}: tunable channels = {channels} must be 1, 2, 4 or 8 and divide " +
                $"the {perGroup} output channels of a group");
        }
        if (ctx.OutType(0).Shape.Elements == 0) return;
        string prefix = $"conv2d_c{x[1]}h{x[2]}w{x[3]}_o{w[0]}k{w[2]}x{w[3]}s{op.Stride[0]}" + (op.Groups > 1 ? $"g{op.Groups}" : "");
        ConvModel Model(string n) => new(n, threads, op, x, w, hasBias, channels);
        var name = ctx.AddKernel(prefix, "conv2d", "conv2d.cu.sbn", n => Model(n));
        var args = new List<ArgRef> { ctx.Out(), ctx.In(0), ctx.In(1) };
        if (hasBias) args.Add(ctx.In(2));
        ctx.Launch(name, LoweringSupport.Grid(ctx, Model(name).Work, threads), new Dim3(threads), 0, args);
    }

    /// <summary>4 (or 2) output channels per thread when each output reads several input channels, else 1.</summary>
    public static int DefaultChannels(Shape w, int groups)
    {
        int perGroup = w[0] / groups;
        if (w[1] == 1) return 1;
        return perGroup % 4 == 0 ? 4 : perGroup % 2 == 0 ? 2 : 1;
    }
}
