using ShiftWise.CodegenCuda;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// The normalisation kernels of a training graph on the CUDA target: batch_norm's training forward (batch statistics,
/// updated running statistics) and the grads of batch_norm (train), layer_norm (both layouts) and grn, for every
/// non-empty subset of x, weight and bias. Each case is a one-node graph with random inputs; its kernels must follow
/// the source conventions (no atomics), compile with the real NVRTC for compute_80 and compute_90, give identical
/// bits when emulated twice, and match the float64 reference executor to a relative L2 error of 1e-5. Shapes: random
/// (odd sizes, batch 1, channel counts that are not a multiple of the block) and every norm node of sw-fmnist's
/// training graph.
/// </summary>
public sealed class NormGradEmuTests
{
    private const double Tol = 1e-5;

    private static TensorType F(params int[] d) => TensorType.Of(DType.F32, d);

    private static readonly int[][] Subsets = [[0], [1], [2], [0, 1], [0, 2], [1, 2], [0, 1, 2]];

    /// <summary>A one-node grad graph of <paramref name="of"/> on inputs <paramref name="fwd"/>, dy [0].</summary>
    private static Graph GradOf(string label, Op of, int[] wrt, TensorType[] fwd)
    {
        var outs = of.Infer(fwd);
        return OpCatalog.OneNode(label, new Grad(of, Vec.Of(wrt), Vec.Of(0)), [.. fwd, .. outs, outs[0]]);
    }

    private static (int N, int C, int H, int W, int Block) Dims(Random r, int seed)
    {
        int n = seed % 3 == 0 ? 1 : r.Next(2, 5);
        int c = seed % 4 == 0 ? 1 + r.Next(1, 4) * 32 : r.Next(1, 40);
        return (n, c, r.Next(1, 10), r.Next(2, 10), 32 << r.Next(4));
    }

    /// <summary>Batch norm case: rank 4 (rank 2 for seeds ≡ 5 mod 6); a training forward when grad is false.</summary>
    private static Graph BatchNormCase(int seed, bool grad)
    {
        var r = new Random(300 + seed);
        var (n, c, h, w, _) = Dims(r, seed);
        var x = seed % 6 == 5 ? F(n + 1, c) : F(n, c, h, w);
        var v = F(c);
        var bn = new BatchNorm(1e-5, 0.1 + 0.05 * (seed % 3), Mode.Train);
        TensorType[] fwd = [x, v, v, v, v];
        return grad ? GradOf($"bn_grad{seed}", bn, Subsets[seed % 7], fwd) : OpCatalog.OneNode($"bn{seed}", bn, fwd);
    }

    private static Graph LayerNormCase(int seed)
    {
        var r = new Random(500 + seed);
        var (n, c, h, w, _) = Dims(r, seed);
        var layout = seed % 2 == 0 ? NormLayout.ChannelsFirst : NormLayout.ChannelsLast;
        var x = layout == NormLayout.ChannelsFirst ? F(n, c, h, w) : seed % 4 == 3 ? F(n, c) : F(n, h, w, c);
        return GradOf($"ln_grad{seed}", new LayerNorm(1e-6, layout), Subsets[seed % 7], [x, F(c), F(c)]);
    }

    private static Graph GrnCase(int seed)
    {
        var r = new Random(700 + seed);
        var (n, c, h, w, _) = Dims(r, seed);
        bool beta = seed % 5 != 4;
        var wrt = beta ? Subsets[seed % 7] : seed % 2 == 0 ? [0, 1] : [1];
        var gamma = F(1, 1, 1, c);
        TensorType[] fwd = beta ? [F(n, h, w, c), gamma, gamma] : [F(n, h, w, c), gamma];
        return GradOf($"grn_grad{seed}", new Grn(1e-6), wrt, fwd);
    }

    private static CudaOptions Block(Graph g, int seed) =>
        OneNodeEmu.Tunables(g, new() { ["block"] = 32 << (seed % 4) });

    /// <summary>
    /// <see cref="OneNodeEmu.Check"/> on inputs uniform in ±1 from <paramref name="seed"/>: conventions, NVRTC, two
    /// identical emulated runs, and the error against the reference.
    /// </summary>
    private static double CheckCase(Graph g, CudaOptions? o, int seed) =>
        OneNodeEmu.Check(g, o, OneNodeEmu.Inputs(g, seed), Tol, $"{g.Nodes[0].Op} on {OneNodeEmu.InputTypes(g)}");

    public static TheoryData<int> Seeds() => new(Enumerable.Range(0, 14));

    [Theory]
    [MemberData(nameof(Seeds))]
    public void NormGradBatchNormTrainForwardMatchesTheReference(int seed)
    {
        var g = BatchNormCase(seed, grad: false);
        CheckCase(g, Block(g, seed), seed);
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void NormGradBatchNormBackwardMatchesTheReference(int seed)
    {
        var g = BatchNormCase(seed, grad: true);
        CheckCase(g, Block(g, seed), seed);
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void NormGradLayerNormBackwardMatchesTheReference(int seed)
    {
        var g = LayerNormCase(seed);
        CheckCase(g, Block(g, seed), seed);
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void NormGradGrnBackwardMatchesTheReference(int seed)
    {
        var g = GrnCase(seed);
        CheckCase(g, Block(g, seed), seed);
    }

    public static TheoryData<int> LargeBatchCases() => new(Enumerable.Range(0, 4));

    /// <summary>
    /// sw-fmnist's stage-0 norms at a training batch of 32 (1568 values per batch-norm channel): the batch_norm
    /// forward and grad, the channels-first layer_norm grad and the grn grad, each with every gradient requested.
    /// </summary>
    [Theory]
    [MemberData(nameof(LargeBatchCases))]
    public void NormGradLargeBatchMatchesTheReference(int which)
    {
        var x = F(32, 24, 7, 7);
        var v = F(24);
        var bn = new BatchNorm(1e-5, 0.1, Mode.Train);
        var gamma = F(1, 1, 1, 96);
        var g = which switch
        {
            0 => OpCatalog.OneNode("bn_large", bn, [x, v, v, v, v]),
            1 => GradOf("bn_grad_large", bn, [0, 1, 2], [x, v, v, v, v]),
            2 => GradOf("ln_grad_large", new LayerNorm(1e-6, NormLayout.ChannelsFirst), [0, 1, 2], [x, v, v]),
            _ => GradOf("grn_grad_large", new Grn(1e-6), [0, 1, 2], [F(32, 7, 7, 96), gamma, gamma]),
        };
        CheckCase(g, null, 900 + which);
    }

    [Fact]
    public void NormGradOtherCombinationsAreRefusedNamingTheNode()
    {
        var x = F(2, 3, 4, 4);
        var v = F(3);
        var eval = GradOf("bn_eval", new BatchNorm(1e-5, 0.1, Mode.Eval), [0], [x, v, v, v, v]);
        var e = Assert.Throws<IrException>(() => CudaCodegen.Lower(eval));
        Assert.Contains("no CUDA lowering for grad of batch_norm", e.Message, StringComparison.Ordinal);

        var train = new BatchNorm(1e-5, 0.1, Mode.Train);
        TensorType[] fwd = [x, v, v, v, v];
        var running = GradOf("bn_rm", train, [3], fwd);
        Assert.Contains("input 3 has no gradient kernel",
            Assert.Throws<IrException>(() => CudaCodegen.Lower(running)).Message, StringComparison.Ordinal);
        var outs = train.Infer(fwd);
        var dyStats = OpCatalog.OneNode("bn_dy", new Grad(train, Vec.Of(0), Vec.Of(0, 1)), [.. fwd, .. outs, x, v]);
        Assert.Contains("only the gradient of output 0",
            Assert.Throws<IrException>(() => CudaCodegen.Lower(dyStats)).Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// Every batch_norm (train), layer_norm and grn node of sw-fmnist's training graph at batch 3, and the grad the
    /// autodiff pass emits for each, lowers; each distinct (op, input types) is checked in emulation.
    /// </summary>
    [Fact]
    public void NormGradSwFmnistTrainingGraphNormsMatchTheReference()
    {
        var o = ShiftWiseV2Options.FashionMnist with { Batch = 3 };
        var m = ShiftWiseV2.Build(o, "sw-fmnist", DType.F32, new TrainingForm());
        var g = AutodiffBuilder.Build(m.Graph, ShiftWiseV2.Loss).Graph;
        var types = g.ValueTypes();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        int forward = 0, grads = 0, seed = 0;
        var kinds = new HashSet<string>(StringComparer.Ordinal);
        foreach (var n in g.Nodes)
        {
            bool fwd = n.Op is BatchNorm { Mode: Mode.Train };
            bool grad = n.Op is Grad { Of: BatchNorm or LayerNorm or Grn };
            if (!fwd && !grad) continue;
            var ins = n.Inputs.Select(i => types[i]).ToArray();
            if (!seen.Add(n.Op + " " + string.Join(",", ins.Select(t => t.ToString())))) continue;
            var one = OpCatalog.OneNode($"fm{seed}", n.Op, ins);
            CheckCase(one, null, seed++);
            if (fwd) forward++;
            else grads++;
            kinds.Add(grad ? ((Grad)n.Op).Of.Name + ((Grad)n.Op).Of switch
            {
                LayerNorm ln => ln.Layout.ToString(),
                _ => "",
            } : n.Op.Name);
        }
        Assert.True(forward >= 1 && grads >= 3, $"{forward} forward, {grads} grad nodes: {string.Join(", ", kinds)}");
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{forward} forward, {grads} grads: {string.Join(", ", kinds)}");
    }
}
