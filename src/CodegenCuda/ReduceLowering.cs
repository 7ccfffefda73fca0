using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// CUDA lowering of mean over trailing contiguous axes (global average pooling is axes [2,3] of NCHW), in float32,
/// bf16 or fp16 storage (16-bit: sums in float32, one rounding per output).
/// </summary>
internal static class ReduceLowering
{
    /// <summary>Adds the node's kernels and steps.</summary>
    public static void Lower(NodeLowering ctx)
    {
        var storage = LoweringSupport.Storage(ctx);
        var m = (Mean)ctx.Node.Op;
        var x = ctx.InType(0).Shape;
        var (rows, count) = Split(x, m.Axes) ?? throw new IrException(
            $"{ctx.Node.Describe()}: the CUDA target averages only over trailing axes (e.g. [2,3] of NCHW), not over "
                + $"axes {m.Axes} of {x}");
        int threads = LoweringSupport.Tunables(ctx)["block"];
        if (rows == 0) return;
        if (count == 0) throw new IrException($"{ctx.Node.Describe()}: cannot average over an empty axis of {x}");
        MeanModel Model(string n) => new(n, threads, rows, count) { Storage = storage };
        string prefix = $"mean_{rows}x{count}{LoweringSupport.Suffix(storage)}";
        var name = ctx.AddKernel(prefix, "mean", "mean.cu.sbn", n => Model(n));
        ctx.Launch(name, LoweringSupport.Grid(ctx, Model(name).Blocks, 1), new Dim3(threads), 0,
            [ctx.Out(), ctx.In(0)]);
    }

    /// <summary>
    /// (outputs, values per output) when the values averaged into each output are contiguous: every axis after the
    /// first of <paramref name="axes"/> is averaged or has size 1. Null otherwise.
    /// </summary>
    public static (long Rows, long Count)? Split(Shape x, IReadOnlyList<int> axes)
    {
        var set = axes.Select(x.Axis).ToHashSet();
        if (set.Count == 0) return null;
        int first = set.Min();
        long count = 1, rows = 1;
        for (int d = 0; d < x.Rank; d++)
        {
            if (set.Contains(d)) count *= x[d];
            else if (d > first && x[d] != 1) return null;
            else rows *= x[d];
        }
        return (rows, count);
    }
}
