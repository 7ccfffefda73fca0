using System.Globalization;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// CUDA lowering of grad nodes (the backward of an SW layer): the shift-add's input gradient as the adjoint gather
/// (<see cref="ShiftAddGradModel"/>), and a depthwise conv2d's input gradient (gather over the group's output channels
/// and taps, <see cref="DwConvGradInputModel"/>) and weight gradient (block per output channel, shared-memory tree,
/// <see cref="DwConvGradWeightModel"/>); every other conv2d grad (dense, grouped, strided, bias) and linear's grad
/// in <see cref="ConvGradLowering"/>; the norms' in <see cref="NormGradLowering"/>; the element-wise, mean, reshape,
/// cross_entropy and drop_path grads in <see cref="ElementGradLowering"/>; the channel_select, concat and permute
/// grads in <see cref="LayoutLowering"/>. No atomics anywhere: every sum runs in a fixed order. Every grad but
/// linear's runs on float32, bf16 or fp16 storage (issue 22: 16-bit loads and stores, float32 sums, one rounding per
/// stored value). Other grads are refused naming the node. Tunables: block (threads of the gather kernels), wblock
/// (threads of the weight-gradient blocks).
/// </summary>
internal static class GradLowering
{
    /// <summary>Adds the node's kernels and steps.</summary>
    public static void Lower(NodeLowering ctx)
    {
        var op = (Grad)ctx.Node.Op;
        switch (op.Of)
        {
            case ShiftAdd s:
                ShiftAdd(ctx, op, s);
                break;
            case BatchNorm or LayerNorm or Grn:
                NormGradLowering.Lower(ctx, op);
                break;
            case Conv2d c when IsDepthwise(ctx, c) && !op.Wrt.Contains(2):
                DepthwiseConv(ctx, op, c);
                break;
            case Conv2d c:
                ConvGradLowering.Conv(ctx, op, c);
                break;
            case Linear:
                ConvGradLowering.Linear(ctx, op);
                break;
            case Cast:
                CastLowering.LowerGrad(ctx, op);
                break;
            case var of when ElementGradLowering.Handles(of):
                ElementGradLowering.Lower(ctx, op);
                break;
            case var of when LayoutLowering.Handles(of):
                LayoutLowering.LowerGrad(ctx, op);
                break;
            default:
                throw Unsupported(ctx, op, "the CUDA target lowers the grads of shift_add, conv2d, linear, the norms, "
                    + "the element-wise, mean, reshape, cross_entropy and drop_path ops and channel_select, concat and "
                    + "permute");
        }
    }

    private static IrException Unsupported(NodeLowering ctx, Grad op, string why) =>
        new($"{ctx.Node.Describe()}: no CUDA lowering for grad of {op.Of.Name}: {why}; run the backward graph on the "
            + $"CPU target");

    private static bool IsDepthwise(NodeLowering ctx, Conv2d c)
    {
        var w = ctx.InType(1).Shape;
        return w[1] == 1 && c.Groups == ctx.InType(0).Shape[1] && c.Stride[0] == 1 && c.Stride[1] == 1;
    }

    private static void RequireDy(NodeLowering ctx, Grad op)
    {
        if (op.OutGrads.Count == 0)
        {
            throw Unsupported(ctx, op, "dy=[] (seeding from a one-element output) has no CUDA kernel");
        }
    }

    private static void ShiftAdd(NodeLowering ctx, Grad op, ShiftAdd s)
    {
        // float32, or bf16 / fp16 storage (issue 22): 16-bit loads, float32 sums, one rounding at the store
        var storage = LoweringSupport.Storage(ctx);
        RequireDy(ctx, op);
        var t = LoweringSupport.Tunables(ctx);
        int threads = t["block"];
        var x = ctx.InType(0).Shape;
        if (ctx.OutType(0).Shape.Elements == 0) return;
        // grad inputs: x, y_h, y_v, y_i, then the gradients of the outputs in dy (in dy's order)
        var sig = new KernelSignature().Out("dx", ctx.Out(0), storage);
        var names = new[] { "gh", "gv", "gi" };
        foreach (int path in op.OutGrads.Order())
        {
            sig.In(names[path], ctx.In(4 + op.OutGrads.ToList().IndexOf(path)), storage);
        }
        var dy = op.OutGrads.ToArray();
        string paths = string.Concat(op.OutGrads.Order().Select(p => "hvi"[p]));
        string prefix = string.Create(CultureInfo.InvariantCulture,
            $"grad_shift_add_b{s.Big}k{s.Small}g{s.NRep}_c{x[1]}h{x[2]}w{x[3]}_{paths}")
            + LoweringSupport.Suffix(storage);
        ShiftAddGradModel Model(string n) => new(n, threads, s, x, dy, sig) { Storage = storage };
        var name = ctx.AddKernel(prefix, "grad_shift_add", "grad_shift_add.cu.sbn", n => Model(n));
        ctx.Launch(name, LoweringSupport.Grid(ctx, Model(name).Work, threads), new Dim3(threads), 0, sig.Args);
    }

    private static void DepthwiseConv(NodeLowering ctx, Grad op, Conv2d c)
    {
        // float32, or bf16 / fp16 storage (issue 22): 16-bit loads, float32 sums, one rounding per output
        var storage = LoweringSupport.Storage(ctx);
        RequireDy(ctx, op);
        var x = ctx.InType(0).Shape;
        var w = ctx.InType(1).Shape;
        int taps = w[2] * w[3];
        if (taps > DwConvGradWeightModel.MaxTaps && op.Wrt.Contains(1))
        {
            throw Unsupported(ctx, op,
                $"the weight gradient keeps its {taps} taps in registers, at most {DwConvGradWeightModel.MaxTaps}");
        }
        var t = LoweringSupport.Tunables(ctx, new Dictionary<string, int>
        {
            ["block"] = LoweringSupport.DefaultBlock,
            ["wblock"] = DwConvGradWeightModel.DefaultThreads(Math.Min(taps, DwConvGradWeightModel.MaxTaps)),
        });
        int threads = t["block"], wthreads = t["wblock"];
        if (wthreads < 32 || wthreads > 1024 || (wthreads & (wthreads - 1)) != 0 ||
            DwConvGradWeightModel.SharedBytes(taps, wthreads) > DwConvGradWeightModel.MaxSharedBytes)
        {
            throw new IrException($"{ctx.Node.Describe()}: tunable wblock = {wthreads} must be a power of two in [32, "
                + $"1024] " +
                $"whose reduction of {taps} taps fits {DwConvGradWeightModel.MaxSharedBytes} bytes of shared memory");
        }
        // grad inputs: x, w[, bias], y, gy
        int gy = op.ForwardInputs(ctx.Node.Inputs.Count) + 1;
        string dil = c.Dilation[0] * c.Dilation[1] > 1 ? string.Create(CultureInfo.InvariantCulture,
            $"d{c.Dilation[0]}x{c.Dilation[1]}") : "";
        string shape = string.Create(CultureInfo.InvariantCulture,
            $"c{x[1]}h{x[2]}w{x[3]}_o{w[0]}k{w[2]}x{w[3]}p{c.Padding[0]}x{c.Padding[1]}") + dil
            + LoweringSupport.Suffix(storage);
        for (int j = 0; j < op.Wrt.Count; j++)
        {
            if (ctx.OutType(j).Shape.Elements == 0) continue;
            if (op.Wrt[j] == 0)
            {
                DwConvGradInputModel Model(string n) => new(n, threads, c, x, w) { Storage = storage };
                var name = ctx.AddKernel("grad_conv2d_dw_input_" + shape, "grad_conv2d_dw_input",
                    "grad_conv2d_dw_input.cu.sbn", n => Model(n));
                ctx.Launch(name, LoweringSupport.Grid(ctx, Model(name).Work, threads), new Dim3(threads), 0,
                    [ctx.Out(j), ctx.In(1), ctx.In(gy)]);
            }
            else
            {
                DwConvGradWeightModel Model(string n) => new(n, wthreads, c, x, w) { Storage = storage };
                var name = ctx.AddKernel("grad_conv2d_dw_weight_" + shape, "grad_conv2d_dw_weight",
                    "grad_conv2d_dw_weight.cu.sbn", n => Model(n));
                ctx.Launch(name, new Dim3(w[0]), new Dim3(wthreads), 0, [ctx.Out(j), ctx.In(0), ctx.In(gy)]);
            }
        }
    }
}
