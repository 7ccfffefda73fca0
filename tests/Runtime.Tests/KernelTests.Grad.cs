using ShiftWise.Frontend.Tables;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;
using ShiftWise.Runtime.Cpu.Kernels;
using static ShiftWise.Runtime.Tests.KernelHarness;

namespace ShiftWise.Runtime.Tests;

/// <summary>
/// The grad kernels (the backward graph's ops) against the float64 backward rules, within <see cref="KernelHarness.Tol"/>:
/// every forward op kind, random shapes, random subsets of the inputs differentiated, and the loss seed (dy=[]).
/// Also the training-mode forward kernels (batch-statistics BatchNorm, DropPath with a step input).
/// </summary>
public sealed partial class KernelTests
{
    /// <summary>
    /// A grad node's inputs for <paramref name="fwd"/> applied to <paramref name="xs"/>: the inputs, the forward outputs
    /// (computed by the reference, rounded to f32), and a random gradient for each output in <paramref name="dy"/>.
    /// </summary>
    internal static (Grad Op, Tensor[] Inputs) GradCase(Random rng, Op fwd, Tensor[] xs, int[] wrt, int[]? dy = null)
    {
        var ys = ReferenceExecutor.Evaluate(fwd, xs);
        dy ??= [0];
        var gys = dy.Select(j => Rand(rng, ys[j].Shape)).ToArray();
        return (new Grad(fwd, wrt, dy), [.. xs, .. ys, .. gys]);
    }

    /// <summary>Random non-empty subsets of the float inputs.</summary>
    private static int[] Wrt(Random rng, Tensor[] xs, params int[] except)
    {
        var floats = Enumerable.Range(0, xs.Length).Where(i => xs[i].DType == DType.F32 && !except.Contains(i)).ToArray();
        var pick = floats.Where(_ => rng.Next(3) > 0).ToArray();
        return pick.Length > 0 ? pick : [floats[rng.Next(floats.Length)]];
    }

    private static void GradMatches(string what, Random rng, Op fwd, Tensor[] xs, int[]? wrt = null, int[]? dy = null)
    {
        var (g, ins) = GradCase(rng, fwd, xs, wrt ?? Wrt(rng, xs), dy);
        Matches($"grad {what} wrt [{string.Join(",", g.Wrt)}] {Describe(xs)}", g, ins);
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void GradConv2d(int seed)
    {
        var rng = new Random(seed);
        var (op, ins) = RandomConv(rng, seed % 3);
        GradMatches($"conv2d {op}", rng, op, ins);
    }

    [Theory]
    [InlineData(2, 16, 14, 14, 24, 3, 3, 2, 1, 1, 1)] // a downsample conv
    [InlineData(2, 1, 28, 28, 12, 3, 3, 2, 1, 1, 1)]  // the stem
    [InlineData(2, 18, 14, 14, 90, 3, 3, 1, 2, 1, 18)] // an SW small conv: one input, five outputs per group
    [InlineData(3, 24, 1, 1, 6, 1, 1, 1, 0, 1, 1)]    // SE 1x1 on a pooled map
    public void GradConv2dModelShapes(int n, int c, int h, int w, int o, int kh, int kw, int stride, int pad, int dil, int groups)
    {
        var rng = new Random(n * 31 + c);
        var op = new Conv2d(V(stride, stride), V(pad, pad), V(dil, dil), groups);
        Tensor[] xs = [Rand(rng, n, c, h, w), Rand(rng, o, c / groups, kh, kw), Rand(rng, o)];
        GradMatches("conv2d", rng, op, xs, [0, 1, 2]);
        GradMatches("conv2d no bias", rng, op, xs[..2], [0, 1]);
    }

    [Theory]
    [MemberData(nameof(SwConfigs))]
    public void GradShiftAdd(int big, int small, int seed)
    {
        var rng = new Random(seed);
        var (s, h, w) = Sw(big, small, rng);
        var x = Rand(rng, rng.Next(1, 3), s.Rep * s.N, h + 2 * s.Extra, w + 2 * s.Extra);
        var dy = new[] { new[] { 0, 1, 2 }, [0], [1, 2], [2] }[seed % 4];
        GradMatches($"shift_add B={big} k={small}", rng, s, [x], [0], dy);
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void GradNorms(int seed)
    {
        var rng = new Random(seed);
        var x = Rand(rng, RandShape(rng, 4, 5));
        int c = x.Shape[1];
        GradMatches("batch_norm eval", rng, new BatchNorm(1e-5, 0.1, Mode.Eval),
            [x, Rand(rng, c), Rand(rng, c), Rand(rng, c), Rand(rng, new Shape(c), 0.5, 1)], null);
        var xt = Rand(rng, rng.Next(2, 4), c, rng.Next(1, 5), rng.Next(1, 5));
        GradMatches("batch_norm train", rng, new BatchNorm(1e-5, 0.1, Mode.Train),
            [xt, Rand(rng, c), Rand(rng, c), Rand(rng, c), Rand(rng, new Shape(c), 0.5, 1)], Wrt(rng, [xt, xt, xt]), [0]);
        foreach (var layout in new[] { NormLayout.ChannelsFirst, NormLayout.ChannelsLast })
        {
            int cl = layout == NormLayout.ChannelsFirst ? x.Shape[1] : x.Shape[3];
            GradMatches($"layer_norm {layout}", rng, new LayerNorm(1e-6, layout), [x, Rand(rng, cl), Rand(rng, cl)]);
        }
        var h = Rand(rng, RandShape(rng, 4, 5));
        var gamma = Rand(rng, 1, 1, 1, h.Shape[3]);
        GradMatches("grn", rng, new Grn(1e-6), [h, gamma, Rand(rng, 1, 1, 1, h.Shape[3])]);
        GradMatches("grn no beta", rng, new Grn(1e-6), [h, gamma]);
        GradMatches("scale_bias", rng, new ScaleBias(1), [x, Rand(rng, c), Rand(rng, c)]);
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void GradElementwise(int seed)
    {
        var rng = new Random(seed);
        var x = Rand(rng, RandShape(rng, rng.Next(1, 5)), 3);
        foreach (var k in new[] { UnaryKind.Gelu, UnaryKind.Relu, UnaryKind.Sigmoid }) GradMatches($"{k}", rng, new Unary(k), [x], [0]);
        foreach (var k in new[] { BinaryKind.Add, BinaryKind.Mul })
        {
            var b = Rand(rng, BroadcastFrom(rng, x.Shape));
            GradMatches($"{k} broadcast", rng, new Binary(k), rng.Next(2) == 0 ? [x, b] : [b, x]);
        }
        var dp = new DropPath(0.4, Mode.Train, seed);
        var step = Tensor.FromDoubles(TensorType.Of(DType.I64), [seed * 3]);
        GradMatches("drop_path train", rng, dp, [x, step], [0]);
        GradMatches("drop_path train no step", rng, dp, [x], [0]);
        GradMatches("drop_path eval", rng, dp with { Mode = Mode.Eval }, [x], [0]);
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void GradReductionsAndLayout(int seed)
    {
        var rng = new Random(seed);
        var x = Rand(rng, RandShape(rng, 4, 5));
        var axes = Enumerable.Range(0, 4).Where(_ => rng.Next(2) == 0).DefaultIfEmpty(2).ToArray();
        GradMatches("mean", rng, new Mean(axes, rng.Next(2) == 0), [x], [0]);
        GradMatches("softmax", rng, new Softmax(rng.Next(-4, 4)), [x], [0]);
        int n = rng.Next(1, 6), k = rng.Next(2, 9);
        var logits = Rand(rng, new Shape(n, k), 3);
        GradMatches("cross_entropy", rng, new CrossEntropy(rng.Next(2) * 0.1), [logits, Labels(rng, n, k)], [0]);
        var (ce, ceIns) = GradCase(rng, new CrossEntropy(0.1), [logits, Labels(rng, n, k)], [0], []);
        Matches("cross_entropy as the loss seed (dy=[])", ce, ceIns);
        int c = x.Shape[1];
        var idx = Enumerable.Range(0, rng.Next(1, 2 * c)).Select(_ => rng.Next(c)).ToArray();
        GradMatches("channel_select", rng, new ChannelSelect(1, idx), [x], [0]);
        var other = Rand(rng, x.Shape.With(1, rng.Next(1, 4)));
        GradMatches("concat", rng, new Concat(1), [x, other]);
        var perm = Enumerable.Range(0, 4).OrderBy(_ => rng.Next()).ToArray();
        GradMatches("permute", rng, new Permute(perm), [x], [0]);
        GradMatches("reshape", rng, new Reshape(V((int)x.Shape.Elements)), [x], [0]);
        GradMatches("linear", rng, new Linear(), [x, Rand(rng, 3, x.Shape[3]), Rand(rng, 3)]);
        GradMatches("linear no bias", rng, new Linear(), [x, Rand(rng, 3, x.Shape[3])]);
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void BatchNormTrainForward(int seed)
    {
        var rng = new Random(seed);
        int c = rng.Next(1, 6);
        var x = Rand(rng, rng.Next(2, 4), c, rng.Next(1, 6), rng.Next(1, 6));
        Matches("batch_norm train", new BatchNorm(1e-5, 0.1, Mode.Train),
            x, Rand(rng, c), Rand(rng, c), Rand(rng, c), Rand(rng, new Shape(c), 0.5, 1));
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void DropPathTrainForward(int seed)
    {
        var rng = new Random(seed);
        var x = Rand(rng, rng.Next(1, 9), rng.Next(1, 5), rng.Next(1, 5));
        Matches("drop_path train", new DropPath(0.3, Mode.Train, seed), x, Tensor.FromDoubles(TensorType.Of(DType.I64), [seed]));
        Matches("drop_path train no step", new DropPath(0.3, Mode.Train, seed), x);
    }

    /// <summary>The forward ops whose backward still runs through the float64 fallback. Shrinks as kernels land.</summary>
    // cast: no CPU kernel at all (the CPU target computes in float32 only; KernelTests.Rejected); gemm_grn_fold:
    // inference-only, no backward rule at all (BackwardTests.InferenceOnlyFusionsRefuseBackward)
    private static readonly HashSet<string> FallbackOps =
        ["sw_cross", "fused_shiftwise", "gemm", "cast", "gemm_grn_fold"];

    [Fact]
    public void EveryTrainingOpHasAFloat32GradKernel()
    {
        foreach (var (op, ins) in Coverage.Samples())
        {
            if (op is Grad || FallbackOps.Contains(op.Name)) continue;
            var floats = Enumerable.Range(0, ins.Length).Where(i => ins[i].DType == DType.F32).ToArray();
            var (g, gi) = GradCase(new Random(1), op, ins, floats);
            var k = Create(g, gi.Select(t => t.Type).ToArray());
            Assert.False(k is ReferenceGradKernel, $"grad of {op.Name} runs the float64 fallback");
        }
    }
}
