using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;
using ShiftWise.IR.Text;

namespace ShiftWise.Passes.Tests;

/// <summary>
/// The autodiff pass: the backward graph it builds, run by the reference executor, gives the same gradients as the
/// reverse-mode oracle over the same rules (so the pass's wiring — masks, the loss seed, sums over uses — is right),
/// and the loss's directional derivatives match finite differences of the forward graph. Float64 graphs throughout:
/// the two computations differ only in summation order (bound 1e-10 relative), and central differences with h = 1e-6
/// are good to about 1e-7 relative on these smooth losses (bound 1e-5).
/// </summary>
public sealed class AutodiffTests
{
    private static readonly ShiftWiseV2Options Small = new()
    {
        InChans = 2, NumClasses = 5, Depths = [1, 1, 0, 1], Dims = [8, 12, 16, 16], KernelSize = [7, 5, 5, 3, 3],
        Batch = 3, Height = 24, Width = 24, DropPathRate = 0.4, LayerScaleInit = 0.5,
    };

    private static (Model M, Dictionary<string, Tensor> W, Dictionary<string, Tensor> X) Setup(TrainingForm form, int seed = 3)
    {
        var m = ShiftWiseV2.Build(Small, "small", DType.F64, form);
        var w = WeightInit.Draw(m, InitScheme.Lively, (uint)seed);
        PassTestUtil.ZeroSubkernels(w, new Random(seed), 0.3);
        var rng = new Random(seed + 1);
        var x = new Dictionary<string, Tensor>
        {
            ["x"] = Tensor.FromDoubles(m.Graph.Inputs[0].Type, Enumerable.Range(0, 3 * 2 * 24 * 24).Select(_ => rng.NextDouble() * 2 - 1).ToArray()),
            [ShiftWiseV2.Labels] = Tensor.FromDoubles(TensorType.Of(DType.I64, 3), [1, 4, 0]),
        };
        if (m.Graph.Inputs.Any(i => i.Name == ShiftWiseV2.Step)) x[ShiftWiseV2.Step] = Tensor.FromDoubles(TensorType.Of(DType.I64), [7]);
        return (m, w, x);
    }

    [Fact]
    public void BackwardGraphMatchesTheReverseModeOracle()
    {
        var (m, w, x) = Setup(new TrainingForm(0.1, 5));
        Assert.Contains(m.Graph.Nodes, n => n.Op is DropPath { Mode: Mode.Train });
        var r = AutodiffBuilder.Build(m.Graph, ShiftWiseV2.Loss);
        Assert.Empty(r.Unreached);
        var trainable = m.Graph.Params.Where(p => !p.Buffer).Select(p => p.Name).ToArray();
        Assert.Equal(trainable, r.Gradients.Keys);
        var got = ReferenceExecutor.Run(r.Graph, w, x);
        var (want, values) = ReferenceGradients.Run(m.Graph, w, x, ShiftWiseV2.Loss);
        Assert.Equal(values[ShiftWiseV2.Loss].ToDoubles()[0], got[ShiftWiseV2.Loss].ToDoubles()[0], 12);
        foreach (var p in trainable)
        {
            double e = RelL2(got[r.Gradients[p]].ToDoubles(), want[p].ToDoubles());
            Assert.True(e <= 1e-10, $"{p}: relative L2 {e:g3}");
        }
        // the running statistics and logits stay outputs of the training graph
        foreach (var o in m.Graph.Outputs) Assert.Contains(o, r.Graph.Outputs);
    }

    [Fact]
    public void LossDerivativesMatchFiniteDifferences()
    {
        var (m, w, x) = Setup(new TrainingForm(0.1, 5), seed: 8);
        var r = AutodiffBuilder.Build(m.Graph, ShiftWiseV2.Loss);
        var grads = ReferenceExecutor.Run(r.Graph, w, x);
        var rng = new Random(2);
        double L(Dictionary<string, Tensor> ww) => ReferenceExecutor.Run(m.Graph, ww, x)[ShiftWiseV2.Loss].ToDoubles()[0];
        foreach (var p in new[] { "downsample_layers.0.0.weight", "stages.0.0.large_kernel.LoRAs.1.weight",
                     "stages.1.0.large_kernel.bn_lora2.weight", "stages.3.0.act.1.gamma", "stages.0.0.gamma", "head.bias" })
        {
            var baseT = w[p];
            var dir = Enumerable.Range(0, (int)baseT.Length).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
            const double h = 1e-6;
            Tensor Moved(double s) => Tensor.FromDoubles(baseT.Type, baseT.ToDoubles().Select((v, i) => v + s * dir[i]).ToArray());
            var plus = new Dictionary<string, Tensor>(w) { [p] = Moved(h) };
            var minus = new Dictionary<string, Tensor>(w) { [p] = Moved(-h) };
            double fd = (L(plus) - L(minus)) / (2 * h);
            double an = grads[r.Gradients[p]].ToDoubles().Select((v, i) => v * dir[i]).Sum();
            Assert.True(Math.Abs(fd - an) <= 1e-5 * Math.Max(1e-3, Math.Abs(fd)), $"{p}: finite difference {fd:g8}, autodiff {an:g8}");
        }
    }

    [Fact]
    public void DropPathMasksChangeWithTheStepAndRepeatForTheSameStep()
    {
        var (m, w, x) = Setup(new TrainingForm(0, 5));
        double Loss(long step) => ReferenceExecutor.Run(m.Graph, w, new Dictionary<string, Tensor>(x)
        {
            [ShiftWiseV2.Step] = Tensor.FromDoubles(TensorType.Of(DType.I64), [step]),
        })[ShiftWiseV2.Loss].ToDoubles()[0];
        Assert.Equal(Loss(3), Loss(3));
        var losses = Enumerable.Range(0, 6).Select(s => Loss(s)).Distinct().Count();
        Assert.True(losses > 1, "every step drew the same drop-path masks");
    }

    [Fact]
    public void TrainingGraphPrintsAndParsesBack()
    {
        var (m, _, _) = Setup(new TrainingForm(0.1, 5));
        var g = AutodiffBuilder.Build(m.Graph, ShiftWiseV2.Loss).Graph;
        var text = SwirPrinter.Print(g);
        Assert.Contains("= grad(", text);
        Assert.Contains("{of=batch_norm, eps=", text);
        Assert.Equal(g, SwirParser.Parse(text, "train.swir"));
    }

    [Fact]
    public void TheTrainingPipelineAppendsTheBackwardGraph()
    {
        var (m, w, _) = Setup(new TrainingForm());
        var ctx = new PassContext(m.Graph, w);
        new PassManager(Pipelines.Get("training")).Run(ctx);
        Assert.Contains(ctx.Graph.Nodes, n => n.Op is Grad);
        Assert.Contains(AutodiffBuilder.GradName("head.weight"), ctx.Graph.Outputs);
        // an eval graph (logits out) has no loss: the pass leaves it alone
        var eval = ShiftWiseV2.Build(Small, "small", DType.F64);
        var ctx2 = new PassContext(eval.Graph, w);
        Assert.False(new Autodiff().Run(ctx2));
    }

    [Fact]
    public void ErrorsNameTheValue()
    {
        var (m, _, _) = Setup(new TrainingForm());
        var e = Assert.Throws<IrException>(() => AutodiffBuilder.Build(m.Graph, "head"));
        Assert.Contains("%head must be a single float value", e.Message);
        e = Assert.Throws<IrException>(() => AutodiffBuilder.Build(m.Graph, ShiftWiseV2.Loss, ["nope.weight"]));
        Assert.Contains("no parameter 'nope.weight'", e.Message);
        e = Assert.Throws<IrException>(() => AutodiffBuilder.Build(m.Graph, "nothing"));
        Assert.Contains("no value %nothing", e.Message);
    }

    [Fact]
    public void GradOpChecksItsInputs()
    {
        var f = TensorType.Of(DType.F32, 2, 3);
        var g = new Grad(new Unary(UnaryKind.Gelu), Vec.Of(0), Vec.Of(0));
        Assert.Equal([f], g.Infer([f, f, f]));
        var e = Assert.Throws<IrException>(() => g.Infer([f, f, TensorType.Of(DType.F32, 3, 2)]));
        Assert.Contains("gradient of output 0 must be", e.Message);
        e = Assert.Throws<IrException>(() => new Grad(new Unary(UnaryKind.Gelu), Vec.Of(1), Vec.Of(0)).Infer([f, f, f]));
        Assert.Contains("wrt", e.Message);
        e = Assert.Throws<IrException>(() => new Grad(new Unary(UnaryKind.Gelu), Vec.Of(0), Vec<int>.Empty).Infer([f, f]));
        Assert.Contains("one value", e.Message);
    }

    private static double RelL2(double[] a, double[] b)
    {
        double num = 0, den = 0;
        for (int i = 0; i < a.Length; i++)
        {
            num += (a[i] - b[i]) * (a[i] - b[i]);
            den += b[i] * b[i];
        }
        return Math.Sqrt(num / Math.Max(den, 1e-300));
    }
}
