using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Passes.Tests;

/// <summary>
/// Each pass over random SW layers (big kernels odd and even up to 63, small 3 and 5, N_rep 1–4, channel counts,
/// sizes smaller and larger than the band, ~30% zero sub-kernels): the output is unchanged (float64, relative
/// L2 ≤ 1e-10: the rewrites are exact up to rounding) and the pass did what it is for.
/// </summary>
public sealed class PassPropertyTests
{
    public static TheoryData<int> Seeds() => new(Enumerable.Range(0, 16));

    [Theory]
    [MemberData(nameof(Seeds))]
    public void MergeParallelConvs(int seed)
    {
        var (m, w) = PassTestUtil.RandomLayer(seed, npath: 2 + seed % 2);
        var ctx = PassTestUtil.CheckPreserves(m.Graph, w, [new MergeParallelConvs()]);
        Assert.Equal(1, PassTestUtil.Count<Conv2d>(ctx.Graph));
        Assert.Contains(ctx.Graph.Params, p => p.Name == "LoRA.weight");
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void FoldBatchNorm(int seed)
    {
        var (m, w) = PassTestUtil.RandomLayer(seed);
        var ctx = PassTestUtil.CheckPreserves(m.Graph, w, [new FoldBatchNorm()]);
        Assert.Equal(0, PassTestUtil.Count<BatchNorm>(ctx.Graph));
        Assert.Equal(3, PassTestUtil.Count<ScaleBias>(ctx.Graph));
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void CollapseShiftWiseWithAndWithoutBn(int seed)
    {
        var (m, w) = PassTestUtil.RandomLayer(seed, bn: seed % 3 != 0);
        // on the raw graph: parallel convs summed inside the pass, BNs read as affines
        var ctx = PassTestUtil.CheckPreserves(m.Graph, w, [new CollapseShiftWise()]);
        Assert.Equal(1, PassTestUtil.Count<SwCross>(ctx.Graph));
        Assert.Equal(0, PassTestUtil.Count<ShiftAdd>(ctx.Graph));
        Assert.Equal(0, PassTestUtil.Count<Conv2d>(ctx.Graph));
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void FuseShiftWiseThenPrune(int seed)
    {
        var (m, w) = PassTestUtil.RandomLayer(seed);
        var ctx = PassTestUtil.CheckPreserves(m.Graph, w,
            [new MergeParallelConvs(), new FoldBatchNorm(), new CollapseShiftWise(), new FuseShiftWise(),
             new PruneZeroSubkernels(), new DeadCodeElimination()]);
        var f = Assert.Single(ctx.Graph.Nodes);
        var op = Assert.IsType<FusedShiftWise>(f.Op);
        // merged sub-kernels are zero only where both paths were zero
        int zeroMerged = CountZero(w["LoRAs.0.weight"], w["LoRAs.1.weight"]);
        Assert.Equal(op.Shift.Rep * op.Shift.N - zeroMerged, op.Subs.Count);
    }

    [Theory]
    [InlineData(0.23)]
    [InlineData(0.0)] // no ghost channels: no concat
    public void FuseShiftWiseTakesTheFollowingBatchNorm(double ghostRatio)
    {
        var o = new ShiftWiseV2Options { KernelSize = [13, 13, 13, 13, 3], NRep = 3, GhostRatio = ghostRatio };
        var mb = new ModelBuilder("sw_bn", DType.F64);
        var x = mb.B.Input("x", TensorType.Of(DType.F64, 2, 10, 9, 7));
        var y = ShiftWiseV2.SwLayer(mb, "", x, o, 13);
        y = mb.B.Apply1(new BatchNorm(1e-5, 0.1, Mode.Eval), "norm", y, mb.Param("norm.weight", new(ParamRole.NormWeight), 10),
            mb.Param("norm.bias", new(ParamRole.NormBias), 10), mb.Param("norm.running_mean", new(ParamRole.RunningMean), 10),
            mb.Param("norm.running_var", new(ParamRole.RunningVar), 10));
        mb.B.Output(y);
        var m = mb.Build();
        var w = WeightInit.Draw(m, InitScheme.Lively, 9);
        var ctx = PassTestUtil.CheckPreserves(m.Graph, w, Pipelines.Get("inference"));
        var f = Assert.IsType<FusedShiftWise>(Assert.Single(ctx.Graph.Nodes).Op);
        Assert.Equal(10 - ShiftWise.Frontend.Tables.SwTables.RepCount(10, ghostRatio), f.Ghost.Count);
        Assert.Equal(ghostRatio == 0 ? 0 : 4, f.Ghost.Count);
    }

    private static int CountZero(IR.Tensor a, IR.Tensor b)
    {
        var x = a.ToDoubles();
        var y = b.ToDoubles();
        int per = (int)(a.Length / a.Shape[0]), z = 0;
        for (int i = 0; i < a.Shape[0]; i++)
        {
            bool allZero = true;
            for (int k = 0; k < per; k++) allZero &= x[i * per + k] + y[i * per + k] == 0;
            z += allZero ? 1 : 0;
        }
        return z;
    }
}

/// <summary>The GEMM-side passes alone over random small ShiftWise_v2 networks.</summary>
public sealed class EpiloguePropertyTests
{
    public static TheoryData<int> Seeds() => new(Enumerable.Range(0, 6));

    private static (Model, Dictionary<string, Tensor>) RandomV2(int seed)
    {
        var rng = new Random(seed);
        int d = 4 * rng.Next(2, 5);
        var o = new ShiftWiseV2Options
        {
            InChans = rng.Next(1, 4), NumClasses = rng.Next(2, 9), Depths = [1, rng.Next(0, 2), 1, 1],
            Dims = [d, 2 * d, 2 * d, 4 * d], KernelSize = [rng.Next(5, 14), 7, 5, 5, 3], NRep = rng.Next(1, 5),
            LayerScaleInit = seed % 3 == 0 ? 0 : 1e-6, Bn = seed % 2 == 0, Height = rng.Next(16, 40), Width = rng.Next(16, 40),
            Batch = rng.Next(1, 3),
        };
        var m = ShiftWiseV2.Build(o, dtype: DType.F64);
        return (m, WeightInit.Draw(m, InitScheme.Lively, (uint)seed));
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void ConstantFoldThenFuseEpilogues(int seed)
    {
        var (m, w) = RandomV2(seed);
        var ctx = PassTestUtil.CheckPreserves(m.Graph, w, [new ConstantFold(), new FuseEpilogues(), new DeadCodeElimination()]);
        Assert.Equal(0, PassTestUtil.Count<Linear>(ctx.Graph));
        Assert.Equal(0, PassTestUtil.Count<Permute>(ctx.Graph));
        Assert.Equal(0, PassTestUtil.Count<Grn>(ctx.Graph));
        Assert.Equal(0, ctx.Graph.Nodes.Count(n => n.Op is Reshape && n.Inputs.All(i => ctx.Graph.Params.Any(p => p.Name == i))));
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void WholeInferencePipeline(int seed)
    {
        var (m, w) = RandomV2(seed);
        PassTestUtil.ZeroSubkernels(w, new Random(seed), 0.3);
        var ctx = PassTestUtil.CheckPreserves(m.Graph, w, Pipelines.Get("inference"));
        Assert.Equal(m.Graph.Nodes.Count(n => n.Op is ShiftAdd), PassTestUtil.Count<FusedShiftWise>(ctx.Graph));
    }
}
