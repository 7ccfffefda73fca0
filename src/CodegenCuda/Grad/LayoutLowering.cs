using System.Globalization;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// CUDA lowering of the layout ops the SW layer and the ConvNeXt block use in the training graph, forward and
/// backward: channel_select (a gather of channels; its gradient sums, per input channel and in a fixed order, the
/// output-gradient channels that picked it, <see cref="ChannelSelectModel"/>), concat (each input copied into its
/// slice of the output; each input's gradient copied out of the output gradient's slice, <see cref="SliceCopyModel"/>)
/// and permute (a tiled batched transpose or a generic gather; its gradient is the inverse permutation of the output
/// gradient, <see cref="PermuteModel"/>). Every kernel writes each element once: no atomics, no sums in an order
/// that varies. Tunable: block. Float32, bf16 or fp16 storage: 16-bit copies move the bits as they are; the
/// channel_select gradient sums in float32 and rounds once.
/// </summary>
internal static class LayoutLowering
{
    /// <summary>Whether <see cref="LowerGrad"/> handles the grad of <paramref name="of"/>.</summary>
    public static bool Handles(Op of) => of is ChannelSelect or Concat or Permute;

    /// <summary>Adds the kernels of a channel_select, concat or permute node.</summary>
    public static void LowerForward(NodeLowering ctx)
    {
        var s = LoweringSupport.Storage(ctx);
        int threads = LoweringSupport.Tunables(ctx)["block"];
        switch (ctx.Node.Op)
        {
            case ChannelSelect c:
                ChannelSelectKernel(ctx, threads, c, ctx.InType(0).Shape, ctx.Out(0), ctx.In(0), false, s);
                break;
            case Concat c:
            {
                var y = ctx.OutType(0).Shape;
                int a = y.Axis(c.Axis);
                int offset = 0;
                for (int i = 0; i < ctx.Node.Inputs.Count; i++)
                {
                    int width = ctx.InType(i).Shape[a];
                    SliceKernel(ctx, threads, y, a, width, offset, true, ctx.Out(0), ctx.In(i), s);
                    offset += width;
                }
                break;
            }
            case Permute p:
                PermuteKernel(ctx, threads, ctx.InType(0).Shape, p.Perm, "permute", ctx.Out(0), ctx.In(0), s);
                break;
            default:
                throw new IrException($"{ctx.Node.Describe()}: not a channel_select, concat or permute");
        }
    }

    /// <summary>Adds the kernels of a grad node whose forward op <see cref="Handles"/>.</summary>
    public static void LowerGrad(NodeLowering ctx, Grad op)
    {
        var s = LoweringSupport.Storage(ctx);
        if (op.OutGrads.Count == 0)
        {
            throw Unsupported(ctx, op, "dy=[] (seeding from a one-element output) has no CUDA kernel");
        }
        int threads = LoweringSupport.Tunables(ctx)["block"];
        // grad inputs: the forward inputs, the forward output, then its gradient (dy=[0])
        int nf = op.ForwardInputs(ctx.Node.Inputs.Count);
        var gy = ctx.In(nf + 1);
        switch (op.Of)
        {
            case ChannelSelect c:
                ChannelSelectKernel(ctx, threads, c, ctx.InType(0).Shape, ctx.Out(0), gy, true, s);
                break;
            case Concat c:
            {
                var y = ctx.InType(nf).Shape;
                int a = y.Axis(c.Axis);
                var offsets = new int[nf];
                for (int i = 1; i < nf; i++) offsets[i] = offsets[i - 1] + ctx.InType(i - 1).Shape[a];
                for (int j = 0; j < op.Wrt.Count; j++)
                {
                    int i = op.Wrt[j];
                    SliceKernel(ctx, threads, y, a, ctx.InType(i).Shape[a], offsets[i], false, ctx.Out(j), gy, s);
                }
                break;
            }
            case Permute p:
            {
                // y = permute(x, perm), so dx = permute(gy, inverse): output axis perm[i] of dx is axis i of gy
                var inverse = new int[p.Perm.Count];
                for (int i = 0; i < inverse.Length; i++) inverse[p.Perm[i]] = i;
                PermuteKernel(ctx, threads, ctx.InType(nf).Shape, inverse, "grad_permute", ctx.Out(0), gy, s);
                break;
            }
            default:
                throw Unsupported(ctx, op, "not a channel_select, concat or permute");
        }
    }

    private static IrException Unsupported(NodeLowering ctx, Grad op, string why) =>
        new($"{ctx.Node.Describe()}: no CUDA lowering for grad of {op.Of.Name}: {why}; run the backward graph on the "
            + "CPU target");

    // x is the forward input's shape; forward: dst = y, src = x; backward: dst = dx, src = gy.
    private static void ChannelSelectKernel(NodeLowering ctx, int threads, ChannelSelect c, Shape x, ArgRef dst,
        ArgRef src, bool grad, DType storage)
    {
        int a = x.Axis(c.Axis);
        long inner = x.Strides()[a];
        long outer = x.Take(a).Aggregate(1L, (p, d) => p * d);
        long written = outer * inner * (grad ? x[a] : c.Indices.Count);
        if (written == 0) return;
        var indices = c.Indices.ToArray();
        if ((grad ? x[a] + 1L + indices.Length : indices.Length) > ChannelSelectModel.MaxTableInts)
        {
            throw new IrException($"{ctx.Node.Describe()}: the CUDA channel_select keeps its index table in constant "
                + $"memory, at most {ChannelSelectModel.MaxTableInts} ints; {indices.Length} picks of {x[a]} "
                + "channels do not fit");
        }
        string kind = grad ? "grad_channel_select" : "channel_select";
        string prefix = string.Create(CultureInfo.InvariantCulture,
            $"{kind}_{outer}x{x[a]}x{inner}_k{indices.Length}{LoweringSupport.Suffix(storage)}");
        ChannelSelectModel Model(string n) =>
            new(n, threads, outer, x[a], indices, inner, grad) { Storage = storage };
        var name = ctx.AddKernel(prefix, kind, "layout_channel_select.cu.sbn", n => Model(n));
        ctx.Launch(name, LoweringSupport.Grid(ctx, written, threads), new Dim3(threads), 0, [dst, src]);
    }

    // The part of `width` along axis `a` at `offset` of the big tensor `whole` (the concat's output or its gradient).
    private static void SliceKernel(NodeLowering ctx, int threads, Shape whole, int a, int width, int offset,
        bool into, ArgRef dst, ArgRef src, DType storage)
    {
        long inner = whole.Strides()[a];
        long outer = whole.Take(a).Aggregate(1L, (p, d) => p * d);
        long part = width * inner;
        if (outer * part == 0) return;
        string kind = into ? "concat" : "grad_concat";
        string prefix = string.Create(CultureInfo.InvariantCulture,
            $"{kind}_{outer}x{width}of{whole[a]}x{inner}_at{offset}{LoweringSupport.Suffix(storage)}");
        SliceCopyModel Model(string n) =>
            new(n, threads, outer, part, whole[a] * inner, offset * inner, into) { Storage = storage };
        var name = ctx.AddKernel(prefix, kind, "layout_slice.cu.sbn", n => Model(n));
        ctx.Launch(name, LoweringSupport.Grid(ctx, outer * part, threads), new Dim3(threads), 0, [dst, src]);
    }

    private static void PermuteKernel(NodeLowering ctx, int threads, Shape x, IReadOnlyList<int> perm, string kind,
        ArgRef dst, ArgRef src, DType storage)
    {
        if (x.Elements == 0) return;
        string prefix = $"{kind}_{LoweringSupport.Tag(x)}_p{string.Concat(perm)}";
        if (perm.Count > 10) prefix = $"{kind}_{LoweringSupport.Tag(x)}";
        prefix += LoweringSupport.Suffix(storage);
        PermuteModel Model(string n) => new(n, kind, threads, x, perm) { Storage = storage };
        var name = ctx.AddKernel(prefix, kind, "layout_permute.cu.sbn", n => Model(n));
        ctx.Launch(name, LoweringSupport.Grid(ctx, Model(name).Blocks, 1), new Dim3(threads), 0, [dst, src]);
    }
}
