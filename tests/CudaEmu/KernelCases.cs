using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CudaEmu;

/// <summary>A one-node graph to lower with the given tunables of its node (none: the defaults).</summary>
public sealed record KernelCase(string Label, Graph Graph, IReadOnlyDictionary<string, int>? Tunables = null)
{
    /// <summary>The options that carry the tunables.</summary>
    public CudaOptions Options => Tunables is null
        ? new CudaOptions()
        : new CudaOptions
        {
            Tunables = new Dictionary<string, IReadOnlyDictionary<string, int>> { [Graph.Nodes[0].Name] = Tunables },
        };

    /// <summary>The lowered plan.</summary>
    public CudaPlan Lower() => CudaCodegen.Lower(Graph, Options);

    /// <inheritdoc/>
    public override string ToString() => Label;
}

/// <summary>
/// One-node graphs covering every template and flag combination of the lowerings other than fused_shiftwise, at
/// small shapes: odd sizes, sizes that do not divide the block, batch 1 and 2.
/// </summary>
public static class KernelCases
{
    private static TensorType F(params int[] dims) => TensorType.Of(DType.F32, dims);

    /// <summary>A graph of one node: inputs listed in <paramref name="activations"/> are graph inputs, the rest parameters.</summary>
    public static Graph One(string label, Op op, TensorType[] inputs, params int[] activations)
    {
        var b = new GraphBuilder("k_" + label);
        var vals = inputs.Select((t, i) => activations.Contains(i) ? b.Input($"in{i}", t) : b.Param($"p{i}", t)).ToArray();
        b.Output(b.Apply1(op, "y", vals));
        return b.Build();
    }

    /// <summary>Every case, by label.</summary>
    public static IReadOnlyDictionary<string, KernelCase> All { get; } = Build();

    /// <summary>
    /// Ops with no case here because other tests cover their CUDA lowering, and which. With the ops of
    /// <see cref="All"/> and <see cref="Refused"/> they must account for every op of the shared op catalogue
    /// (<see cref="CudaOpCoverageTests"/>).
    /// </summary>
    public static IReadOnlyDictionary<string, string> CoveredElsewhere { get; } = new Dictionary<string, string>
    {
        ["batch_norm"] = "train mode: NormGradEmuTests; FoldBatchNorm folds eval batch norms (refused if left)",
        ["fused_shiftwise"] = "both SW lowerings: SwCudaCompileTests and SwCudaEmuTests over tests/Shared/SwLayers.cs",
        ["grad"] = "the SW layer's backward (shift_add, depthwise conv2d): GradCudaEmuTests; conv2d and linear: "
            + "ConvGradEmuTests; element-wise, mean, reshape, cross_entropy and drop_path: ElementGradEmuTests; "
            + "batch_norm, layer_norm and grn: NormGradEmuTests; channel_select, concat and permute: LayoutEmuTests",
        ["cross_entropy"] = "the training loss, forward and backward: ElementGradEmuTests",
        ["drop_path"] = "train mode forward and backward: ElementGradEmuTests; eval mode is an alias of its input",
        ["reshape"] = "an alias of its input, no kernel: PlanRunnerTests",
        ["cast"] = "f32 to bf16/fp16 and back, the precision pass's graph edges: PrecisionEmuTests",
        ["gemm_grn_fold"] = "GRN's apply folded into the next GEMM, alone and in a ShiftWise_v2: GrnFoldEmuTests",
        ["shift_add"] = "the training graph's unfused SW shift-add: TrainForwardEmuTests",
        ["linear"] = "the training graph's linear layers (GEMM call and bias kernel): TrainForwardEmuTests",
        ["channel_select"] = "forward and backward (the training graph's SW layers): LayoutEmuTests",
        ["concat"] = "forward and backward (the SW layer's ghost concat in the training graph): LayoutEmuTests",
        ["permute"] = "forward and backward (around the training graph's linear layers): LayoutEmuTests",
    };

    /// <summary>
    /// Ops the CUDA target has no kernel for, and why none is needed; lowering the catalogue sample of each must be
    /// refused naming the node and the op.
    /// </summary>
    public static IReadOnlyDictionary<string, string> Refused { get; } = new Dictionary<string, string>
    {
        ["sw_cross"] = "FuseShiftWise folds it into fused_shiftwise",
        ["softmax"] = "no model of the zoo uses it; the loss's softmax is inside cross_entropy",
    };

    /// <summary>Labels for a theory.</summary>
    public static TheoryData<string> Labels()
    {
        var d = new TheoryData<string>();
        foreach (var k in All.Keys) d.Add(k);
        return d;
    }

    private static SortedDictionary<string, KernelCase> Build()
    {
        var cases = new SortedDictionary<string, KernelCase>(StringComparer.Ordinal);
        void Add(string label, Op op, TensorType[] inputs, params int[] acts) =>
            cases.Add(label, new KernelCase(label, One(label, op, inputs, acts)));
        void Tuned(string label, string of, params (string Name, int Value)[] tunables) =>
            cases.Add(label, new KernelCase(label, cases[of].Graph, tunables.ToDictionary(t => t.Name, t => t.Value)));

        // conv2d: dense, strided, stem-like, depthwise, grouped with mixed stride/padding/dilation, dilated,
        // depthwise with a channel multiplier, a tap count too large to unroll
        Conv(Add, "dense3x3", [2, 4, 7, 9], [8, 4, 3, 3], Conv2d.Simple(1), true);
        Conv(Add, "dense2x2s2", [1, 3, 11, 10], [6, 3, 2, 2], Conv2d.Simple(0, stride: 2), false);
        Conv(Add, "stem4x4s4", [1, 3, 16, 17], [5, 3, 4, 4], Conv2d.Simple(0, stride: 4), true);
        Conv(Add, "dw7x7", [2, 6, 9, 7], [6, 1, 7, 7], Conv2d.Simple(3, groups: 6), true);
        Conv(Add, "grouped", [1, 8, 6, 7], [12, 4, 3, 3], new Conv2d(Vec.Of(2, 1), Vec.Of(1, 0), Vec.Of(2, 1), 2), true);
        Conv(Add, "dilated", [2, 3, 10, 11], [4, 3, 3, 3], new Conv2d(Vec.Of(1, 1), Vec.Of(2, 2), Vec.Of(2, 2), 1), false);
        Conv(Add, "dwmult", [1, 3, 5, 5], [6, 1, 3, 3], Conv2d.Simple(1, groups: 3), false);
        Conv(Add, "dw9x9", [1, 2, 12, 13], [2, 1, 9, 9], Conv2d.Simple(4, groups: 2), true);
        Conv(Add, "pointwise1x1", [2, 5, 3, 3], [7, 5, 1, 1], Conv2d.Simple(0), true);

        // layer_norm: channels-last cached with full and partial slots, uncached; channels-first, and channels-first
        // with 1x1 planes (the row form)
        foreach (var (tag, shape, layout) in new (string, int[], NormLayout)[]
        {
            ("last_c7", [2, 5, 3, 7], NormLayout.ChannelsLast),
            ("last_c40", [3, 40], NormLayout.ChannelsLast),
            ("last_c64", [1, 3, 3, 64], NormLayout.ChannelsLast),
            ("last_c600", [2, 600], NormLayout.ChannelsLast),
            ("first_c5", [2, 5, 3, 7], NormLayout.ChannelsFirst),
            ("first_c70", [1, 70, 5, 5], NormLayout.ChannelsFirst),
            ("first_1x1", [2, 33, 1, 1], NormLayout.ChannelsFirst),
        })
        {
            int c = shape[layout == NormLayout.ChannelsFirst ? 1 : shape.Length - 1];
            Add("layer_norm_" + tag, new LayerNorm(1e-6, layout), [F(shape), F(c), F(c)], 0);
        }

        // grn: with and without beta
        Add("grn_beta", new Grn(1e-6), [F(2, 3, 5, 6), F(1, 1, 1, 6), F(1, 1, 1, 6)], 0);
        Add("grn_nobeta", new Grn(1e-6), [F(1, 4, 4, 33), F(1, 1, 1, 33)], 0);
        Add("grn_split", new Grn(1e-6), [F(2, 13, 11, 40), F(1, 1, 1, 40), F(1, 1, 1, 40)], 0);

        foreach (var k in new[] { UnaryKind.Gelu, UnaryKind.Relu, UnaryKind.Sigmoid })
        {
            Add($"unary_{k}_odd".ToLowerInvariant(), new Unary(k), [F(2, 3, 5, 7)], 0);
            Add($"unary_{k}_1000".ToLowerInvariant(), new Unary(k), [F(1000)], 0);
        }

        // binary: same shape, per-channel broadcast, trailing vector, two-sided broadcast, a one-element operand,
        // a parameter operand
        Add("binary_add_same", new Binary(BinaryKind.Add), [F(2, 3, 4, 5), F(2, 3, 4, 5)], 0, 1);
        Add("binary_mul_nc11", new Binary(BinaryKind.Mul), [F(2, 3, 5, 7), F(2, 3, 1, 1)], 0, 1);
        Add("binary_mul_nc11_swapped", new Binary(BinaryKind.Mul), [F(1, 5, 1, 1), F(1, 5, 3, 3)], 0, 1);
        Add("binary_add_vec", new Binary(BinaryKind.Add), [F(2, 3, 5, 7), F(7)], 0);
        Add("binary_mul_both", new Binary(BinaryKind.Mul), [F(1, 3, 1, 5), F(2, 1, 4, 1)], 0, 1);
        Add("binary_add_scalar", new Binary(BinaryKind.Add), [F(2, 3), F(1)], 0, 1);
        Add("binary_mul_c1w", new Binary(BinaryKind.Mul), [F(2, 3, 4, 5), F(3, 1, 5)], 0);

        Add("scale_bias_axis1", new ScaleBias(1), [F(2, 3, 5, 7), F(3), F(3)], 0);
        Add("scale_bias_last", new ScaleBias(-1), [F(2, 3, 5, 7), F(7), F(7)], 0);
        Add("scale_bias_axis0", new ScaleBias(0), [F(2, 3, 5), F(2), F(2)], 0);

        // mean: warp per output (keepdim both ways), block per output (few long rows), other trailing sets
        Add("mean_hw_keep", new Mean(Vec.Of(2, 3), true), [F(2, 3, 5, 7)], 0);
        Add("mean_hw", new Mean(Vec.Of(2, 3), false), [F(2, 3, 5, 7)], 0);
        Add("mean_hw_long", new Mean(Vec.Of(2, 3), false), [F(2, 3, 40, 41)], 0);
        Add("mean_last", new Mean(Vec.Of(-1), true), [F(4, 37)], 0);
        Add("mean_12", new Mean(Vec.Of(1, 2), false), [F(2, 3, 4)], 0);
        Add("mean_unit_tail", new Mean(Vec.Of(1), false), [F(2, 3, 1)], 0);
        Add("mean_all", new Mean(Vec.Of(0, 1), false), [F(3, 50)], 0);

        // gemm: every layout pair x activation x bias x grn x residual, plus a rank-2 input
        foreach (bool inNchw in new[] { false, true })
        foreach (bool outNchw in new[] { false, true })
        foreach (var act in Enum.GetValues<GemmAct>())
        foreach (bool bias in new[] { false, true })
        foreach (bool grn in new[] { false, true })
        foreach (bool res in new[] { false, true })
        {
            var op = new Gemm(inNchw, outNchw, act, bias, grn, 1e-6, res);
            string label = $"gemm_{(inNchw ? "nchw" : "rows")}_{(outNchw ? "nchw" : "rows")}_{act.ToString().ToLowerInvariant()}" +
                (bias ? "_bias" : "") + (grn ? "_grn" : "") + (res ? "_res" : "");
            int n = inNchw && outNchw ? 1 : 2;
            Add(label, op, GemmInputs(op, n, h: 3, w: 5, k: 7, o: 6), GemmActivations(op));
        }
        var swTinyLike = new Gemm(true, false, GemmAct.Gelu, true, true, 1e-6, false);
        Add("gemm_nchw_rows_gelu_bias_grn_split", swTinyLike, GemmInputs(swTinyLike, 2, h: 13, w: 11, k: 9, o: 40), 0);
        Add("gemm_rank2_gelu_bias", new Gemm(false, false, GemmAct.Gelu, true, false, 1e-6, false),
            [F(11, 9), F(5, 9), F(5)], 0);
        Add("gemm_rank3_plain", Gemm.Plain(false), [F(2, 3, 9), F(4, 9)], 0);

        // tunables away from their defaults: several output channels per thread, smallest and largest blocks
        Tuned("conv2d_dense3x3_ch4", "conv2d_dense3x3", ("channels", 4));
        Tuned("conv2d_dense3x3_ch8_b32", "conv2d_dense3x3", ("channels", 8), ("block", 32));
        Tuned("conv2d_grouped_ch2", "conv2d_grouped", ("channels", 2));
        Tuned("conv2d_dense2x2s2_ch2", "conv2d_dense2x2s2", ("channels", 2));
        Tuned("conv2d_dwmult_ch2", "conv2d_dwmult", ("channels", 2));
        Tuned("conv2d_dilated_ch4", "conv2d_dilated", ("channels", 4));
        Tuned("layer_norm_last_c40_b32", "layer_norm_last_c40", ("block", 32));
        Tuned("layer_norm_first_c70_b32", "layer_norm_first_c70", ("block", 32));
        Tuned("layer_norm_first_c5_b1024", "layer_norm_first_c5", ("block", 1024));
        Tuned("mean_hw_long_b64", "mean_hw_long", ("block", 64));
        Tuned("mean_hw_long_b1024", "mean_hw_long", ("block", 1024));
        Tuned("grn_beta_b32", "grn_beta", ("block", 32));
        Tuned("grn_nobeta_b1024", "grn_nobeta", ("block", 1024));
        Tuned("grn_split_b32", "grn_split", ("block", 32));
        Tuned("gemm_rows_rows_relu_bias_grn_res_b32", "gemm_rows_rows_relu_bias_grn_res", ("block", 32));
        Tuned("gemm_rows_nchw_gelu_bias_grn_b64", "gemm_rows_nchw_gelu_bias_grn", ("block", 64));
        Tuned("binary_mul_both_b32", "binary_mul_both", ("block", 32));
        return cases;
    }

    private static void Conv(Action<string, Op, TensorType[], int[]> add, string tag, int[] x, int[] w, Conv2d op, bool bias)
    {
        var inputs = new List<TensorType> { F(x), F(w) };
        if (bias) inputs.Add(F(w[0]));
        add("conv2d_" + tag, op, inputs.ToArray(), [0]);
    }

    /// <summary>Input types of a gemm: x (NCHW or NHWC), weight, then the optional operands in slot order.</summary>
    public static TensorType[] GemmInputs(Gemm op, int n, int h, int w, int k, int o)
    {
        var list = new List<TensorType> { op.InNchw ? F(n, k, h, w) : F(n, h, w, k), F(o, k) };
        if (op.HasBias) list.Add(F(o));
        if (op.HasGrn)
        {
            list.Add(F(1, 1, 1, o));
            list.Add(F(1, 1, 1, o));
        }
        if (op.HasResidual) list.Add(op.OutNchw ? F(n, o, h, w) : F(n, h, w, o));
        return list.ToArray();
    }

    /// <summary>Which gemm inputs are activations: x and the residual.</summary>
    public static int[] GemmActivations(Gemm op) => op.HasResidual ? [0, op.Slots.Residual] : [0];
}
