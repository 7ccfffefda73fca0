using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// CUDA lowering of conv2d (dense, grouped and depthwise, any stride, padding and dilation). Tunable gemm picks the
/// kernel: 0, the direct convolution (<see cref="ConvModel"/>; float32's default, grouped convs' only choice), with
/// tunables block (threads per block) and channels (output channels per thread, 1, 2, 4 or 8, dividing the output
/// channels of a group); for dense convs (groups = 1) 1, im2col into scratch and one strided-batched GEMM
/// (<see cref="Im2colModel"/>; cublasGemmStridedBatchedEx in 16 bits), or, in bf16 and fp16 only (issue 22), 2, their
/// default, an implicit GEMM on tensor cores with no unfolded copy (<see cref="ConvIgemmModel"/>, tunable tile: its
/// block tile). Input, weight, bias and output share one storage type, float32, bf16 or fp16; 16-bit kernels widen
/// what they load and accumulate in float32, rounding once per output.
/// </summary>
internal static class ConvLowering
{
    /// <summary>Adds the node's kernels and steps.</summary>
    public static void Lower(NodeLowering ctx)
    {
        var storage = LoweringSupport.Storage(ctx);
        var op = (Conv2d)ctx.Node.Op;
        var (x, w) = (ctx.InType(0).Shape, ctx.InType(1).Shape);
        bool hasBias = ctx.Node.Inputs.Count == 3;
        bool dense = op.Groups == 1 && w[1] * w[2] * w[3] > 1;
        var defaults = new Dictionary<string, int>
        {
            ["block"] = LoweringSupport.DefaultBlock,
            ["channels"] = DefaultChannels(op, x, w),
            // 16-bit dense convs default to the implicit GEMM on tensor cores; float32 keeps the direct kernel
            ["gemm"] = dense && storage != DType.F32 ? 2 : 0,
        };
        if (dense && storage != DType.F32)
        {
            long m = (long)x[0] * op.OutSize(x[2], w[2], 0) * op.OutSize(x[3], w[3], 1);
            defaults["tile"] = ConvIgemmModel.DefaultTile(m, w[0]);
        }
        var t = LoweringSupport.Tunables(ctx, defaults);
        if (t["gemm"] is 1 or 2)
        {
            if (!dense || (t["gemm"] == 2 && storage == DType.F32))
            {
                throw new IrException($"{ctx.Node.Describe()}: tunable gemm = {t["gemm"]} needs a dense conv "
                    + $"(groups = 1){(t["gemm"] == 2 ? " in bf16 or fp16" : "")}, got groups = {op.Groups} in "
                    + storage.Name());
            }
            if (t["gemm"] == 1) Gemm(ctx, t["block"], storage, op, x, w, hasBias);
            else Implicit(ctx, t["tile"], storage, op, x, w, hasBias);
            return;
        }
        if (t["gemm"] != 0)
        {
            throw new IrException($"{ctx.Node.Describe()}: tunable gemm = {t["gemm"]} must be 0 (direct), 1 (im2col + "
                + "GEMM) or 2 (implicit GEMM)");
        }
        int threads = t["block"], channels = t["channels"];
        int perGroup = w[0] / op.Groups;
        if (channels is not (1 or 2 or 4 or 8) || perGroup % channels != 0)
        {
            throw new IrException($"{ctx.Node.Describe()}: tunable channels = {channels} must be 1, 2, 4 or 8 and "
                + $"divide " +
                $"the {perGroup} output channels of a group");
        }
        if (ctx.OutType(0).Shape.Elements == 0) return;
        string prefix = $"conv2d_c{x[1]}h{x[2]}w{x[3]}_o{w[0]}k{w[2]}x{w[3]}s{op.Stride[0]}"
            + (op.Groups > 1 ? $"g{op.Groups}" : "") + LoweringSupport.Suffix(storage);
        ConvModel Model(string n) => new(n, threads, op, x, w, hasBias, channels) { Storage = storage };
        var name = ctx.AddKernel(prefix, "conv2d", "conv2d.cu.sbn", n => Model(n));
        var args = new List<ArgRef> { ctx.Out(), ctx.In(0), ctx.In(1) };
        if (hasBias) args.Add(ctx.In(2));
        ctx.Launch(name, LoweringSupport.Grid(ctx, Model(name).Work, threads), new Dim3(threads), 0, args);
    }

    /// <summary>
    /// A dense conv as a GEMM (tensor cores in 16 bits): the input unfolded per sample into a row-major
    /// [C·KH·KW][P] block in scratch (<see cref="Im2colModel"/>), then per sample, in cuBLAS's column-major terms,
    /// y_n (P×O, ld P: the NCHW output) = col_n (P×K, ld P) · W (K×O, ld K: the weight as stored), one strided-batched
    /// call over the batch; the bias, when present, in place by the GEMM epilogue kernel (channel planes of P).
    /// </summary>
    private static void Gemm(NodeLowering ctx, int threads, DType storage, Conv2d op, Shape x, Shape w,
        bool hasBias)
    {
        var y = ctx.OutType(0).Shape;
        if (y.Elements == 0) return;
        long positions = (long)y[2] * y[3], k = (long)w[1] * w[2] * w[3];
        if (positions > int.MaxValue || k > int.MaxValue)
        {
            throw new IrException($"{ctx.Node.Describe()}: {positions} positions or {k} taps exceed a GEMM dimension");
        }
        var im = new Im2colModel("probe", threads, op, x, w);
        long bytes = im.Total * storage.Size();
        var col = ctx.Scratch("im2col", (bytes + 3) / 4);
        string tag = $"c{x[1]}h{x[2]}w{x[3]}_k{w[2]}x{w[3]}s{op.Stride[0]}" + LoweringSupport.Suffix(storage);
        var name = ctx.AddKernel("im2col_" + tag, "im2col", "im2col.cu.sbn",
            n => new Im2colModel(n, threads, op, x, w) { Storage = storage });
        ctx.Launch(name, LoweringSupport.Grid(ctx, im.Total, threads), new Dim3(threads), 0, [col, ctx.In(0)]);
        ctx.Gemm(new GemmCall("", TransA: false, TransB: false, M: (int)positions, N: w[0], K: (int)k, A: col,
            Lda: (int)positions, StrideA: k * positions, B: ctx.In(1), Ldb: (int)k, StrideB: 0, C: ctx.Out(),
            Ldc: (int)positions, StrideC: w[0] * positions, Batch: y[0], Alpha: 1f, Beta: 0f) { Storage = storage });
        if (!hasBias) return;
        var sig = new KernelSignature().Out("y", ctx.Out(), storage).In("pre_bias", ctx.In(2), storage);
        long total = y.Elements;
        var bias = ctx.AddKernel($"conv_bias_{total}_o{w[0]}p{positions}" + LoweringSupport.Suffix(storage),
            "conv_bias", "pointwise.cu.sbn", n => new PointwiseModel(n, "conv_bias", threads, total, "none",
                inPlace: true, hasPreBias: true, hasAffine: false, hasResidual: false, w[0], positions, sig)
            { Storage = storage });
        ctx.Launch(bias, LoweringSupport.Grid(ctx, total, threads), new Dim3(threads), 0, sig.Args);
    }

    /// <summary>
    /// A dense 16-bit conv as one implicit-GEMM launch (<see cref="ConvIgemmModel"/>): grid x along the output
    /// positions over the batch, grid y along the output channels, block tile <paramref name="tile"/>; the bias in its
    /// epilogue.
    /// </summary>
    private static void Implicit(NodeLowering ctx, int tile, DType storage, Conv2d op, Shape x, Shape w,
        bool hasBias)
    {
        if (tile < 0 || tile >= ConvIgemmModel.Tiles.Count)
        {
            throw new IrException($"{ctx.Node.Describe()}: tunable tile = {tile} must be one of 0 .. "
                + $"{ConvIgemmModel.Tiles.Count - 1} ({string.Join(", ", ConvIgemmModel.Tiles.Select(
                    (b, i) => $"{i}: {b.M}x{b.N}"))})");
        }
        if (ctx.OutType(0).Shape.Elements == 0) return;
        ConvIgemmModel Model(string n) => new(n, op, x, w, hasBias, tile, storage);
        var probe = Model("probe");
        if (probe.BlocksM > int.MaxValue)
        {
            throw new IrException($"{ctx.Node.Describe()}: {probe.GemmM} output positions need more than 2^31 blocks");
        }
        string prefix = $"conv_igemm_c{x[1]}h{x[2]}w{x[3]}_o{w[0]}k{w[2]}x{w[3]}s{op.Stride[0]}_t{probe.TileM}x"
            + $"{probe.TileN}" + LoweringSupport.Suffix(storage);
        var name = ctx.AddKernel(prefix, "conv_igemm", "conv_igemm.cu.sbn", n => Model(n));
        var args = new List<ArgRef> { ctx.Out(), ctx.In(0), ctx.In(1) };
        if (hasBias) args.Add(ctx.In(2));
        ctx.Launch(name, new Dim3((int)probe.BlocksM, probe.BlocksN), new Dim3(probe.Threads), 0, args);
    }

    /// <summary>Threads a launch should have at least before channels per thread are raised above 1 (about two
    /// blocks of 256 per SM of a large GPU).</summary>
    public const long EnoughThreads = 65536;

    /// <summary>
    /// 4 or 2 output channels per thread (reusing each input value) when each output reads several input channels
    /// and that still leaves <see cref="EnoughThreads"/> threads; 1 otherwise (depthwise, or small outputs where
    /// parallelism matters more).
    /// </summary>
    public static int DefaultChannels(Conv2d op, Shape x, Shape w)
    {
        int perGroup = w[0] / op.Groups;
        if (w[1] == 1) return 1;
        long positions = (long)x[0] * op.OutSize(x[2], w[2], 0) * op.OutSize(x[3], w[3], 1);
        foreach (int c in new[] { 4, 2 })
        {
            if (perGroup % c == 0 && positions * (w[0] / c) >= EnoughThreads) return c;
        }
        return 1;
    }
}
