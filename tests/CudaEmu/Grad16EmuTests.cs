using ShiftWise.CodegenCuda;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;
using ShiftWise.Passes;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// The grad kernels of the training graph in bf16 and fp16 (issue 22): conv2d's (grad_conv2d_input, _weight,
/// _dw_input, _dw_weight, grad_bias) and the element-wise ones (grad_elem_pointwise, grad_elem_reduce, mul's binary,
/// cross_entropy forward and backward, drop_path_train forward and backward). A one-node graph declared 16-bit lowers
/// to the same kernels with 16-bit loads and stores (the labels and the step stay float32, as the runtime uploads
/// them); its inputs are random 16-bit values, read exactly, and each result is checked against the float64
/// reference executor (the backward, <c>Backward.Vjp</c>) of the same graph in float32 on the widened values. Every
/// result is a float32 value rounded once by its store, so with u the unit roundoff (2⁻⁸ bf16, 2⁻¹¹ fp16):
/// <list type="bullet">
/// <item>linear results (the conv grads, the sums of add and mul, mean's, drop_path's): element by element
/// <c>|got − want| ≤ (u + 2⁻²⁴)·|want| + (1 + u)·γ_K·mag + η</c>, K the float32 roundings a term meets on its way
/// to the result (stated per case), γ_K = K·2⁻²⁴/(1 − K·2⁻²⁴), mag the reference on the inputs' absolute values
/// (Σ|terms|: these grads are linear in each input), η half the smallest subnormal step (2⁻²⁵, fp16), 2⁻²⁴·|want| the
/// reference's own float32 output;</item>
/// <item>copies (relu, reshape, add to an operand of the output's size, eval drop_path): exactly the reference;</item>
/// <item>gelu, sigmoid and cross_entropy (float32 erff, expf, logf): relative L2 ≤ u·(1 + ε) + ε + η·√n/‖want‖
/// with ε = 1e-5, the tolerance ElementGradEmuTests holds the same float32 arithmetic to, the rounding adding at
/// most u relative to each value (η absolute for fp16 subnormals).</item>
/// </list>
/// The kernels follow <see cref="OneNodeEmu.Lower"/>'s conventions (NVRTC for compute_80/90, no local memory, no
/// atomics, deterministic rendering) and compile to CUBIN for sm_80/90.
/// </summary>
public sealed class Grad16EmuTests
{
    private const double Eps = 1e-5;

    private enum How { Exact, Element, L2 }

    /// <summary>
    /// A case: the forward op and its float input shapes, an i64 input after them (labels, step), the inputs to
    /// differentiate (null: the forward node itself), whether the grad seeds from a one-element output (dy=[]),
    /// tunables, the roundings K of each output, how outputs are checked.
    /// </summary>
    private sealed record Case(Op Op, int[][] Shapes, TensorType? Extra, int[]? Wrt, bool Seed,
        Dictionary<string, int>? Tunables, long[] Terms, How How);

    private static readonly Dictionary<string, Case> Cases = BuildCases();

    private static Dictionary<string, Case> BuildCases()
    {
        var c = new Dictionary<string, Case>();
        // conv2d grads: dx (K = output channels per group × taps, one fmaf each), dw (a thread's fmaf chain of at
        // most P positions and log2(wblock) ≤ 10 tree additions: K = P + 10, P = N·OH·OW), db (the same, adds)
        void Conv(string label, int[] x, int[] w, int s, int p, int d, int groups, int[] wrt, int block = 0)
        {
            var op = new Conv2d(Vec.Of(s, s), Vec.Of(p, p), Vec.Of(d, d), groups);
            long positions = (long)x[0] * op.OutSize(x[2], w[2], 0) * op.OutSize(x[3], w[3], 1);
            long[] terms = wrt.Select(i => i == 0 ? (long)w[0] / groups * w[2] * w[3] : positions + 10).ToArray();
            int[][] shapes = wrt.Contains(2) ? [x, w, [w[0]]] : [x, w];
            var t = block == 0 ? null : new Dictionary<string, int> { ["block"] = block, ["wblock"] = block };
            c["conv_" + label] = new(op, shapes, null, wrt, false, t, terms, How.Element);
        }
        // sw-fmnist: the SW layer's 3x3 and 7x7 depthwise convs (the depthwise kernels; with the bias, the general
        // ones), the 2x2 stride-2 downsample, the stride-2 stem, a 1x1 expansion; odd, grouped, dilated, batch 1
        Conv("depthwise3", [2, 24, 7, 7], [24, 1, 3, 3], 1, 1, 1, 24, [0, 1]);
        Conv("depthwise3_bias", [2, 24, 7, 7], [24, 1, 3, 3], 1, 1, 1, 24, [0, 1, 2], 64);
        Conv("depthwise7", [2, 24, 7, 7], [24, 1, 7, 7], 1, 3, 1, 24, [0, 1], 32);
        Conv("depthwise_x2_odd", [1, 5, 9, 11], [10, 1, 3, 3], 1, 1, 1, 5, [0, 1], 128);
        Conv("down", [2, 24, 7, 7], [48, 24, 2, 2], 2, 0, 1, 1, [0, 1, 2]);
        Conv("stem", [2, 1, 28, 28], [12, 1, 3, 3], 2, 1, 1, 1, [1, 2]);
        Conv("dense_small", [2, 12, 14, 14], [24, 12, 3, 3], 2, 1, 1, 1, [0, 1, 2], 128);
        Conv("pointwise", [2, 24, 7, 7], [96, 24, 1, 1], 1, 0, 1, 1, [0, 1, 2]);
        Conv("odd_grouped_dilated", [1, 6, 11, 13], [4, 3, 3, 3], 2, 1, 2, 2, [0, 1], 64);
        Conv("batch1_long", [1, 40, 9, 9], [8, 40, 5, 5], 1, 2, 1, 1, [0, 1, 2], 32);

        void Grad(string label, Op op, int[][] shapes, int[] wrt, How how, params long[] terms) =>
            c[label] = new(op, shapes, null, wrt, false, null, terms, how);
        // unary: sw-fmnist's gelu (channels last), the SE's relu and sigmoid; odd shapes
        Grad("gelu", new Unary(UnaryKind.Gelu), [[2, 7, 7, 96]], [0], How.L2, 0);
        Grad("gelu_odd", new Unary(UnaryKind.Gelu), [[3, 5, 7]], [0], How.L2, 0);
        Grad("sigmoid_se", new Unary(UnaryKind.Sigmoid), [[2, 48, 1, 1]], [0], How.L2, 0);
        Grad("relu_se", new Unary(UnaryKind.Relu), [[2, 12, 1, 1]], [0], How.Exact, 0);
        Grad("relu_odd", new Unary(UnaryKind.Relu), [[3, 5, 7]], [0], How.Exact, 0);
        // add: the residual (two copies); a broadcast bias, one block per element (a sum of 3·23·21 terms: K = R)
        var add = new Binary(BinaryKind.Add);
        var mul = new Binary(BinaryKind.Mul);
        Grad("add_residual", add, [[2, 24, 7, 7], [2, 24, 7, 7]], [0, 1], How.Exact, 0, 0);
        Grad("add_bias_block", add, [[3, 5, 23, 21], [5, 1, 1]], [1], How.Element, 3 * 23 * 21);
        // mul: the operand of the output's size is gy·other (K = 1); the broadcast one sums R products (K = R + 1):
        // the SE's scale (R = 16, a warp each), the layer scale (R = 98), few channels with long sums (a block each)
        Grad("mul_se", mul, [[2, 48, 4, 4], [2, 48, 1, 1]], [0, 1], How.Element, 1, 17);
        Grad("mul_layer_scale", mul, [[2, 24, 7, 7], [1, 24, 1, 1]], [1, 0], How.Element, 99, 1);
        Grad("mul_block_odd", mul, [[5, 7, 17, 19], [1, 7, 1, 1]], [1], How.Element, 5 * 17 * 19 + 1);
        // mean: gy·(1/count), the literal 1/count rounded to float32 and the product (K = 2)
        Grad("mean_se", new Mean(Vec.Of(2, 3), true), [[2, 48, 4, 4]], [0], How.Element, 2);
        Grad("mean_odd", new Mean(Vec.Of(1), false), [[3, 37]], [0], How.Element, 2);
        Grad("reshape_gamma", new Reshape(Vec.Of(1, 24, 1, 1)), [[24]], [0], How.Exact, 0);
        Grad("drop_path_eval", new DropPath(0.3, Mode.Eval, 0), [[3, 4]], [0], How.Exact, 0);
        // drop_path in train mode, forward and backward, with and without the step: src·(1/(1 − p)), the literal
        // rounded to float32 and the product (K = 2)
        var step = TensorType.Of(DType.I64);
        foreach (var (label, x) in new[] { ("fmnist", new[] { 16, 24, 7, 7 }), ("odd", [7, 3, 5, 1]) })
        {
            var dp = new DropPath(0.3, Mode.Train, 5);
            c[$"drop_path_{label}_step"] = new(dp, [x], step, null, false, null, [2], How.Element);
            c[$"drop_path_grad_{label}_step"] = new(dp, [x], step, [0], false, null, [2], How.Element);
            c[$"drop_path_grad_{label}"] = new(dp, [x], null, [0], false, null, [2], How.Element);
        }
        // cross_entropy: sw-fmnist's 10 classes at batch 128, odd ones, many classes; forward, dy=[0] and the seed
        foreach (var (label, n, k, eps) in new[]
        {
            ("fmnist", 128, 10, 0.1), ("odd", 37, 3, 0.25), ("wide", 5, 1000, 0.1),
        })
        {
            var ce = new CrossEntropy(eps);
            var labels = TensorType.Of(DType.I64, n);
            c[$"cross_entropy_{label}"] = new(ce, [[n, k]], labels, null, false, null, [0], How.L2);
            c[$"cross_entropy_grad_{label}"] = new(ce, [[n, k]], labels, [0], false, null, [0], How.L2);
            c[$"cross_entropy_seed_{label}"] = new(ce, [[n, k]], labels, [0], true, null, [0], How.L2);
        }
        return c;
    }

    public static TheoryData<string, string> CaseLabels() =>
        Emu16.ByType(Cases.Keys.Order(StringComparer.Ordinal));

    /// <summary>The one-node graph of <paramref name="c"/>, its float values of type <paramref name="t"/>.</summary>
    private static Graph Build(string name, Case c, DType t)
    {
        var fwd = c.Shapes.Select(s => TensorType.Of(t, s)).ToList();
        if (c.Extra is not null) fwd.Add(c.Extra);
        if (c.Wrt is null) return OpCatalog.OneNode(name, c.Op, fwd);
        // a grad node's inputs: the forward inputs, the forward output and (dy=[0]) its gradient
        var y = c.Op.Infer(fwd)[0];
        var grad = new Grad(c.Op, Vec.Of(c.Wrt), c.Seed ? Vec<int>.Empty : Vec.Of(0));
        return OpCatalog.OneNode(name, grad, c.Seed ? [.. fwd, y] : [.. fwd, y, y]);
    }

    [Theory]
    [MemberData(nameof(CaseLabels))]
    public void TheSixteenBitGradMatchesTheReferenceWithinItsRoundings(string type, string label)
    {
        TestKernels.RequireEmulator();
        var dt = type == "bf16" ? DType.BF16 : DType.F16;
        var c = Cases[label];
        var g16 = Build("g16_" + label, c, dt);
        var g32 = Build("g32_" + label, c, DType.F32);
        var plan = OneNodeEmu.Lower(g16, c.Tunables is null ? null : OneNodeEmu.Tunables(g16, c.Tunables));
        Assert.Empty(plan.Derived);
        Assert.Empty(plan.Scratch);
        foreach (var k in plan.Kernels)
        {
            // the kernel proper (without the prelude, which defines every 16-bit type and conversion) reads and
            // writes 16-bit values; only copies store without rounding
            Assert.Contains(Types16.Prelude, k.Source, StringComparison.Ordinal);
            var body = k.Source.Replace(Types16.Prelude, "", StringComparison.Ordinal);
            Assert.Matches($"_{type}_[0-9a-f]{{8}}$", k.Name);
            Assert.Contains($"swc_{type}* __restrict__", body, StringComparison.Ordinal);
            Assert.Equal(c.How != How.Exact || label.StartsWith("relu", StringComparison.Ordinal),
                body.Contains("swc_round_" + type + "(", StringComparison.Ordinal)
                && body.Contains("swc_widen(", StringComparison.Ordinal));
        }

        var (bits, floats, widened, abs) = Inputs(g16, dt, new Random(label.Length * 7919 + (int)dt * 31
            + label[^1]), c.Op is CrossEntropy ? c.Shapes[0][1] : 0);
        var got = Run(plan, g16, bits, floats);
        var none = new Dictionary<string, Tensor>();
        var want = ReferenceExecutor.Run(g32, none, widened);
        var mag = ReferenceExecutor.Run(g32, none, abs);
        double u = Emu16.Unit(dt), e24 = Math.Pow(2, -24), eta = dt == DType.F16 ? Math.Pow(2, -25) : 0;
        for (int o = 0; o < g16.Outputs.Count; o++)
        {
            var g = got[g16.Outputs[o]].Select(b => (double)Float16Bits.Widen(b, dt)).ToArray();
            var w = want[g32.Outputs[o]].ToDoubles();
            var m = mag[g32.Outputs[o]].ToDoubles();
            double gamma = c.Terms[o] * e24 / (1 - c.Terms[o] * e24), rel = Error.RelL2(g, w), worst = 0;
            string what = $"{type} {label} %{g16.Outputs[o]}";
            for (int i = 0; i < g.Length; i++)
            {
                double diff = Math.Abs(g[i] - w[i]);
                if (c.How == How.Exact)
                {
                    Assert.True(g[i] == w[i], $"{what}[{i}]: got {g[i]:R}, the copy of {w[i]:R}");
                }
                else if (c.How == How.Element)
                {
                    double bound = (u + e24) * Math.Abs(w[i]) + (1 + u) * gamma * Math.Abs(m[i]) + eta;
                    Assert.True(diff <= bound, $"{what}[{i}]: got {g[i]:R}, want {w[i]:R}, |diff| {diff:E2} > "
                        + $"bound {bound:E2}");
                    if (bound > 0) worst = Math.Max(worst, diff / bound);
                }
            }
            if (c.How == How.L2)
            {
                double norm = Math.Sqrt(w.Sum(v => v * v));
                double bound = u * (1 + Eps) + Eps + eta * Math.Sqrt(w.Length) / norm;
                Assert.True(rel <= bound, $"{what}: relative L2 {rel:E2} > {bound:E2}");
            }
            TestContext.Current.TestOutputHelper?.WriteLine($"{what}: relative L2 {rel:E2} (u = {u:E2}), worst "
                + $"|diff| / bound {worst:F3}");
            // a sum of many terms (or a transcendental) must show its rounding: a float32 kernel would not
            if ((c.How == How.L2 || c.Terms[o] > 3) && w.Length > 1) Assert.True(rel > 0, $"{what}: no rounding");
        }
        Emu16.Compiles(plan, "sm_80", "sm_90");
    }

    /// <summary>
    /// Other float types are refused naming the node (float64 conv2d and gelu grads). (The IR already refuses a grad
    /// node whose types differ.)
    /// </summary>
    [Fact]
    public void OtherFloatTypesAreRefusedNamingTheNode()
    {
        var f64 = DType.F64;
        var conv = new Conv2d(Vec.Of(1, 1), Vec.Of(1, 1), Vec.Of(1, 1), 1);
        var (x, w) = (TensorType.Of(f64, 1, 2, 5, 5), TensorType.Of(f64, 3, 2, 3, 3));
        var y = TensorType.Of(f64, 1, 3, 5, 5);
        var g = OpCatalog.OneNode("f64_conv", new Grad(conv, Vec.Of(0, 1), Vec.Of(0)), [x, w, y, y]);
        var e = Assert.Throws<IrException>(() => CudaCodegen.Lower(g));
        Assert.Contains("(grad)", e.Message, StringComparison.Ordinal);
        Assert.Contains("f32, bf16 or f16", e.Message, StringComparison.Ordinal);
        var a = TensorType.Of(f64, 2, 3);
        var ge = OpCatalog.OneNode("f64_gelu", new Grad(new Unary(UnaryKind.Gelu), Vec.Of(0), Vec.Of(0)), [a, a, a]);
        e = Assert.Throws<IrException>(() => CudaCodegen.Lower(ge));
        Assert.Contains("(grad)", e.Message, StringComparison.Ordinal);
        Assert.Contains("f32, bf16 or f16", e.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// Every grad node the autodiff pass emits for a bf16 sw-fmnist training graph (batch 2, drop path 0.2, label
    /// smoothing 0.1), lowered as a one-node graph, gives 16-bit kernels and 16-bit GEMMs only (linear's grads as
    /// cublasGemmStridedBatchedEx calls, Gemm16EmuTests).
    /// </summary>
    [Fact]
    public void EveryGradOfASixteenBitFmnistTrainingGraphLowers()
    {
        var o = ShiftWiseV2Options.FashionMnist with { Batch = 2, DropPathRate = 0.2 };
        var m = ShiftWiseV2.Build(o, "sw-fmnist", DType.BF16, new TrainingForm(0.1, 3));
        var g = AutodiffBuilder.Build(m.Graph, ShiftWiseV2.Loss).Graph;
        var types = g.ValueTypes();
        var kinds = new SortedSet<string>(StringComparer.Ordinal);
        int lowered = 0;
        foreach (var n in g.Nodes.Where(n => n.Op is Grad))
        {
            var one = OpCatalog.OneNode($"fm16_{lowered++}", n.Op, n.Inputs.Select(v => types[v]).ToArray());
            var plan = CudaCodegen.Lower(one);
            Assert.All(plan.Steps.OfType<GemmCall>(), c => Assert.Equal(DType.BF16, c.Storage));
            foreach (var k in plan.Kernels)
            {
                Assert.Matches("_bf16_[0-9a-f]{8}$", k.Name);
                kinds.Add(k.Kind);
            }
        }
        TestContext.Current.TestOutputHelper?.WriteLine($"{lowered} grad nodes: {string.Join(", ", kinds)}");
        foreach (var kind in new[] { "grad_conv2d_input", "grad_conv2d_weight", "grad_conv2d_dw_input",
            "grad_conv2d_dw_weight", "grad_bias", "grad_elem_pointwise", "grad_elem_reduce", "cross_entropy_grad",
            "drop_path_train" })
        {
            Assert.Contains(kind, kinds);
        }
    }

    /// <summary>
    /// Random inputs: float values uniform in ±3 rounded to <paramref name="dt"/> (their bits for the kernels, the
    /// values and their absolute values for the reference), i64 labels below <paramref name="classes"/> or a step
    /// (as float32 for the kernels, i64 for the reference).
    /// </summary>
    private static (Dictionary<string, ushort[]> Bits, Dictionary<string, float[]> Floats,
        Dictionary<string, Tensor> Widened, Dictionary<string, Tensor> Abs) Inputs(Graph g16, DType dt, Random rng,
        int classes)
    {
        var (bits, floats) = (new Dictionary<string, ushort[]>(), new Dictionary<string, float[]>());
        var (widened, abs) = (new Dictionary<string, Tensor>(), new Dictionary<string, Tensor>());
        foreach (var d in g16.Inputs)
        {
            if (d.Type.DType == DType.I64)
            {
                var v = Enumerable.Range(0, (int)d.Type.Shape.Elements)
                    .Select(_ => (double)(d.Type.Shape.Rank == 0 ? rng.Next(100000) : rng.Next(classes))).ToArray();
                floats[d.Name] = v.Select(x => (float)x).ToArray();
                widened[d.Name] = abs[d.Name] = Tensor.FromDoubles(d.Type, v);
                continue;
            }
            bits[d.Name] = Emu16.Random(rng, d.Type.Shape.Elements, dt);
            var f = bits[d.Name].Select(b => Float16Bits.Widen(b, dt)).ToArray();
            var t32 = TensorType.Of(DType.F32, d.Type.Shape.ToArray());
            widened[d.Name] = Tensor.Wrap(t32, f);
            abs[d.Name] = Tensor.Wrap(t32, f.Select(MathF.Abs).ToArray());
        }
        return (bits, floats, widened, abs);
    }

    /// <summary>
    /// Every launch of <paramref name="plan"/> through Emu16.Run, one kernel at a time: each writes one graph output
    /// and reads graph inputs only (16-bit values, or the labels and the step as float32).
    /// </summary>
    private static Dictionary<string, ushort[]> Run(CudaPlan plan, Graph g16, Dictionary<string, ushort[]> bits,
        Dictionary<string, float[]> floats)
    {
        var types = g16.ValueTypes();
        var outputs = new Dictionary<string, ushort[]>();
        foreach (var step in plan.Steps)
        {
            var launch = Assert.IsType<KernelLaunch>(step);
            var names = launch.Args.Select(a => a.Name).ToHashSet(StringComparer.Ordinal);
            var outs = g16.Outputs.Where(names.Contains).ToDictionary(n => n, n => types[n].Shape.Elements);
            Assert.Single(outs);
            var got = Emu16.Run(plan.Kernel(launch.Kernel), launch,
                bits.Where(p => names.Contains(p.Key)).ToDictionary(), outs,
                floats.Where(p => names.Contains(p.Key)).ToDictionary());
            foreach (var (k, v) in got) outputs[k] = v;
        }
        Assert.Equal(g16.Outputs.Order(StringComparer.Ordinal), outputs.Keys.Order(StringComparer.Ordinal));
        return outputs;
    }
}
