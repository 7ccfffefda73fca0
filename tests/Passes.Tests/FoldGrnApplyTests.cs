using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;
using ShiftWise.IR.Text;

namespace ShiftWise.Passes.Tests;

/// <summary>
/// The fold-grn-apply pass: on ShiftWise_v2 nets it pairs pwconv1 (GEMM + GELU + GRN) with pwconv2 exactly in the
/// stages whose positions per sample P are at least pwconv2's output features O (the cost rule), and the graph after
/// it computes what the graph before it did. Float64 graphs and the reference executor: the folded bias
/// b2 + W2·β is summed in another order than the reference's β then GEMM, so the bound is 1e-12 relative L2.
/// </summary>
public sealed class FoldGrnApplyTests
{
    // stages of 8×8, 4×4, 2×2 and 1×1 positions with 8, 16, 24, 32 channels: P ≥ O in stages 0 (64 ≥ 8) and 1 (16 ≥
    // 16, the boundary), not in 2 (4 < 24) and 3 (1 < 32)
    private static (Model, Dictionary<string, Tensor>) Net(int batch = 2, int seed = 5)
    {
        var o = new ShiftWiseV2Options
        {
            InChans = 3, NumClasses = 6, Depths = [2, 1, 1, 1], Dims = [8, 16, 24, 32], KernelSize = [9, 7, 5, 5, 3],
            Batch = batch, Height = 32, Width = 32,
        };
        var m = ShiftWiseV2.Build(o, dtype: DType.F64);
        var w = WeightInit.Draw(m, InitScheme.Lively, (uint)seed);
        return (m, w);
    }

    private static PassContext Run(Graph g, Dictionary<string, Tensor> w, bool fold)
    {
        var ctx = new PassContext(g, w);
        var off = fold ? new HashSet<string>() : new HashSet<string> { "fold-grn-apply" };
        new PassManager(Pipelines.Get("inference"), new PassOptions { Disabled = off }).Run(ctx);
        return ctx;
    }

    [Fact]
    public void FoldsTheStagesWithAtLeastAsManyPositionsAsOutputsAndKeepsTheLogits()
    {
        var (m, w) = Net();
        var before = Run(m.Graph, w, fold: false);
        var after = Run(m.Graph, w, fold: true);
        var folded = after.Graph.Nodes.Where(n => n.Op is GemmGrnFold).ToList();
        // stage 0's two blocks and stage 1's one; stages 2 and 3 keep their GRN gemm and its consumer
        Assert.Equal(3, folded.Count);
        Assert.All(folded, n => Assert.Equal(new GemmGrnFold(true, GemmAct.Gelu, true, 1e-6, GemmAct.None, true, true),
            n.Op));
        var types = after.Graph.ValueTypes();
        Assert.All(folded, n =>
        {
            var y = types[n.Outputs[0]].Shape;
            Assert.True(FoldGrnApply.Pays((long)y[2] * y[3], y[1]), $"{n.Describe()}: {y}");
        });
        var left = after.Graph.Nodes.Where(n => n.Op is Gemm { HasGrn: true }).ToList();
        Assert.Equal(2, left.Count);
        // pwconv2 maps 4C back to C: its output features are pwconv1's input features
        Assert.All(left, n => Assert.False(FoldGrnApply.Pays(types[n.Outputs[0]].Shape[1]
            * (long)types[n.Outputs[0]].Shape[2], types[n.Inputs[1]].Shape[1])));
        Assert.Equal(PassTestUtil.Count<Gemm>(before.Graph) - 2 * folded.Count, PassTestUtil.Count<Gemm>(after.Graph));

        var x = PassTestUtil.Input(m.Graph, 8);
        var o = m.Graph.Outputs[0];
        var want = ReferenceExecutor.Run(before.Graph, before.Weights, x)[o];
        var got = ReferenceExecutor.Run(after.Graph, after.Weights, x)[o];
        double err = PassTestUtil.RelL2(got, want);
        Assert.True(err <= 1e-12, $"logits relative L2 {err:E2}");
        Assert.True(PassTestUtil.RelL2(got, ReferenceExecutor.Run(m.Graph, w, x)[o]) <= 1e-10);
        // the folded graph survives a print/parse round trip, and its folded biases are parameters of the graph
        Assert.Equal(after.Graph, SwirParser.Parse(SwirPrinter.Print(after.Graph)));
        Assert.All(folded, n => Assert.Contains(after.Graph.Params, p => p.Name == n.Inputs[n.Inputs.Count - 2]
            && p.Name.EndsWith(".grn_fold_bias", StringComparison.Ordinal)));
    }

    [Fact]
    public void OneGemmPairFoldsWithTheBiasOfWeightsTimesBeta()
    {
        var (g, w) = Pair(positions: 12, outFeatures: 12, consumerBias: false);
        var ctx = PassTestUtil.CheckPreserves(g, w, [new FoldGrnApply()], tol: 1e-12, seed: 3);
        var n = Assert.Single(ctx.Graph.Nodes);
        Assert.Equal(new GemmGrnFold(false, GemmAct.Gelu, true, 1e-6, GemmAct.Relu, false, false), n.Op);
        // b2' = W2·β (no b2), computed in float64
        var (w2, beta) = (w["w2"].ToDoubles(), w["beta"].ToDoubles());
        var bias = ctx.Weights[n.Inputs[5]].ToDoubles();
        for (int o = 0; o < 12; o++)
        {
            double s = 0;
            for (int k = 0; k < 20; k++) s += w2[o * 20 + k] * beta[k];
            Assert.Equal(s, bias[o], 12);
        }
    }

    [Theory]
    [InlineData("fewer positions than outputs")]
    [InlineData("consumer weight is an input")]
    [InlineData("two consumers")]
    public void LeavesWhatItMustNot(string why)
    {
        var (g, w) = why switch
        {
            "fewer positions than outputs" => Pair(positions: 11, outFeatures: 12, consumerBias: true),
            "consumer weight is an input" => Pair(12, 12, true, weightInput: true),
            _ => Pair(12, 12, true, twoConsumers: true),
        };
        var ctx = new PassContext(g, w);
        Assert.False(new FoldGrnApply().Run(ctx), why);
        Assert.DoesNotContain(ctx.Graph.Nodes, n => n.Op is GemmGrnFold);
    }

    // x (2, positions, 1, 10) → gemm (W1 20×10, bias, GELU, GRN) → gemm (W2 outFeatures×20, ReLU)
    private static (Graph, Dictionary<string, Tensor>) Pair(int positions, int outFeatures, bool consumerBias,
        bool weightInput = false, bool twoConsumers = false)
    {
        var rng = new Random(positions * 31 + outFeatures);
        var w = new Dictionary<string, Tensor>();
        var b = new GraphBuilder("pair");
        Value P(string name, params int[] shape)
        {
            var t = TensorType.Of(DType.F64, shape);
            w[name] = Tensor.FromDoubles(t, Enumerable.Range(0, (int)t.Shape.Elements)
                .Select(_ => rng.NextDouble() * 2 - 1).ToArray());
            return b.Param(name, t);
        }
        var x = b.Input("x", TensorType.Of(DType.F64, 2, positions, 1, 10));
        var u = b.Apply1(new Gemm(false, false, GemmAct.Gelu, true, true, 1e-6, false), "u", x, P("w1", 20, 10),
            P("b1", 20), P("gamma", 1, 1, 1, 20), P("beta", 1, 1, 1, 20));
        var w2 = weightInput ? b.Input("w2", TensorType.Of(DType.F64, outFeatures, 20)) : P("w2", outFeatures, 20);
        var ins = new List<Value> { u, w2 };
        if (consumerBias) ins.Add(P("b2", outFeatures));
        b.Output(b.Apply1(new Gemm(false, false, GemmAct.Relu, consumerBias, false, 1e-6, false), "y", ins.ToArray()));
        if (twoConsumers) b.Output(u);
        return (b.Build(), w);
    }
}
