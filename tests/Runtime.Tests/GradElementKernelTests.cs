using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;
using ShiftWise.Passes;
using ShiftWise.Runtime.Cpu;
using ShiftWise.Runtime.Cpu.Kernels;
using static ShiftWise.Runtime.Tests.KernelHarness;

namespace ShiftWise.Runtime.Tests;

/// <summary>
/// The float32 grad kernels of the norms, element-wise, reduction and layout ops (GradElement*.cs, GradNorm*.cs)
/// beyond the random small cases of <see cref="KernelTests"/>: which kernel each op gets, the shapes of the
/// Fashion-MNIST ShiftWise model, many random broadcasts, the running-statistic outputs of batch_norm, and
/// bitwise-repeatable results on planes large enough to run in parallel.
/// </summary>
public sealed class GradElementKernelTests
{
    private static Tensor Step(long s) => Tensor.FromDoubles(TensorType.Of(DType.I64), [s]);

    private static Tensor[] Bn(Random rng, Tensor x)
    {
        int c = x.Shape[1];
        return [x, Rand(rng, c), Rand(rng, c), Rand(rng, c), Rand(rng, new Shape(c), 0.5, 1)];
    }

    /// <summary>A grad case: the forward op, its inputs, the inputs differentiated and the outputs with a gradient (null: the loss seed).</summary>
    private sealed record Case(string What, Op Op, Tensor[] Inputs, int[] Wrt, int[]? Dy, Type Kernel);

    /// <summary>One small case of every op and mode this family covers.</summary>
    private static IEnumerable<Case> Owned()
    {
        var rng = new Random(7);
        var x = Rand(rng, 2, 4, 5, 6);
        Tensor C(int n) => Rand(rng, n);
        yield return new("batch_norm eval", new BatchNorm(1e-5, 0.1, Mode.Eval), Bn(rng, x), [0, 1, 2], [0], typeof(BatchNormGradKernel));
        yield return new("batch_norm train", new BatchNorm(1e-5, 0.1, Mode.Train), Bn(rng, x), [0, 1, 2], [0], typeof(BatchNormGradKernel));
        yield return new("layer_norm first", new LayerNorm(1e-6, NormLayout.ChannelsFirst), [x, C(4), C(4)], [0, 1, 2], [0], typeof(LayerNormGradKernel));
        yield return new("layer_norm last", new LayerNorm(1e-6, NormLayout.ChannelsLast), [x, C(6), C(6)], [0, 1, 2], [0], typeof(LayerNormGradKernel));
        var gamma = Rand(rng, 1, 1, 1, 6);
        yield return new("grn", new Grn(1e-6), [x, gamma, Rand(rng, 1, 1, 1, 6)], [0, 1, 2], [0], typeof(GrnGradKernel));
        yield return new("grn no beta", new Grn(1e-6), [x, gamma], [0, 1], [0], typeof(GrnGradKernel));
        yield return new("scale_bias", new ScaleBias(1), [x, C(4), C(4)], [0, 1, 2], [0], typeof(ScaleBiasGradKernel));
        foreach (var k in new[] { UnaryKind.Gelu, UnaryKind.Relu, UnaryKind.Sigmoid })
        {
            yield return new($"{k}", new Unary(k), [x], [0], [0], typeof(UnaryGradKernel));
        }
        yield return new("add", new Binary(BinaryKind.Add), [x, Rand(rng, 1, 4, 1, 1)], [0, 1], [0], typeof(BinaryGradKernel));
        yield return new("mul", new Binary(BinaryKind.Mul), [x, Rand(rng, 2, 4, 1, 1)], [0, 1], [0], typeof(BinaryGradKernel));
        yield return new("mean", new Mean(Vec.Of(2, 3), false), [x], [0], [0], typeof(MeanGradKernel));
        yield return new("softmax", new Softmax(-1), [x], [0], [0], typeof(SoftmaxGradKernel));
        var logits = Rand(rng, 3, 5);
        yield return new("cross_entropy", new CrossEntropy(0.1), [logits, Labels(rng, 3, 5)], [0], [0], typeof(CrossEntropyGradKernel));
        yield return new("cross_entropy seed", new CrossEntropy(0.1), [logits, Labels(rng, 3, 5)], [0], null, typeof(CrossEntropyGradKernel));
        yield return new("drop_path eval", new DropPath(0.2, Mode.Eval, 3), [x], [0], [0], typeof(DropPathGradKernel));
        yield return new("drop_path train", new DropPath(0.2, Mode.Train, 3), [x], [0], [0], typeof(DropPathGradKernel));
        yield return new("drop_path train step", new DropPath(0.2, Mode.Train, 3), [x, Step(5)], [0], [0], typeof(DropPathGradKernel));
        yield return new("channel_select", new ChannelSelect(1, Vec.Of(3, 0, 3)), [x], [0], [0], typeof(ChannelSelectGradKernel));
        yield return new("concat", new Concat(1), [x, Rand(rng, 2, 1, 5, 6)], [0, 1], [0], typeof(ConcatGradKernel));
        yield return new("permute", new Permute(Vec.Of(0, 2, 3, 1)), [x], [0], [0], typeof(PermuteGradKernel));
        yield return new("reshape", new Reshape(Vec.Of(2, 4, 30)), [x], [0], [0], typeof(ReshapeGradKernel));
    }

    private static (Grad Op, Tensor[] Inputs) Build(Case c, Random rng) =>
        KernelTests.GradCase(rng, c.Op, c.Inputs, c.Wrt, c.Dy ?? []);

    [Fact]
    public void EveryOwnedOpGetsItsFloat32KernelAndMatches()
    {
        var rng = new Random(1);
        foreach (var c in Owned())
        {
            var (g, ins) = Build(c, rng);
            var k = Create(g, ins.Select(t => t.Type).ToArray());
            Assert.False(k is ReferenceGradKernel, $"{c.What} runs the float64 fallback");
            Assert.IsType(c.Kernel, k);
            Matches(c.What, g, ins);
        }
    }

    [Fact]
    public void FusedOpsKeepTheFallback()
    {
        var rng = new Random(2);
        var (g, ins) = KernelTests.GradCase(rng, Gemm.Plain(true), [Rand(rng, 7, 6), Rand(rng, 5, 6), Rand(rng, 5)], [0, 1, 2]);
        Assert.IsType<ReferenceGradKernel>(Create(g, ins.Select(t => t.Type).ToArray()));
    }

    public static TheoryData<string> ModelCases() => new(ModelShapes(new Random(0)).Select(c => c.What));

    /// <summary>The ops of the sw-fmnist training graph at batch 64 (stage widths 24–192, planes 14×14 to 7×7).</summary>
    private static IEnumerable<Case> ModelShapes(Random rng)
    {
        var bn = new BatchNorm(1e-5, 0.1, Mode.Train);
        yield return new("batch_norm train 64x48x14x14", bn, Bn(rng, Rand(rng, new Shape(64, 48, 14, 14), 2, 0.5)), [0, 1, 2], [0], typeof(BatchNormGradKernel));
        yield return new("batch_norm eval 64x48x14x14", bn with { Mode = Mode.Eval }, Bn(rng, Rand(rng, 64, 48, 14, 14)), [0, 1, 2], [0], typeof(BatchNormGradKernel));
        yield return new("batch_norm train 64x192x2x2", bn, Bn(rng, Rand(rng, 64, 192, 2, 2)), [0, 1, 2], [0], typeof(BatchNormGradKernel));
        var nhwc = Rand(rng, 64, 7, 7, 192);
        yield return new("layer_norm last 64x7x7x192", new LayerNorm(1e-6, NormLayout.ChannelsLast), [nhwc, Rand(rng, 192), Rand(rng, 192)], [0, 1, 2], [0], typeof(LayerNormGradKernel));
        yield return new("layer_norm last pooled 64x192", new LayerNorm(1e-6, NormLayout.ChannelsLast), [Rand(rng, 64, 192), Rand(rng, 192), Rand(rng, 192)], [0, 1, 2], [0], typeof(LayerNormGradKernel));
        yield return new("layer_norm first 64x24x14x14", new LayerNorm(1e-6, NormLayout.ChannelsFirst), [Rand(rng, 64, 24, 14, 14), Rand(rng, 24), Rand(rng, 24)], [0, 1, 2], [0], typeof(LayerNormGradKernel));
        yield return new("grn 64x7x7x192", new Grn(1e-6), [nhwc, Rand(rng, 1, 1, 1, 192), Rand(rng, 1, 1, 1, 192)], [0, 1, 2], [0], typeof(GrnGradKernel));
        yield return new("grn no beta 64x14x14x96", new Grn(1e-6), [Rand(rng, 64, 14, 14, 96), Rand(rng, 1, 1, 1, 96)], [0, 1], [0], typeof(GrnGradKernel));
        yield return new("cross_entropy seed 64x10", new CrossEntropy(0.1), [Rand(rng, new Shape(64, 10), 4), Labels(rng, 64, 10)], [0], null, typeof(CrossEntropyGradKernel));
        yield return new("cross_entropy 64x10", new CrossEntropy(0), [Rand(rng, new Shape(64, 10), 4), Labels(rng, 64, 10)], [0], [0], typeof(CrossEntropyGradKernel));
        yield return new("gelu 64x7x7x192", new Unary(UnaryKind.Gelu), [Rand(rng, new Shape(64, 7, 7, 192), 4)], [0], [0], typeof(UnaryGradKernel));
        yield return new("sigmoid 64x48x1x1", new Unary(UnaryKind.Sigmoid), [Rand(rng, new Shape(64, 48, 1, 1), 4)], [0], [0], typeof(UnaryGradKernel));
        var plane = Rand(rng, 64, 48, 14, 14);
        yield return new("mul se 64x48x14x14 by 64x48x1x1", new Binary(BinaryKind.Mul), [plane, Rand(rng, 64, 48, 1, 1)], [0, 1], [0], typeof(BinaryGradKernel));
        yield return new("mul layer scale by 1x48x1x1", new Binary(BinaryKind.Mul), [plane, Rand(rng, 1, 48, 1, 1)], [0, 1], [0], typeof(BinaryGradKernel));
        yield return new("add residual 64x48x14x14", new Binary(BinaryKind.Add), [plane, Rand(rng, 64, 48, 14, 14)], [0, 1], [0], typeof(BinaryGradKernel));
        yield return new("add bias 192 over NHWC", new Binary(BinaryKind.Add), [Rand(rng, 192), nhwc], [0, 1], [0], typeof(BinaryGradKernel));
        yield return new("mean pool 64x192x7x7", new Mean(Vec.Of(2, 3), false), [Rand(rng, 64, 192, 7, 7)], [0], [0], typeof(MeanGradKernel));
        yield return new("mean se keepdim 64x48x14x14", new Mean(Vec.Of(2, 3), true), [plane], [0], [0], typeof(MeanGradKernel));
        yield return new("softmax strided 16x10x14x14", new Softmax(1), [Rand(rng, new Shape(16, 10, 14, 14), 3)], [0], [0], typeof(SoftmaxGradKernel));
        yield return new("drop_path train 64x48x14x14", new DropPath(0.1, Mode.Train, 11), [plane, Step(123)], [0], [0], typeof(DropPathGradKernel));
        yield return new("permute to NHWC", new Permute(Vec.Of(0, 2, 3, 1)), [plane], [0], [0], typeof(PermuteGradKernel));
        yield return new("permute to NCHW", new Permute(Vec.Of(0, 3, 1, 2)), [nhwc], [0], [0], typeof(PermuteGradKernel));
        var picks = Enumerable.Range(0, 40).Select(i => i * 7 % 48).Concat([5, 5, 17]).ToArray();
        yield return new("channel_select repeats", new ChannelSelect(1, picks), [plane], [0], [0], typeof(ChannelSelectGradKernel));
        yield return new("concat 2x 64x24x14x14", new Concat(1), [Rand(rng, 64, 24, 14, 14), Rand(rng, 64, 24, 14, 14)], [0, 1], [0], typeof(ConcatGradKernel));
        yield return new("scale_bias channels", new ScaleBias(1), [plane, Rand(rng, 48), Rand(rng, 48)], [0, 1, 2], [0], typeof(ScaleBiasGradKernel));
        yield return new("scale_bias last", new ScaleBias(-1), [nhwc, Rand(rng, 192), Rand(rng, 192)], [0, 1, 2], [0], typeof(ScaleBiasGradKernel));
    }

    [Theory]
    [MemberData(nameof(ModelCases))]
    public void ModelShapesMatchTheRule(string what)
    {
        var rng = new Random(what.Length);
        var c = ModelShapes(new Random(0)).First(m => m.What == what);
        var (g, ins) = Build(c, rng);
        Assert.IsType(c.Kernel, Create(g, ins.Select(t => t.Type).ToArray()));
        Matches(what, g, ins);
        if (c.Op is BatchNorm { Mode: Mode.Train } or DropPath { Mode: Mode.Train }) Matches($"{what} forward", c.Op, c.Inputs);
    }

    [Theory]
    [MemberData(nameof(KernelTests.Seeds), MemberType = typeof(KernelTests))]
    public void RandomBroadcastsAndReductions(int seed)
    {
        var rng = new Random(1000 + seed);
        for (int i = 0; i < 12; i++)
        {
            var y = RandShape(rng, rng.Next(0, 6), 5);
            var a = Rand(rng, y);
            var b = Rand(rng, BroadcastFrom(rng, y));
            var kind = rng.Next(2) == 0 ? BinaryKind.Add : BinaryKind.Mul;
            Tensor[] ins = rng.Next(2) == 0 ? [a, b] : [b, a];
            var (g, gi) = KernelTests.GradCase(rng, new Binary(kind), ins, [0, 1]);
            Matches($"{kind} {Describe(ins)}", g, gi);
            if (y.Rank == 0) continue;
            var axes = Enumerable.Range(0, y.Rank).Where(_ => rng.Next(2) == 0).DefaultIfEmpty(y.Rank - 1).ToArray();
            var (m, mi) = KernelTests.GradCase(rng, new Mean(axes, rng.Next(2) == 0), [a], [0]);
            Matches($"mean [{string.Join(",", axes)}] {a.Shape}", m, mi);
        }
    }

    [Fact]
    public void DegenerateNormsAreExact()
    {
        var rng = new Random(3);
        // one channel: layer_norm's output is its bias, so the gradient of x is exactly zero
        var x = Rand(rng, 3, 4, 5, 1);
        var (g, ins) = KernelTests.GradCase(rng, new LayerNorm(1e-6, NormLayout.ChannelsLast), [x, Rand(rng, 1), Rand(rng, 1)], [0]);
        var out0 = Run(g, ins)[0];
        Assert.All(out0, v => Assert.Equal(0f, v));
        // two values per channel or two channels: the gradient is about eps/var of its terms, formed in double
        MatchesCase("batch_norm train two per channel", KernelTests.GradCase(rng, new BatchNorm(1e-5, 0.1, Mode.Train), Bn(rng, Rand(rng, 2, 5, 1, 1)), [0, 1, 2]));
        MatchesCase("layer_norm two channels first", KernelTests.GradCase(rng, new LayerNorm(1e-6, NormLayout.ChannelsFirst), [Rand(rng, 3, 2, 9, 7), Rand(rng, 2), Rand(rng, 2)], [0, 1, 2]));
        MatchesCase("layer_norm two channels last", KernelTests.GradCase(rng, new LayerNorm(1e-6, NormLayout.ChannelsLast), [Rand(rng, 3, 9, 2), Rand(rng, 2), Rand(rng, 2)], [0, 1, 2]));
    }

    private static void MatchesCase(string what, (Grad Op, Tensor[] Inputs) c) => Matches(what, c.Op, c.Inputs);

    [Fact]
    public void BatchNormRunningStatisticOutputsCarryNoGradient()
    {
        var rng = new Random(4);
        var bn = new BatchNorm(1e-5, 0.1, Mode.Train);
        var xs = Bn(rng, Rand(rng, 4, 3, 5, 5));
        // zero gradients for the running statistics are accepted (and change nothing)
        var (g, ins) = KernelTests.GradCase(rng, bn, xs, [0, 1, 2, 3, 4], [0, 1, 2]);
        ins[^1] = Tensor.Zeros(ins[^1].Type);
        ins[^2] = Tensor.Zeros(ins[^2].Type);
        Matches("batch_norm train, zero running-stat gradients", g, ins);
        var outs = Run(g, ins);
        Assert.All(outs[3].Concat(outs[4]), v => Assert.Equal(0f, v));
        // only a running statistic has a gradient: output 0 does not reach the loss, every gradient is zero
        var (g1, ins1) = KernelTests.GradCase(rng, bn, xs, [0, 1], [1]);
        ins1[^1] = Tensor.Zeros(ins1[^1].Type);
        Assert.All(Run(g1, ins1).SelectMany(o => o), v => Assert.Equal(0f, v));
        // a nonzero one is refused, as the rule refuses it
        var (g2, ins2) = KernelTests.GradCase(rng, bn, xs, [0], [0, 2]);
        var e = Assert.Throws<IrException>(() => Run(g2, ins2));
        Assert.Contains("not differentiable", e.Message);
    }

    /// <summary>Runs a kernel once on fresh buffers and returns its outputs.</summary>
    private static float[][] Run(Op op, Tensor[] inputs, CpuKernel? kernel = null)
    {
        kernel ??= Create(op, inputs.Select(t => t.Type).ToArray());
        var ins = inputs.Select(t => Buf.Of(t.ToDoubles().Select(v => (float)v).ToArray())).ToArray();
        var outs = op.Infer(inputs.Select(t => t.Type).ToArray()).Select(t => Buf.Of(new float[t.Shape.Elements])).ToArray();
        kernel.Run(ins, outs);
        return outs.Select(b => b.Array).ToArray();
    }

    [Fact]
    public void LargeGradientsAreBitwiseRepeatable()
    {
        var rng = new Random(5);
        var nhwc = Rand(rng, 64, 7, 7, 192);
        var plane = Rand(rng, 64, 48, 14, 14);
        var cases = new (Op Op, Tensor[] Xs, int[] Wrt)[]
        {
            (new BatchNorm(1e-5, 0.1, Mode.Train), Bn(rng, plane), [0, 1, 2]),
            (new LayerNorm(1e-6, NormLayout.ChannelsLast), [nhwc, Rand(rng, 192), Rand(rng, 192)], [0, 1, 2]),
            (new LayerNorm(1e-6, NormLayout.ChannelsFirst), [plane, Rand(rng, 48), Rand(rng, 48)], [0, 1, 2]),
            (new Grn(1e-6), [nhwc, Rand(rng, 1, 1, 1, 192), Rand(rng, 1, 1, 1, 192)], [0, 1, 2]),
            (new Binary(BinaryKind.Mul), [Rand(rng, 192), nhwc], [0, 1]),
            (new Binary(BinaryKind.Mul), [plane, Rand(rng, 64, 48, 1, 1)], [0, 1]),
            (new ScaleBias(-1), [nhwc, Rand(rng, 192), Rand(rng, 192)], [0, 1, 2]),
            (new ChannelSelect(1, Vec.Of(1, 1, 0, 7, 1)), [plane], [0]),
        };
        foreach (var (op, xs, wrt) in cases)
        {
            var (g, ins) = KernelTests.GradCase(rng, op, xs, wrt);
            var kernel = Create(g, ins.Select(t => t.Type).ToArray());
            var first = Run(g, ins, kernel);
            for (int rep = 0; rep < 4; rep++) Same(first, Run(g, ins, kernel));
            Same(first, Run(g, ins));
            void Same(float[][] a, float[][] b) =>
                Assert.True(a.Zip(b).All(p => p.First.AsSpan().SequenceEqual(p.Second)), $"grad {op.Name} changed between runs");
        }
    }

    /// <summary>
    /// A small ShiftWise_v2 training step (batch-statistics BN, seeded DropPath with a step, label smoothing) through
    /// the autodiff pass and the CPU executor, against the reference executor on the same float32 graph: the loss,
    /// logits and running statistics within 1e-5 relative, and every parameter gradient within 1e-5 of
    /// max(‖reference‖, 0.1). The floor is for gradients that vanish structurally (biases feeding a batch-statistics
    /// BN, GRN's beta before one, the stage that runs at 1×1): there both results are rounding noise of the upstream
    /// gradient. The conv2d, shift_add and linear grads run whatever kernels they have (the fallback until theirs land).
    /// </summary>
    [Fact]
    public void SmallTrainingStepMatchesTheReference()
    {
        var o = new ShiftWiseV2Options
        {
            InChans = 2, NumClasses = 5, Depths = [1, 1, 0, 1], Dims = [8, 12, 16, 16], KernelSize = [7, 5, 5, 3, 3],
            Batch = 4, Height = 24, Width = 24, DropPathRate = 0.4, LayerScaleInit = 0.5,
        };
        var m = ShiftWiseV2.Build(o, "small", DType.F32, new TrainingForm(0.1, 5));
        var w = WeightInit.Draw(m, InitScheme.Lively, 3);
        var train = AutodiffBuilder.Build(m.Graph, ShiftWiseV2.Loss);
        Assert.Contains(train.Graph.Nodes, n => n.Op is DropPath { Mode: Mode.Train });
        Assert.Contains(train.Graph.Nodes, n => n.Op is Grad { Of: BatchNorm { Mode: Mode.Train } });
        var rng = new Random(4);
        var x = new Dictionary<string, Tensor>
        {
            ["x"] = Rand(rng, 4, 2, 24, 24),
            [ShiftWiseV2.Labels] = Labels(rng, 4, 5),
            [ShiftWiseV2.Step] = Step(7),
        };
        var cpu = new Cpu.CpuExecutor(Cpu.CpuLowering.Lower(train.Graph, w, generated: false));
        var got = cpu.Run(x);
        var want = ReferenceExecutor.Run(train.Graph, w, x);
        var grads = train.Gradients.Values.ToHashSet();
        foreach (var name in train.Graph.Outputs)
        {
            double[] a = got[name].ToDoubles(), b = want[name].ToDoubles();
            double err = Math.Sqrt(a.Zip(b).Sum(p => (p.First - p.Second) * (p.First - p.Second)));
            double norm = Math.Sqrt(b.Sum(v => v * v));
            double scale = grads.Contains(name) ? Math.Max(norm, 0.1) : norm;
            Assert.True(err <= 1e-5 * scale, $"{name}: error {err:e2}, reference norm {norm:e2}");
        }
        // the step's masks and the arena are reused: a second run gives the same bits
        var again = cpu.Run(x);
        foreach (var name in train.Graph.Outputs) Assert.Equal(got[name].ToDoubles(), again[name].ToDoubles());
    }
}
