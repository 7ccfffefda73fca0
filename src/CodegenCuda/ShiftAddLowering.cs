using System.Globalization;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// CUDA lowering of the unfused shift_add that training graphs keep (the inference pipeline folds it into
/// fused_shiftwise): one gather kernel (<see cref="ShiftAddModel"/>, shift_add.cu.sbn) writes the three outputs h, v
/// and i, one thread per output position, no atomics. Its backward is <c>GradLowering</c>'s grad_shift_add, the
/// adjoint gather. Tunable: block, the threads per block. In bf16 / fp16 (issue 22) the same kernel loads 16-bit values
/// and stores 16-bit sums (float32 arithmetic, one rounding per output); its loads stay single: a thread reads
/// elements one shift apart along a row or column, not neighbours (the neighbours are the next threads').
/// </summary>
internal static class ShiftAddLowering
{
    /// <summary>Adds the node's kernel and its launch.</summary>
    public static void Lower(NodeLowering ctx)
    {
        var storage = LoweringSupport.Storage(ctx);
        var op = (ShiftAdd)ctx.Node.Op;
        int threads = LoweringSupport.Tunables(ctx)["block"];
        var x = ctx.InType(0).Shape;
        if (ctx.OutType(0).Shape.Elements == 0) return;
        var sig = new KernelSignature().Out("yh", ctx.Out(0), storage).Out("yv", ctx.Out(1), storage)
            .Out("yi", ctx.Out(2), storage).In("x", ctx.In(0), storage);
        string prefix = string.Create(CultureInfo.InvariantCulture,
            $"shift_add_b{op.Big}k{op.Small}g{op.NRep}_n{x[0]}c{x[1]}h{x[2]}w{x[3]}")
            + LoweringSupport.Suffix(storage);
        ShiftAddModel Model(string n) => new(n, threads, op, x, sig) { Storage = storage };
        var name = ctx.AddKernel(prefix, "shift_add", "shift_add.cu.sbn", n => Model(n));
        ctx.Launch(name, LoweringSupport.Grid(ctx, Model(name).Work, threads), new Dim3(threads), 0, sig.Args);
    }
}
