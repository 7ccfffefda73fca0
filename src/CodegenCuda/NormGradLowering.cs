using System.Globalization;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// CUDA lowering of the normalisations of a training graph: the training forward of batch_norm (batch statistics and
/// updated running statistics, <see cref="BatchNormTrainModel"/>) and the grads of batch_norm (train mode), layer_norm
/// (either layout, <see cref="LayerNormGradModel"/>) and grn (<see cref="GrnGradModel"/>) for any subset of x, weight
/// and bias, from the gradient of output 0. No atomics: every sum runs in a fixed order. Tunable: block. In bf16 /
/// fp16 (issue 22) the tensors are stored in that type and everything is computed, and kept in scratch, in float32.
/// </summary>
internal static class NormGradLowering
{
    /// <summary>
    /// The training forward of batch_norm: y and the updated running mean and variance. In bf16 / fp16 every tensor,
    /// the running statistics included, is stored in that type (one rounding of a value computed in float32): the
    /// node's tensors share one storage type, and a running statistic is an estimate averaged over steps whose
    /// rounding, 2^-8 relative in bf16, is far below its own sampling noise.
    /// </summary>
    public static void BatchNormTrain(NodeLowering ctx, BatchNorm bn)
    {
        var storage = LoweringSupport.Storage(ctx);
        int threads = LoweringSupport.Tunables(ctx)["block"];
        var (n, c, inner) = Nci(ctx.InType(0).Shape);
        if (c == 0) return;
        var sig = new KernelSignature().Out("y", ctx.Out(0), storage).Out("new_mean", ctx.Out(1), storage)
            .Out("new_var", ctx.Out(2), storage).In("x", ctx.In(0), storage).In("weight", ctx.In(1), storage)
            .In("bias", ctx.In(2), storage).In("running_mean", ctx.In(3), storage)
            .In("running_var", ctx.In(4), storage);
        BatchNormTrainModel Model(string name) => new(name, "batch_norm_train", threads, n, c, inner, bn.Eps,
            bn.Momentum, sig.Declarations) { Storage = storage };
        var k = ctx.AddKernel(Tag($"batch_norm_train_c{c}_p{inner}_n{n}") + LoweringSupport.Suffix(storage),
            "batch_norm_train", "batch_norm_train.cu.sbn", Model);
        ctx.Launch(k, new Dim3(c), new Dim3(threads), 0, sig.Args);
    }

    /// <summary>The grad of a batch_norm, layer_norm or grn node.</summary>
    public static void Lower(NodeLowering ctx, Grad op)
    {
        var storage = LoweringSupport.Storage(ctx);
        if (op.OutGrads.Count != 1 || op.OutGrads[0] != 0)
        {
            throw Unsupported(ctx, op, $"only the gradient of output 0 is supported, dy = {op.OutGrads}");
        }
        int threads = LoweringSupport.Tunables(ctx)["block"];
        int gy = op.ForwardInputs(ctx.Node.Inputs.Count) + op.ForwardOutputs;
        switch (op.Of)
        {
            case BatchNorm { Mode: Mode.Train } bn:
                BatchNormGrad(ctx, op, bn, threads, gy, storage);
                break;
            case LayerNorm ln:
                LayerNormGrad(ctx, op, ln, threads, gy, storage);
                break;
            case Grn grn:
                GrnGrad(ctx, op, grn, threads, gy, storage);
                break;
            default:
                throw Unsupported(ctx, op, "only the training-mode grad of batch_norm has a CUDA kernel");
        }
    }

    private static IrException Unsupported(NodeLowering ctx, Grad op, string why) =>
        new($"{ctx.Node.Describe()}: no CUDA lowering for grad of {op.Of.Name}: {why}; run the backward graph on the "
            + "CPU target");

    private static string Tag(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    private static (int N, int C, long Inner) Nci(Shape x) =>
        (x[0], x[1], x[1] == 0 || x[0] == 0 ? 0 : x.Elements / ((long)x[0] * x[1]));

    /// <summary>The output index of each requested input among 0, 1, 2 (−1: not requested); others refused.</summary>
    private static int[] Outputs(NodeLowering ctx, Grad op)
    {
        var at = new[] { -1, -1, -1 };
        for (int j = 0; j < op.Wrt.Count; j++)
        {
            if (op.Wrt[j] > 2) throw Unsupported(ctx, op, $"input {op.Wrt[j]} has no gradient kernel");
            at[op.Wrt[j]] = j;
        }
        return at;
    }

    private static void BatchNormGrad(NodeLowering ctx, Grad op, BatchNorm bn, int threads, int gy, DType storage)
    {
        var (n, c, inner) = Nci(ctx.InType(0).Shape);
        var at = Outputs(ctx, op);
        if (c == 0) return;
        var sig = new KernelSignature();
        string[] names = ["dx", "dweight", "dbias"];
        for (int i = 0; i < 3; i++)
        {
            if (at[i] >= 0) sig.Out(names[i], ctx.Out(at[i]), storage);
        }
        sig.In("x", ctx.In(0), storage);
        if (at[0] >= 0) sig.In("weight", ctx.In(1), storage);
        sig.In("gy", ctx.In(gy), storage);
        string wrt = string.Concat(op.Wrt.Order().Select(i => "xwb"[i]));
        BatchNormTrainModel Model(string name) => new(name, "grad_batch_norm", threads, n, c, inner, bn.Eps,
            bn.Momentum, sig.Declarations, at[0] >= 0, at[1] >= 0, at[2] >= 0) { Storage = storage };
        var k = ctx.AddKernel(Tag($"grad_batch_norm_c{c}_p{inner}_n{n}_{wrt}") + LoweringSupport.Suffix(storage),
            "grad_batch_norm", "batch_norm_train.cu.sbn", Model);
        ctx.Launch(k, new Dim3(c), new Dim3(threads), 0, sig.Args);
    }

    private static void LayerNormGrad(NodeLowering ctx, Grad op, LayerNorm ln, int threads, int gy, DType storage)
    {
        var x = ctx.InType(0).Shape;
        int axis = ln.Axis(x.Rank), c = x[axis];
        long inner = x.Strides()[axis], outer = x.Elements == 0 ? 0 : x.Elements / ((long)c * inner);
        var at = Outputs(ctx, op);
        if (c == 0) return;
        long positions = outer * inner;
        var stats = ctx.Scratch("ln_stats", Math.Max(1, 2 * positions));
        var st = new KernelSignature().Out("stats", stats).In("x", ctx.In(0), storage);
        var dx = new KernelSignature();
        if (at[0] >= 0) dx.Out("dx", ctx.Out(at[0]), storage);
        dx.In("x", ctx.In(0), storage).In("weight", ctx.In(1), storage).In("gy", ctx.In(gy), storage)
            .In("stats", stats);
        var pr = new KernelSignature();
        if (at[1] >= 0) pr.Out("dweight", ctx.Out(at[1]), storage);
        if (at[2] >= 0) pr.Out("dbias", ctx.Out(at[2]), storage);
        pr.In("x", ctx.In(0), storage).In("gy", ctx.In(gy), storage).In("stats", stats);
        string wrt = string.Concat(op.Wrt.Order().Select(i => "xwb"[i]));
        bool hasDx = at[0] >= 0, hasParams = at[1] >= 0 || at[2] >= 0;
        LayerNormGradModel Model(string name) => new(name, threads, outer, c, inner, ln.Eps, hasDx, at[1] >= 0,
            at[2] >= 0, st.Declarations, dx.Declarations, pr.Declarations) { Storage = storage };
        var k = ctx.AddKernel(Tag($"grad_layer_norm_c{c}_p{inner}_n{outer}_{wrt}") + LoweringSupport.Suffix(storage),
            "grad_layer_norm", "grad_layer_norm.cu.sbn", Model,
            name => LayerNormGradModel.Entries(name, hasDx, hasParams));
        var block = new Dim3(threads);
        var grid = LoweringSupport.Grid(ctx, positions, threads);
        ctx.Launch(k, grid, block, 0, st.Args, k + "_stats");
        if (hasDx) ctx.Launch(k, grid, block, 0, dx.Args, k + "_dx");
        if (hasParams) ctx.Launch(k, new Dim3(c), block, 0, pr.Args, k + "_params");
    }

    private static void GrnGrad(NodeLowering ctx, Grad op, Grn grn, int threads, int gy, DType storage)
    {
        var x = ctx.InType(0).Shape;
        int n = x[0], c = x[3];
        long positions = (long)x[1] * x[2];
        var at = Outputs(ctx, op);
        if (n == 0 || c == 0) return;
        bool hasDx = at[0] >= 0, hasParams = at[1] >= 0 || at[2] >= 0;
        GrnGradModel Model(string name, IReadOnlyList<string> p) => new(name, threads, n, positions, c, grn.Eps,
            hasDx, at[1] >= 0, at[2] >= 0, p) { Storage = storage };
        var probe = Model("probe", ["", "", "", ""]);
        var sums = ctx.Scratch("grn_sums", probe.SumFloats);
        var factor = ctx.Scratch("grn_factor", probe.FactorFloats);
        var st = new KernelSignature().Out("sums", sums).In("x", ctx.In(0), storage).In("gy", ctx.In(gy), storage);
        var sc = new KernelSignature().Out("factor", factor).In("sums", sums).In("gamma", ctx.In(1), storage);
        var dx = new KernelSignature();
        if (at[0] >= 0) dx.Out("dx", ctx.Out(at[0]), storage);
        dx.In("x", ctx.In(0), storage).In("gy", ctx.In(gy), storage).In("factor", factor);
        var pr = new KernelSignature();
        if (at[1] >= 0) pr.Out("dgamma", ctx.Out(at[1]), storage);
        if (at[2] >= 0) pr.Out("dbeta", ctx.Out(at[2]), storage);
        pr.In("sums", sums).In("factor", factor);
        string wrt = string.Concat(op.Wrt.Order().Select(i => "xgb"[i]));
        string[] decl = [st.Declarations, sc.Declarations, dx.Declarations, pr.Declarations];
        var k = ctx.AddKernel(Tag($"grad_grn_c{c}p{positions}n{n}_{wrt}") + LoweringSupport.Suffix(storage), "grad_grn",
            "grad_grn.cu.sbn", name => Model(name, decl), name => GrnGradModel.Entries(name, hasDx, hasParams));
        var block = new Dim3(threads);
        ctx.Launch(k, LoweringSupport.Grid(ctx, probe.Rows, threads), block, 0, st.Args, k + "_stats");
        ctx.Launch(k, LoweringSupport.Grid(ctx, n, threads), block, 0, sc.Args, k + "_scale");
        if (hasDx) ctx.Launch(k, LoweringSupport.Grid(ctx, probe.Total, threads), block, 0, dx.Args, k + "_dx");
        if (hasParams) ctx.Launch(k, LoweringSupport.Grid(ctx, c, threads), block, 0, pr.Args, k + "_params");
    }
}
