using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// CUDA lowering of layer_norm (channels-last: one warp per row; channels-first: positions across threads, channels
/// across warps) and grn (three entries of <see cref="GrnModel"/>, shared with the GEMM epilogue), in float32, bf16 or
/// fp16 storage (issue 22; the statistics are float32 in every case).
/// </summary>
internal static class NormLowering
{
    /// <summary>Adds the node's kernels and steps.</summary>
    public static void Lower(NodeLowering ctx)
    {
        var storage = LoweringSupport.Storage(ctx);
        switch (ctx.Node.Op)
        {
            case LayerNorm ln:
                LayerNormKernel(ctx, ln, storage);
                break;
            case Grn grn:
            {
                var x = ctx.InType(0).Shape;
                var beta = ctx.Node.Inputs.Count == 3 ? ctx.In(2) : null;
                Grn(ctx, LoweringSupport.Tunables(ctx)["block"], new GrnLayout(x[0], (long)x[1] * x[2], x[3], false),
                    grn.Eps, ctx.In(0), "none", null, ctx.In(1), beta, null, storage);
                break;
            }
            default:
                throw new IrException($"{ctx.Node.Describe()}: not a norm op");
        }
    }

    /// <summary>Position blocks below which a channels-first LayerNorm defaults to 1024 threads (more warps per
    /// position, so each thread sums fewer channels): about one block per SM of a large GPU.</summary>
    public const long FewBlocks = 132;

    private static void LayerNormKernel(NodeLowering ctx, LayerNorm ln, DType storage)
    {
        var x = ctx.InType(0).Shape;
        int axis = ln.Axis(x.Rank), c = x[axis];
        long inner = x.Strides()[axis], outer = x.Elements == 0 ? 0 : x.Elements / ((long)c * inner);
        bool wide = inner > 1 && (outer * inner + 31) / 32 < FewBlocks && c >= 64;
        int threads = LoweringSupport.Tunables(ctx, new Dictionary<string, int> { ["block"] = wide ? 1024
            : LoweringSupport.DefaultBlock })["block"];
        if (x.Elements == 0) return;
        var args = new[] { ctx.Out(), ctx.In(0), ctx.In(1), ctx.In(2) };
        string suffix = LoweringSupport.Suffix(storage);
        if (inner == 1)
        {
            // the normalised axis is the innermost: rows of C whatever the declared layout
            LayerNormLastModel Model(string n) => new(n, threads, outer, c, ln.Eps) { Storage = storage };
            var name = ctx.AddKernel($"layer_norm_last_c{c}_r{outer}{suffix}", "layer_norm", "layer_norm_last.cu.sbn",
                n => Model(n));
            ctx.Launch(name, LoweringSupport.Grid(ctx, Model(name).Blocks, 1), new Dim3(threads), 0, args);
        }
        else
        {
            LayerNormFirstModel Model(string n) => new(n, threads, outer, c, inner, ln.Eps) { Storage = storage };
            var name = ctx.AddKernel($"layer_norm_first_c{c}_p{inner}_n{outer}{suffix}", "layer_norm",
                "layer_norm_first.cu.sbn", n => Model(n));
            ctx.Launch(name, LoweringSupport.Grid(ctx, Model(name).Blocks, 1), new Dim3(threads), 0, args);
        }
    }

    /// <summary>
    /// Adds the three GRN launches. <paramref name="x"/> null means in place on <paramref name="y"/> (default: the
    /// node's output; a GEMM's result, to which <paramref name="bias"/> and <paramref name="act"/> are applied first).
    /// The tensors are of <paramref name="storage"/>; the sums and factors in scratch are float32. Without
    /// <paramref name="apply"/> only stats and scale run (<see cref="GrnFoldLowering"/> folds the apply into the next
    /// GEMM). Returns the factor scratch (N·C floats), null when there are no elements.
    /// </summary>
    public static ArgRef? Grn(NodeLowering ctx, int threads, GrnLayout layout, double eps, ArgRef? x, string act,
        ArgRef? bias, ArgRef gamma, ArgRef? beta, ArgRef? residual, DType storage = DType.F32, ArgRef? y = null,
        bool apply = true)
    {
        var (batch, positions, channels, channelsFirst) = layout;
        long total = batch * positions * channels;
        if (total == 0) return null;
        var output = y ?? ctx.Out();
        if (x is not null && (bias is not null || act != "none"))
        {
            throw new IrException($"{ctx.Node.Describe()}: bias and activation are applied only in place");
        }
        string kind = x is null ? "gemm_grn" : "grn";
        GrnModel Model(string n, KernelSignature st, KernelSignature sc, KernelSignature ap) =>
            new(n, kind, threads, batch, positions, channels, channelsFirst, eps, x is null, act, bias is not null,
                beta is not null, residual is not null, st, sc, ap) { Storage = storage };
        var sums = ctx.Scratch("grn_sums", Model("probe", new(), new(), new()).PartialFloats);
        var factor = ctx.Scratch("grn_factor", (long)batch * channels);
        var stats = new KernelSignature().Out("sumsq", sums);
        if (x is null) stats.Out("y", output, storage);
        else stats.In("x", x, storage);
        if (bias is not null) stats.In("bias", bias, storage);
        var scale = new KernelSignature().Out("factor", factor).In("sumsq", sums).In("gamma", gamma, storage);
        var applied = new KernelSignature().Out("y", output, storage);
        if (x is not null) applied.In("x", x, storage);
        applied.In("factor", factor);
        if (beta is not null) applied.In("beta", beta, storage);
        if (residual is not null) applied.In("res", residual, storage);
        string prefix = $"{kind}_{(channelsFirst ? "nchw" : "nhwc")}_c{channels}p{positions}n{batch}"
            + LoweringSupport.Suffix(storage);
        var name = ctx.AddKernel(prefix, kind, "grn.cu.sbn", n => Model(n, stats, scale, applied), GrnModel.Entries);
        var model = Model(name, stats, scale, applied);
        var entries = GrnModel.Entries(name);
        var block = new Dim3(threads);
        if (channelsFirst)
        {
            ctx.Launch(name, LoweringSupport.Grid(ctx, (long)batch * channels, threads / 32), block, 0, stats.Args,
                entries[0]);
        }
        else
        {
            ctx.Launch(name, new Dim3(model.ChannelBlocks, model.Splits, batch), block, 0, stats.Args, entries[0]);
        }
        ctx.Launch(name, new Dim3(batch), block, 0, scale.Args, entries[1]);
        if (apply) ctx.Launch(name, LoweringSupport.Grid(ctx, total, threads), block, 0, applied.Args, entries[2]);
        return factor;
    }
}

/// <summary>The shape GRN sees: samples, positions per sample, channels, and which of the two is innermost.</summary>
internal readonly record struct GrnLayout(int Batch, long Positions, int Channels, bool ChannelsFirst);
