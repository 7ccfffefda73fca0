using ShiftWise.CodegenCuda;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// The grads of conv2d (dense, grouped, strided, depthwise with a stride or a bias) and of linear on the CUDA target
/// (<c>ConvGradLowering</c>). Each case is a one-node grad graph with random inputs; its kernels must have no atomics,
/// compile with the real NVRTC for compute_80 and compute_90 without local memory, render the same twice, and, run in
/// emulation (kernels through g++, GEMM calls through the cuBLAS interpreter), match the float64 reference executor
/// (<c>Backward.Vjp</c>) to a relative L2 error of 1e-5 and give the same bits on a second run.
/// </summary>
public sealed class ConvGradEmuTests
{
    private const double Tol = 1e-5;

    private static TensorType F(params int[] d) => TensorType.Of(DType.F32, d);

    private static readonly int[][] Subsets = [[0], [1], [2], [0, 1], [0, 2], [1, 2], [0, 1, 2]];

    /// <summary>
    /// Conv case <paramref name="seed"/>: groups 1–3 (sometimes depthwise), 1–7 input channels per group, 1–5 output
    /// channels per group, kernel 1, 3 or 5 (sometimes rectangular), stride 1–3 per axis, padding up to k − 1,
    /// dilation 1 or 2, batch 1–3, odd planes; wrt is subset seed % 7 of {x, w, b} (a bias input whenever b is asked
    /// for, sometimes otherwise).
    /// </summary>
    public static (Graph Graph, CudaOptions Options) ConvCase(int seed)
    {
        var r = new Random(7000 + seed);
        bool dw = seed % 5 == 4;
        int groups = dw ? r.Next(1, 6) : r.Next(1, 4);
        int cpg = dw ? 1 : r.Next(1, 8), opg = r.Next(1, 6);
        int kh = new[] { 1, 3, 5 }[r.Next(3)], kw = r.Next(4) == 0 ? new[] { 1, 3, 5 }[r.Next(3)] : kh;
        var stride = Vec.Of(r.Next(1, 4), r.Next(1, 4));
        var dil = r.Next(5) == 0 ? Vec.Of(2, 2) : Vec.Of(1, 1);
        var pad = Vec.Of(r.Next(0, kh), r.Next(0, kw));
        var op = new Conv2d(stride, pad, dil, groups);
        int nb = seed % 6 == 0 ? 1 : r.Next(1, 4);
        int h = dil[0] * (kh - 1) + r.Next(1, 12), w = dil[1] * (kw - 1) + r.Next(1, 14);
        var wrt = Subsets[seed % 7];
        bool bias = wrt.Contains(2) || r.Next(2) == 0;
        var fwd = new List<TensorType> { F(nb, groups * cpg, h, w), F(groups * opg, cpg, kh, kw) };
        if (bias) fwd.Add(F(groups * opg));
        var y = op.Infer(fwd)[0];
        var g = OpCatalog.OneNode($"grad_cv{seed}", new Grad(op, Vec.Of(wrt), Vec.Of(0)), [.. fwd, y, y]);
        int taps = Math.Min(kh * kw, 49);
        int wblock = 32 << r.Next(4);
        while (4 * taps * wblock > 48 * 1024) wblock /= 2;
        return (g, OneNodeEmu.Tunables(g, new() { ["block"] = 32 << r.Next(4), ["wblock"] = wblock }));
    }

    /// <summary>
    /// Linear case <paramref name="seed"/>: x of rank 1–4 (rows from 1 to a few hundred), 1–40 input and output
    /// features; wrt is subset seed % 7 of {x, w, b}.
    /// </summary>
    public static (Graph Graph, CudaOptions Options) LinearCase(int seed)
    {
        var r = new Random(9000 + seed);
        int k = r.Next(1, 41), o = r.Next(1, 41);
        int[] lead = (seed % 4) switch
        {
            0 => [],
            1 => [r.Next(1, 9)],
            2 => [r.Next(1, 4), r.Next(1, 6)],
            _ => [r.Next(1, 3), r.Next(1, 8), r.Next(1, 8)],
        };
        var wrt = Subsets[seed % 7];
        bool bias = wrt.Contains(2) || r.Next(2) == 0;
        var fwd = new List<TensorType> { F([.. lead, k]), F(o, k) };
        if (bias) fwd.Add(F(o));
        var y = new Linear().Infer(fwd)[0];
        var g = OpCatalog.OneNode($"grad_ln{seed}", new Grad(new Linear(), Vec.Of(wrt), Vec.Of(0)), [.. fwd, y, y]);
        return (g, OneNodeEmu.Tunables(g, new() { ["wblock"] = 32 << r.Next(4) }));
    }

    /// <summary>
    /// <see cref="OneNodeEmu.Check"/> on inputs uniform in ±1 from <paramref name="seed"/>: the source checks, NVRTC,
    /// then (with g++) the error against the reference and, when <paramref name="twice"/>, a second run's bits.
    /// </summary>
    private static double Check(Graph g, CudaOptions? o, int seed, bool twice = true) =>
        OneNodeEmu.Check(g, o, OneNodeEmu.Inputs(g, seed), Tol,
            $"{g.Name}: {Describe((Grad)g.Nodes[0].Op)} on {OneNodeEmu.InputTypes(g)}", twice);

    private static string Describe(Grad op) => op.Of switch
    {
        Conv2d c => $"conv2d s{c.Stride} p{c.Padding} d{c.Dilation} g{c.Groups} wrt {op.Wrt}",
        _ => $"{op.Of.Name} wrt {op.Wrt}",
    };

    public static TheoryData<int> ConvSeeds() => new(Enumerable.Range(0, 28));

    public static TheoryData<int> LinearSeeds() => new(Enumerable.Range(0, 14));

    [Theory]
    [MemberData(nameof(ConvSeeds))]
    public void ConvGradientsMatchTheReference(int seed)
    {
        var (g, o) = ConvCase(seed);
        Check(g, o, seed);
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
    }

    [Theory]
    [MemberData(nameof(LinearSeeds))]
    public void LinearGradientsMatchTheReference(int seed)
    {
        var (g, o) = LinearCase(seed);
        var plan = CudaCodegen.Lower(g, o);
        var wrt = ((Grad)g.Nodes[0].Op).Wrt;
        Assert.Equal(wrt.Count(i => i < 2), plan.Steps.OfType<GemmCall>().Count());
        Check(g, o, seed);
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
    }

    /// <summary>
    /// The conv2d and linear grad nodes that the training autodiff emits for sw-fmnist (28×28 grey, the stem's
    /// strided 3×3 convs, the downsampling convs, the SE's 1×1 convs, the pointwise and head linears) at batch 2: each
    /// lowers with the default tunables and matches the reference in emulation. The SW layer's depthwise grads run
    /// in GradCudaEmuTests.
    /// </summary>
    [Fact]
    public void TheConvAndLinearGradsOfSwFmnistMatchTheReference()
    {
        var o = ShiftWiseV2Options.FashionMnist with { Batch = 2 };
        var m = ShiftWiseV2.Build(o, "fmnist", DType.F32, new TrainingForm());
        var g = AutodiffBuilder.Build(m.Graph, ShiftWiseV2.Loss).Graph;
        var types = g.ValueTypes();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        int convs = 0, linears = 0, strided = 0, biases = 0;
        foreach (var n in g.Nodes.Where(n => n.Op is Grad { Of: Conv2d or Linear }))
        {
            var op = (Grad)n.Op;
            var ins = n.Inputs.Select(i => types[i]).ToArray();
            if (op.Of is Conv2d c && c.Groups > 1 && !op.Wrt.Contains(2)) continue;
            // one check per distinct (op, shapes): the repeated blocks of a stage share them
            if (!seen.Add(op + string.Join(",", ins.Select(t => t.ToString())))) continue;
            var one = OpCatalog.OneNode($"grad_fm{convs + linears}", op, ins);
            if (op.Of is Conv2d cv)
            {
                convs++;
                if (cv.Stride.Any(s => s > 1)) strided++;
            }
            else
            {
                linears++;
            }
            if (op.Wrt.Contains(2)) biases++;
            Check(one, null, convs + linears, twice: false);
        }
        Assert.True(convs >= 4 && strided >= 2 && linears >= 2 && biases >= 4,
            $"{convs} conv, {strided} strided, {linears} linear, {biases} with a bias gradient");
    }

    [Fact]
    public void ATrainingGraphLowersEveryConvAndLinearGrad()
    {
        var o = ShiftWiseV2Options.FashionMnist with { Batch = 3 };
        var m = ShiftWiseV2.Build(o, "fmnist", DType.F32, new TrainingForm());
        var g = AutodiffBuilder.Build(m.Graph, ShiftWiseV2.Loss).Graph;
        var types = g.ValueTypes();
        int n = 0;
        foreach (var node in g.Nodes.Where(x => x.Op is Grad { Of: Conv2d or Linear }))
        {
            var one = OpCatalog.OneNode($"grad_all{n++}", node.Op, node.Inputs.Select(i => types[i]).ToArray());
            var plan = CudaCodegen.Lower(one);
            Assert.NotEmpty(plan.Steps);
            Assert.All(plan.Kernels, k => Assert.DoesNotContain("atomic", k.Source, StringComparison.Ordinal));
        }
        Assert.True(n >= 20, $"{n} grad nodes");
    }

    [Fact]
    public void BadTunablesAndHugeKernelsAreRefusedNamingTheNode()
    {
        var op = new Conv2d(Vec.Of(2, 2), Vec.Of(1, 1), Vec.Of(1, 1), 1);
        var (x, w) = (F(1, 2, 9, 9), F(3, 2, 3, 3));
        var y = op.Infer([x, w])[0];
        var g = OpCatalog.OneNode("grad_bad", new Grad(op, Vec.Of(1), Vec.Of(0)), [x, w, y, y]);
        var e = Assert.Throws<IrException>(() =>
            CudaCodegen.Lower(g, OneNodeEmu.Tunables(g, new() { ["wblock"] = 48 })));
        Assert.Contains("tunable wblock = 48", e.Message, StringComparison.Ordinal);
        Assert.Contains("(grad)", e.Message, StringComparison.Ordinal);
        var (x9, w9) = (F(1, 2, 12, 12), F(3, 2, 9, 9));
        var y9 = op.Infer([x9, w9])[0];
        var g9 = OpCatalog.OneNode("grad_big", new Grad(op, Vec.Of(1), Vec.Of(0)), [x9, w9, y9, y9]);
        Assert.Contains("81 taps", Assert.Throws<IrException>(() => CudaCodegen.Lower(g9)).Message,
            StringComparison.Ordinal);
        // the input gradient alone has no such limit
        Assert.NotEmpty(CudaCodegen.Lower(OpCatalog.OneNode("grad_big_x", new Grad(op, Vec.Of(0), Vec.Of(0)),
            [x9, w9, y9, y9])).Steps);
    }

    [Fact]
    public void TheViewModelsComputeTheGeometry()
    {
        var op = new Conv2d(Vec.Of(2, 3), Vec.Of(1, 2), Vec.Of(1, 2), 2);
        var (x, w) = (new Shape(2, 4, 11, 13), new Shape(6, 2, 3, 3));
        var wm = new ConvGradWeightModel("k", 64, op, x, w);
        Assert.Equal((6, 5), (wm.OutHeight, wm.OutWidth));
        Assert.Equal(12, wm.Rows);
        Assert.Equal(2L * 6 * 5, wm.Positions);
        Assert.Equal(new TapOffset(4, 0, 0), wm.TapOffsets[4]);
        Assert.Equal(new TapOffset(8, 1, 2), wm.TapOffsets[8]);
        var xm = new ConvGradInputModel("k", 128, op, x, w);
        Assert.Equal(3, xm.GroupOutChannels);
        Assert.Equal(3L * 2 * 9, xm.GroupWeights);
        Assert.True(xm.Strided);
        Assert.Equal(32, ConvGradWeightModel.DefaultThreads(1, 2));
        Assert.Equal(256, ConvGradWeightModel.DefaultThreads(9, 1000));
        Assert.Equal(64, BiasGradModel.DefaultThreads(49 + 15));
        Assert.True(new BiasGradModel("k", 32, 10, 3, 1).RowMajor);
    }
}
