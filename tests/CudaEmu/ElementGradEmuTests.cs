using ShiftWise.CodegenCuda;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Ops;
using ShiftWise.Passes;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// The training graph's element-wise kernels on the CUDA target (<c>ElementGradLowering</c>): the grads of gelu,
/// relu, sigmoid, add and mul with broadcasting, mean and reshape; cross_entropy forward and backward (dy=[0] and the
/// dy=[] seed); train-mode drop_path forward and backward. Each case is a one-node graph with random inputs (labels
/// in range, a random step); its kernels follow the source conventions (no atomics), compile with the real NVRTC for
/// compute_80 and compute_90 without local memory, and, run in emulation, match the float64 reference executor to a
/// relative L2 error of 1e-5 and give the same bits when run twice.
/// </summary>
public sealed class ElementGradEmuTests
{
    private const double Tol = 1e-5;

    private static TensorType F(params int[] d) => TensorType.Of(DType.F32, d);

    private static readonly TensorType Step = TensorType.Of(DType.I64);

    private static TensorType Labels(int n) => TensorType.Of(DType.I64, n);

    private static Graph One(string label, Op op, params TensorType[] inputs) => OpCatalog.OneNode(label, op, inputs);

    private static Graph GradOf(string label, Op of, Vec<int> wrt, TensorType[] fwd, bool seed = false)
    {
        var y = of.Infer(fwd)[0];
        TensorType[] ins = seed ? [.. fwd, y] : [.. fwd, y, y];
        return One("grad_" + label, new Grad(of, wrt, seed ? Vec<int>.Empty : Vec.Of(0)), ins);
    }

    private static int[] RandomShape(Random r, int rank) =>
        Enumerable.Range(0, rank).Select(d => d == 0 ? r.Next(1, 4) : r.Next(1, 14)).ToArray();

    private static int BlockOf(Random r) => 32 << r.Next(6);

    /// <summary>Every case by label: model shapes (sw-fmnist's stages at batch 2) and random ones.</summary>
    private static readonly Dictionary<string, OneNodeEmu.Case> Cases = BuildCases();

    private static Dictionary<string, OneNodeEmu.Case> BuildCases()
    {
        var c = new Dictionary<string, OneNodeEmu.Case>();
        var r = new Random(21);
        // unary grads: sw-fmnist's gelu after pwconv1 (channels last), the SE's relu and sigmoid; random shapes
        c["gelu_fmnist"] = new(GradOf("gelu", new Unary(UnaryKind.Gelu), Vec.Of(0), [F(2, 7, 7, 96)]), 256);
        c["relu_se"] = new(GradOf("relu", new Unary(UnaryKind.Relu), Vec.Of(0), [F(2, 12, 1, 1)]), 32);
        c["sigmoid_se"] = new(GradOf("sigmoid", new Unary(UnaryKind.Sigmoid), Vec.Of(0), [F(2, 48, 1, 1)]), 64);
        foreach (var (k, i) in new[] { UnaryKind.Gelu, UnaryKind.Relu, UnaryKind.Sigmoid }.Select((k, i) => (k, i)))
        {
            for (int s = 0; s < 2; s++)
            {
                var x = F(RandomShape(r, 2 + (i + s) % 3));
                c[$"{k}_random{s}".ToLowerInvariant()] = new(GradOf($"u{i}{s}", new Unary(k), Vec.Of(0), [x]),
                    BlockOf(r));
            }
        }
        // add and mul: the residual, the SE's per-(sample, channel) scale, the layer scale; every wrt subset
        var mul = new Binary(BinaryKind.Mul);
        var add = new Binary(BinaryKind.Add);
        Vec<int>[] wrts = [Vec.Of(0, 1), Vec.Of(0), Vec.Of(1)];
        for (int w = 0; w < 3; w++)
        {
            c[$"add_residual_w{w}"] = new(GradOf($"res{w}", add, wrts[w], [F(2, 24, 7, 7), F(2, 24, 7, 7)]), 128);
            c[$"mul_se_w{w}"] = new(GradOf($"se{w}", mul, wrts[w], [F(2, 48, 4, 4), F(2, 48, 1, 1)]), 64);
            c[$"mul_layer_scale_w{w}"] = new(GradOf($"ls{w}", mul, wrts[w], [F(2, 24, 7, 7), F(1, 24, 1, 1)]), 256);
        }
        // one block per element: few channels, long sums (N·H·W > 1024)
        c["mul_layer_scale_block"] = new(GradOf("lsb", mul, Vec.Of(1, 0), [F(5, 7, 17, 19), F(1, 7, 1, 1)]), 1024);
        c["add_bias_block"] = new(GradOf("abb", add, Vec.Of(1), [F(3, 5, 23, 21), F(5, 1, 1)]), 64);
        for (int s = 0; s < 8; s++)
        {
            int rank = 2 + s % 3;
            var o = RandomShape(r, rank);
            int[] Drop(int[] d) => d.Select(v => r.Next(3) == 0 ? 1 : v).Skip(r.Next(2) == 0 ? 0 : r.Next(rank))
                .ToArray();
            var (a, b) = (Drop(o), Drop(o));
            if (s % 2 == 0) a = o;
            var op = s % 3 == 0 ? add : mul;
            var fwd = s % 4 == 1 ? new[] { F(b), F(a) } : [F(a), F(b)];
            c[$"{op.Kind.ToString().ToLowerInvariant()}_random{s}"] = new(GradOf($"b{s}", op, wrts[s % 3], fwd),
                BlockOf(r));
        }
        // mean: the SE's pool (keepdim) and the head's pool; a rank-2 and a rank-3 one
        c["mean_se"] = new(GradOf("mse", new Mean(Vec.Of(2, 3), true), Vec.Of(0), [F(2, 48, 4, 4)]), 64);
        c["mean_head"] = new(GradOf("mhead", new Mean(Vec.Of(2, 3), false), Vec.Of(0), [F(2, 192, 1, 1)]), 256);
        c["mean_random0"] = new(GradOf("mr0", new Mean(Vec.Of(1), false), Vec.Of(0), [F(3, 37)]), 32);
        c["mean_random1"] = new(GradOf("mr1", new Mean(Vec.Of(-1, -2), true), Vec.Of(0), [F(1, 5, 13)]), 128);
        // reshape: the layer scale's view of gamma
        c["reshape_gamma"] = new(GradOf("view", new Reshape(Vec.Of(1, 24, 1, 1)), Vec.Of(0), [F(24)]), 32);
        // drop_path in train mode, forward and backward, with and without the step input; eval-mode backward
        foreach (var (label, p, seed, x) in new[]
        {
            ("fmnist", 0.3, 5L, F(16, 24, 7, 7)), ("batch1", 0.5, 11L, F(1, 5, 3)), ("odd", 0.2, -3L, F(7, 3, 5, 1)),
        })
        {
            var d = new DropPath(p, Mode.Train, seed);
            c[$"drop_path_{label}_step"] = new(One("dp" + label, d, x, Step), BlockOf(r));
            c[$"drop_path_{label}"] = new(One("dpn" + label, d, x), BlockOf(r));
            c[$"drop_path_grad_{label}_step"] = new(GradOf("dp" + label, d, Vec.Of(0), [x, Step]), BlockOf(r));
            c[$"drop_path_grad_{label}"] = new(GradOf("dpn" + label, d, Vec.Of(0), [x]), BlockOf(r));
        }
        c["drop_path_grad_eval"] = new(GradOf("dpe", new DropPath(0.3, Mode.Eval, 0), Vec.Of(0), [F(3, 4)]), 32);
        // cross_entropy: sw-fmnist's 10 classes at batch 128; batch 1; many classes; with and without smoothing
        foreach (var (label, n, k, eps) in new[]
        {
            ("fmnist", 128, 10, 0.1), ("batch1", 1, 7, 0.0), ("wide", 5, 1000, 0.1), ("odd", 37, 3, 0.25),
        })
        {
            var ce = new CrossEntropy(eps);
            var fwd = new[] { F(n, k), Labels(n) };
            int block = BlockOf(r);
            c[$"cross_entropy_{label}"] = new(One("ce" + label, ce, fwd), block, k);
            c[$"cross_entropy_grad_{label}_seed"] = new(GradOf("ces" + label, ce, Vec.Of(0), fwd, seed: true),
                block, k);
            c[$"cross_entropy_grad_{label}_gy"] = new(GradOf("ceg" + label, ce, Vec.Of(0), fwd), block, k);
        }
        return c;
    }

    public static TheoryData<string> CaseLabels() => new(Cases.Keys.Order(StringComparer.Ordinal));

    /// <summary>
    /// <see cref="OneNodeEmu.Check"/> on random inputs from <paramref name="seed"/> (floats uniform in ±3, labels
    /// below <paramref name="classes"/>, a step): conventions, NVRTC, error against the reference and bit-identical
    /// reruns; returns the error.
    /// </summary>
    private static double Check(Graph g, CudaOptions o, int classes, int seed) =>
        OneNodeEmu.Check(g, o, OneNodeEmu.Inputs(g, seed, scale: 3, classes), Tol);

    [Theory]
    [MemberData(nameof(CaseLabels))]
    public void KernelMatchesTheReference(string label)
    {
        var c = Cases[label];
        Check(c.Graph, c.Options, c.Classes, label.Length);
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
    }

    /// <summary>The drop_path kernel drops some samples and scales the others: the masks are not all ones.</summary>
    [Fact]
    public void DropPathDropsSomeSamplesAndScalesTheOthers()
    {
        var d = new DropPath(0.3, Mode.Train, 5);
        var g = One("dpmix", d, F(16, 3), Step);
        var x = Tensor.FromDoubles(F(16, 3), Enumerable.Repeat(1.0, 48).ToArray());
        var step = Tensor.FromDoubles(Step, [42]);
        if (!CudaEmulator.Available) Assert.Skip(CudaEmulator.MissingReason);
        var y = (float[])EmuPlanRunner.Run(CudaCodegen.Lower(g), g, new Dictionary<string, Tensor>(),
            new Dictionary<string, Tensor> { ["in0"] = x, ["in1"] = step })[g.Outputs[0]].Data;
        for (int b = 0; b < 16; b++)
        {
            Assert.Equal(d.Keeps(b, 42) ? (float)(1 / 0.7) : 0f, y[b * 3]);
        }
        Assert.Contains(y, v => v == 0);
        Assert.Contains(y, v => v != 0);
    }

    /// <summary>
    /// Every grad node of these ops, the loss and the train-mode drop_paths that the autodiff pass emits for a
    /// sw-fmnist training graph (batch 4, drop path 0.2, label smoothing 0.1) lowers and matches the reference.
    /// </summary>
    [Fact]
    public void TheElementGradsOfTheFmnistTrainingGraphMatchTheReference()
    {
        var o = ShiftWiseV2Options.FashionMnist with { Batch = 4, DropPathRate = 0.2 };
        var m = ShiftWiseV2.Build(o, "sw-fmnist", DType.F32, new TrainingForm(0.1, 3));
        var g = AutodiffBuilder.Build(m.Graph, ShiftWiseV2.Loss).Graph;
        var types = g.ValueTypes();
        var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
        double worst = 0;
        int i = 0;
        foreach (var n in g.Nodes)
        {
            bool mine = n.Op switch
            {
                Grad gr => gr.Of is Unary or Binary or Mean or Reshape or CrossEntropy or DropPath,
                CrossEntropy or DropPath { Mode: Mode.Train } => true,
                _ => false,
            };
            if (!mine) continue;
            var one = One($"fm{i++}", n.Op, n.Inputs.Select(v => types[v]).ToArray());
            string key = n.Op is Grad gg
                ? $"grad {gg.Of.Name} wrt [{string.Join(",", gg.Wrt)}] dy [{string.Join(",", gg.OutGrads)}]"
                : n.Op.Name;
            counts[key] = counts.GetValueOrDefault(key) + 1;
            worst = Math.Max(worst, Check(one, new CudaOptions(), o.NumClasses, i));
        }
        TestContext.Current.TestOutputHelper?.WriteLine($"worst relative L2 {worst:E2}; "
            + string.Join("; ", counts.Select(kv => $"{kv.Key}: {kv.Value}")));
        Assert.Contains("grad cross_entropy wrt [0] dy []", counts.Keys);
        Assert.Contains(counts.Keys, k => k.StartsWith("grad gelu", StringComparison.Ordinal));
        Assert.Contains(counts.Keys, k => k.StartsWith("grad sigmoid", StringComparison.Ordinal));
        Assert.Contains(counts.Keys, k => k.StartsWith("grad mul", StringComparison.Ordinal));
        Assert.Contains(counts.Keys, k => k.StartsWith("grad mean", StringComparison.Ordinal));
        Assert.Contains(counts.Keys, k => k.StartsWith("grad drop_path", StringComparison.Ordinal));
        Assert.Contains("drop_path", counts.Keys);
        Assert.Contains("cross_entropy", counts.Keys);
    }
}
