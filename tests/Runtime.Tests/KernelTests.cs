using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Runtime.Cpu;
using ShiftWise.Runtime.Cpu.Kernels;
using static ShiftWise.Runtime.Tests.KernelHarness;

namespace ShiftWise.Runtime.Tests;

/// <summary>
/// Every managed CPU kernel against the reference executor on random inputs and random shapes (odd sizes,
/// broadcasting, strided, dilated and grouped convs, SW tables smaller and larger than the band), within
/// <see cref="KernelHarness.Tol"/>; plus what the kernels refuse and the coverage of <see cref="KernelTable"/>.
/// </summary>
public sealed partial class KernelTests
{
    public static TheoryData<int> Seeds() => new(Enumerable.Range(0, 12));

    private static Vec<int> V(params int[] xs) => xs;

    // ---- conv2d ----

    /// <summary>A random valid conv: kind 0 dense, 1 grouped, 2 depthwise (channel multiplier 1 or 2).</summary>
    private static (Conv2d Op, Tensor[] Inputs) RandomConv(Random rng, int kind)
    {
        while (true)
        {
            int g = kind == 0 ? 1 : rng.Next(2, 4);
            int cpg = kind == 2 ? 1 : rng.Next(1, 4);
            if (kind == 2) g = rng.Next(1, 7);
            int c = g * cpg, o = g * rng.Next(1, 3);
            var op = new Conv2d(V(rng.Next(1, 4), rng.Next(1, 4)), V(rng.Next(0, 3), rng.Next(0, 3)),
                V(rng.Next(1, 3), rng.Next(1, 3)), g);
            var x = Rand(rng, rng.Next(1, 3), c, rng.Next(1, 11), rng.Next(1, 11));
            var w = Rand(rng, o, cpg, rng.Next(1, 5), rng.Next(1, 5));
            Tensor[] ins = rng.Next(2) == 0 ? [x, w] : [x, w, Rand(rng, o)];
            try
            {
                op.Infer(ins.Select(t => t.Type).ToArray());
                return (op, ins);
            }
            catch (IrException)
            {
                // output would be empty: draw again
            }
        }
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Conv2dRandom(int seed)
    {
        var rng = new Random(seed);
        for (int kind = 0; kind < 3; kind++)
        {
            for (int i = 0; i < 4; i++)
            {
                var (op, ins) = RandomConv(rng, kind);
                Matches($"conv kind {kind} {Describe(ins)} {op.Stride} {op.Padding} {op.Dilation} g{op.Groups}",
                    op, ins);
            }
        }
    }

    [Theory]
    [InlineData(2, 16, 23, 19, 24, 3, 3, 1, 1, 1, 1)] // dense 3×3, parallel bands
    [InlineData(1, 32, 17, 17, 48, 1, 1, 1, 0, 1, 1)] // 1×1 pointwise, B = x directly
    [InlineData(2, 3, 32, 32, 16, 4, 4, 4, 0, 1, 1)] // stem: 4×4 stride 4
    [InlineData(1, 8, 30, 30, 16, 2, 2, 2, 0, 1, 1)] // downsample
    [InlineData(2, 24, 21, 21, 24, 7, 7, 1, 3, 1, 24)] // depthwise 7×7
    [InlineData(1, 16, 20, 20, 32, 5, 5, 1, 4, 2, 16)] // depthwise, multiplier 2, dilated
    [InlineData(1, 12, 15, 15, 18, 3, 3, 2, 2, 2, 3)] // grouped, strided, dilated
    [InlineData(3, 12, 9, 9, 12, 3, 3, 1, 1, 1, 1)] // more images than cores
    [InlineData(32, 96, 2, 2, 192, 2, 2, 2, 0, 1, 1)] // downsample onto 1x1 maps: samples batched into one GEMM
    [InlineData(5, 24, 7, 7, 48, 2, 2, 2, 0, 1, 1)] // batched, 3x3 maps
    [InlineData(4, 1, 28, 28, 24, 4, 4, 4, 0, 1, 1)] // grey stem: one input channel, GEMM not direct loops
    [InlineData(6, 20, 7, 7, 40, 3, 3, 1, 1, 1, 20)] // depthwise on 7x7: flat rows of the padded width
    [InlineData(3, 16, 1, 1, 16, 3, 3, 1, 2, 1, 16)] // depthwise 1x1 map padded to a 3x3 output
    public void Conv2dLarge(int n, int c, int h, int w, int o, int kh, int kw, int stride, int pad, int dil, int groups)
    {
        var rng = new Random(n * 1000 + c * 10 + kh);
        var op = new Conv2d(V(stride, stride), V(pad, pad), V(dil, dil), groups);
        Matches($"conv {n}x{c}x{h}x{w} -> {o} k{kh}x{kw} s{stride} p{pad} d{dil} g{groups}", op,
            Rand(rng, n, c, h, w), Rand(rng, o, c / groups, kh, kw), Rand(rng, o));
    }

    // ---- norms and affine ----

    [Theory]
    [MemberData(nameof(Seeds))]
    public void BatchNormEval(int seed)
    {
        var rng = new Random(seed);
        var x = Rand(rng, RandShape(rng, rng.Next(2, 5), seed < 6 ? 6 : 20));
        int c = x.Shape[1];
        var op = new BatchNorm(1e-5, 0.1, Mode.Eval);
        // running variances in [0.5, 1.5]
        Matches($"batch_norm {x.Shape}", op, x, Rand(rng, c), Rand(rng, c), Rand(rng, c),
            Rand(rng, new Shape(c), 0.5, 1));
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void ScaleBias(int seed)
    {
        var rng = new Random(seed);
        var x = Rand(rng, RandShape(rng, rng.Next(1, 5), seed < 6 ? 6 : 20));
        int axis = rng.Next(-x.Shape.Rank, x.Shape.Rank), c = x.Shape[x.Shape.Axis(axis)];
        Matches($"scale_bias {x.Shape} axis {axis}", new ScaleBias(axis), x, Rand(rng, c), Rand(rng, c));
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void LayerNorm(int seed)
    {
        var rng = new Random(seed);
        foreach (var layout in new[] { NormLayout.ChannelsFirst, NormLayout.ChannelsLast })
        {
            // shapes up to 19×19 positions cross the 256-position block of the channels_first path
            var x = Rand(rng, RandShape(rng, rng.Next(2, 5), seed < 6 ? 7 : 19), 2, 0.5);
            var op = new LayerNorm(1e-6, layout);
            int c = x.Shape[op.Axis(x.Shape.Rank)];
            Matches($"layer_norm {layout} {x.Shape}", op, x, Rand(rng, c), Rand(rng, c));
        }
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Grn(int seed)
    {
        var rng = new Random(seed);
        var x = Rand(rng, RandShape(rng, 4, seed < 6 ? 5 : 13));
        var g = Rand(rng, 1, 1, 1, x.Shape[3]);
        var op = new Grn(1e-6);
        Matches($"grn {x.Shape}", op, x, g, Rand(rng, 1, 1, 1, x.Shape[3]));
        Matches($"grn no beta {x.Shape}", op, x, g);
    }

    // ---- element-wise ----

    [Theory]
    [InlineData("gelu")]
    [InlineData("relu")]
    [InlineData("sigmoid")]
    public void Unary(string name)
    {
        var rng = new Random(name.Length);
        var op = new Unary(Enum.Parse<UnaryKind>(name, true));
        foreach (var n in new[] { 1, 7, 8, 9, 33, 1000, 40_000 })
        {
            Matches($"{name} [{n}]", op, Rand(rng, new Shape(n), 6));
        }
        Matches($"{name} 4-d", op, Rand(rng, 2, 3, 5, 7));
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void BinaryBroadcast(int seed)
    {
        var rng = new Random(seed);
        foreach (var kind in new[] { BinaryKind.Add, BinaryKind.Mul })
        {
            for (int i = 0; i < 6; i++)
            {
                var y = RandShape(rng, rng.Next(0, 5), 6);
                var (a, b) = (BroadcastFrom(rng, y), BroadcastFrom(rng, y));
                if (rng.Next(4) == 0) a = y;
                Matches($"{kind} {a} {b}", new Binary(kind), Rand(rng, a), Rand(rng, b));
            }
        }
    }

    [Theory]
    [InlineData(new[] { 2, 8, 9, 11 }, new[] { 2, 8, 9, 11 }, "BinaryKernel[1x1584,ab]")]
    [InlineData(new[] { 2, 8, 9, 11 }, new[] { 1, 8, 1, 1 }, "BinaryKernel[16x99,a1]")]
    [InlineData(new[] { 2, 8, 9, 11 }, new[] { 2, 8, 1, 1 }, "BinaryKernel[16x99,a1]")]
    [InlineData(new[] { 1, 8, 1, 1 }, new[] { 2, 8, 9, 11 }, "BinaryKernel[16x99,1b]")]
    [InlineData(new[] { 4, 5, 6, 64 }, new[] { 64 }, "BinaryKernel[120x64,ab]")]
    [InlineData(new[] { 3, 300, 300 }, new int[0], "BinaryKernel[1x270000,a1]")]
    public void BinaryFastPaths(int[] a, int[] b, string label)
    {
        var rng = new Random(a.Sum());
        foreach (var kind in new[] { BinaryKind.Add, BinaryKind.Mul })
        {
            var op = new Binary(kind);
            var (ta, tb) = (Rand(rng, a), Rand(rng, b));
            Assert.Equal(label, Create(op, [ta.Type, tb.Type]).Label);
            Matches($"{kind} {ta.Shape} {tb.Shape}", op, ta, tb);
        }
    }

    [Fact]
    public void DropPathEvalIsACopy() =>
        Matches("drop_path eval", new DropPath(0.3, Mode.Eval, 7), Rand(new Random(1), 3, 4, 5, 6));

    // ---- reductions ----

    [Theory]
    [InlineData(new[] { 2, 8, 9, 11 }, new[] { 2, 3 }, "rows")]
    [InlineData(new[] { 2, 8, 9, 11 }, new[] { -1 }, "rows")]
    [InlineData(new[] { 2, 8, 9, 11 }, new[] { 1 }, "columns")]
    [InlineData(new[] { 2, 9, 11, 300 }, new[] { 1, 2 }, "columns")]
    [InlineData(new[] { 2, 8, 9, 11 }, new[] { 0 }, "columns")]
    [InlineData(new[] { 2, 8, 9, 11 }, new[] { 0, 1, 2, 3 }, "rows")]
    [InlineData(new[] { 2, 8, 9, 11 }, new[] { 0, 2 }, "general")]
    [InlineData(new[] { 2, 8, 9, 11 }, new[] { 1, 3 }, "general")]
    [InlineData(new[] { 1, 8, 1, 11 }, new[] { 1, 2 }, "columns")]
    [InlineData(new[] { 64, 100, 7, 7 }, new[] { 2, 3 }, "rows")]
    [InlineData(new[] { 5 }, new[] { 0 }, "rows")]
    public void Mean(int[] shape, int[] axes, string path)
    {
        var rng = new Random(shape.Sum() + axes.Sum());
        var x = Rand(rng, shape);
        foreach (bool keep in new[] { false, true })
        {
            var op = new Mean(axes, keep);
            Assert.Equal($"MeanKernel[{path}]", Create(op, [x.Type]).Label);
            Matches($"mean {x.Shape} axes {string.Join(",", axes)} keepdim {keep}", op, x);
        }
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void MeanRandomAxes(int seed)
    {
        var rng = new Random(seed);
        var x = Rand(rng, RandShape(rng, rng.Next(1, 5), 7));
        var axes = Enumerable.Range(0, x.Shape.Rank).Where(_ => rng.Next(2) == 0).DefaultIfEmpty(0).ToArray();
        Matches($"mean {x.Shape} axes {string.Join(",", axes)}", new Mean(axes, rng.Next(2) == 0), x);
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Softmax(int seed)
    {
        var rng = new Random(seed);
        var x = Rand(rng, RandShape(rng, rng.Next(1, 5), seed < 6 ? 6 : 19), 4);
        int axis = rng.Next(-x.Shape.Rank, x.Shape.Rank);
        Matches($"softmax {x.Shape} axis {axis}", new Softmax(axis), x);
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void CrossEntropy(int seed)
    {
        var rng = new Random(seed);
        int n = rng.Next(1, 9), k = rng.Next(1, 40);
        var logits = Rand(rng, new Shape(n, k), 3);
        foreach (double eps in new[] { 0.0, 0.1, 1.0 })
        {
            Matches($"cross_entropy {n}x{k} eps {eps}", new CrossEntropy(eps), logits, Labels(rng, n, k));
        }
    }

    [Fact]
    public void CrossEntropyRejectsALabelOutOfRange()
    {
        var op = new CrossEntropy(0);
        var k = Create(op, [TensorType.Of(DType.F32, 2, 3), TensorType.Of(DType.I64, 2)]);
        var e = Assert.Throws<IrException>(() =>
            k.Run([Buf.Of(new float[6]), Buf.Of([1f, 3f])], [Buf.Of(new float[1])]));
        Assert.Contains("label 3", e.Message);
        Assert.Contains("%y", e.Message);
    }

    // ---- layout ----

    [Theory]
    [MemberData(nameof(Seeds))]
    public void ChannelSelectConcatReshape(int seed)
    {
        var rng = new Random(seed);
        var x = Rand(rng, RandShape(rng, rng.Next(1, 5), 6));
        int axis = rng.Next(-x.Shape.Rank, x.Shape.Rank), a = x.Shape.Axis(axis);
        var idx = Enumerable.Range(0, rng.Next(0, 6)).Select(_ => rng.Next(x.Shape[a])).ToArray();
        Matches($"channel_select {x.Shape} axis {axis} [{string.Join(",", idx)}]", new ChannelSelect(axis, idx), x);

        var parts = Enumerable.Range(0, rng.Next(1, 4))
            .Select(_ => Rand(rng, x.Shape.With(a, rng.Next(0, 4)))).ToArray();
        Matches($"concat axis {axis} {Describe(parts)}", new Concat(axis), parts);

        var to = x.Shape.Reverse().ToArray();
        Matches($"reshape {x.Shape}", new Reshape(to), x);
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void PermuteRandom(int seed)
    {
        var rng = new Random(seed);
        var x = Rand(rng, RandShape(rng, rng.Next(1, 6), 6));
        var perm = Enumerable.Range(0, x.Shape.Rank).OrderBy(_ => rng.Next()).ToArray();
        Matches($"permute {x.Shape} [{string.Join(",", perm)}]", new Permute(perm), x);
    }

    [Theory]
    [InlineData(new[] { 2, 24, 17, 19 }, new[] { 0, 2, 3, 1 }, "Transpose")]
    [InlineData(new[] { 2, 17, 19, 24 }, new[] { 0, 3, 1, 2 }, "Transpose")]
    [InlineData(new[] { 1, 64, 56, 56 }, new[] { 0, 2, 3, 1 }, "Transpose")]
    [InlineData(new[] { 7, 9 }, new[] { 1, 0 }, "Transpose")]
    [InlineData(new[] { 2, 3, 4, 5 }, new[] { 0, 1, 2, 3 }, "Copy")]
    [InlineData(new[] { 2, 1, 4, 5 }, new[] { 1, 0, 2, 3 }, "Copy")]
    [InlineData(new[] { 2, 3, 4, 5 }, new[] { 3, 1, 2, 0 }, "General")]
    [InlineData(new[] { 2, 3, 4, 5 }, new[] { 2, 0, 3, 1 }, "General")]
    public void PermutePaths(int[] shape, int[] perm, string path)
    {
        var x = Rand(new Random(shape.Sum()), shape);
        var op = new Permute(perm);
        Assert.Equal($"PermuteKernel[{path}]", Create(op, [x.Type]).Label);
        Matches($"permute {x.Shape} [{string.Join(",", perm)}]", op, x);
    }

    // ---- linear ----

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Linear(int seed)
    {
        var rng = new Random(seed);
        var x = Rand(rng, RandShape(rng, rng.Next(1, 4), seed < 6 ? 6 : 40));
        int k = x.Shape[^1], n = rng.Next(1, seed < 6 ? 8 : 70);
        Matches($"linear {x.Shape} -> {n}", new Linear(), x, Rand(rng, n, k), Rand(rng, n));
        Matches($"linear no bias {x.Shape} -> {n}", new Linear(), x, Rand(rng, n, k));
    }

    // ---- what the kernels refuse, and coverage ----

    /// <summary>
    /// Train-mode batch_norm and drop_path used to be refused; they run now (their values are checked by
    /// BatchNormTrainForward and DropPathTrainForward). What remains refused is what the ops themselves refuse.
    /// </summary>
    [Fact]
    public void TrainModeForwardKernelsAreBoundAndItsInvalidInputsRefused()
    {
        var x = TensorType.Of(DType.F32, 2, 3, 4, 4);
        var c = TensorType.Of(DType.F32, 3);
        Assert.IsType<BatchNormKernel>(Create(new BatchNorm(1e-5, 0.1, Mode.Train), [x, c, c, c, c]));
        Assert.IsType<DropPathKernel>(Create(new DropPath(0.1, Mode.Train, 1), [x]));
        Assert.IsType<DropPathKernel>(Create(new DropPath(0.1, Mode.Train, 1), [x, TensorType.Of(DType.I64)]));
        var single = TensorType.Of(DType.F32, 1, 3, 1, 1);
        var bn = Assert.Throws<IrException>(() => Create(new BatchNorm(1e-5, 0.1, Mode.Train), [single, c, c, c, c]));
        Assert.Contains("more than one value per channel", bn.Message);
        var dp = Assert.Throws<IrException>(() => Create(new DropPath(0.1, Mode.Train, 1), [x, TensorType.Of(DType.F32)]));
        Assert.Contains("must be an i64 scalar", dp.Message);
    }

    [Fact]
    public void NonF32TypesAreRefusedNamingTheNode()
    {
        var x = TensorType.Of(DType.F64, 1, 2, 5, 5);
        var w = TensorType.Of(DType.F64, 4, 2, 3, 3);
        var e = Assert.Throws<IrException>(() => Create(Conv2d.Simple(1), [x, w]));
        Assert.Contains("%y (conv2d)", e.Message);
        Assert.Contains("f32", e.Message);
        var labels32 = Create(new CrossEntropy(0), [TensorType.Of(DType.F32, 2, 3), TensorType.Of(DType.I32, 2)]);
        Assert.IsType<CrossEntropyKernel>(labels32);
    }

    private sealed record Unknown : Op
    {
        public override string Name => "mystery";

        public override TensorType[] Infer(IReadOnlyList<TensorType> inputs) => [inputs[0]];
    }

    [Fact]
    public void AnUnknownOpIsRefusedNamingNodeAndOp()
    {
        var e = Assert.Throws<IrException>(() => Create(new Unknown(), [TensorType.Of(DType.F32, 2)]));
        Assert.Contains("%y (mystery)", e.Message);
        Assert.Contains("'mystery'", e.Message);
    }

    /// <summary>Op names with no CPU kernel on purpose, and why. Empty: every op the parser knows has one.</summary>
    private static readonly Dictionary<string, string> Rejected = new()
    {
        ["cast"] = "the CPU target computes in float32 only: casts come from --precision bf16/fp16, a CUDA option",
    };

    [Fact]
    public void KernelTableCoversEveryOpName()
    {
        var samples = Coverage.Samples().ToDictionary(s => s.Op.Name, s => s);
        foreach (var name in OpTable.Names)
        {
            Assert.True(samples.TryGetValue(name, out var sample), $"no coverage sample for op '{name}'");
            if (Rejected.ContainsKey(name))
            {
                var e = Assert.Throws<IrException>(() => Create(sample.Op, sample.Inputs.Select(t => t.Type).ToArray()));
                Assert.Contains($"no kernel for op '{name}'", e.Message);
                continue;
            }
            Create(sample.Op, sample.Inputs.Select(t => t.Type).ToArray());  // throws when no kernel takes the op
            Matches($"coverage {name}", sample.Op, sample.Inputs);
        }
    }
}
