using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Passes.Tests;

/// <summary>The acceptance check of the pass pipeline on the real sw-tiny at 224×224.</summary>
public sealed class SwTinyTests
{
    [Fact]
    public void InferencePipelineOnSwTinyKeepsTheLogitsAndFusesAll27Blocks()
    {
        // float64 so that the check is about the rewrites, not about float32 rounding of folded weights
        var m = ShiftWiseV2.Build(ShiftWiseV2Options.Preset("sw-tiny")!, dtype: DType.F64);
        var w = WeightInit.Draw(m, InitScheme.Lively, 11);
        PassTestUtil.ZeroSubkernels(w, new Random(11), 0.3);
        var ctx = PassTestUtil.CheckPreserves(m.Graph, w, Pipelines.Get("inference"), tol: 1e-6);
        Assert.Equal(27, PassTestUtil.Count<FusedShiftWise>(ctx.Graph));
        Assert.Equal(0, PassTestUtil.Count<BatchNorm>(ctx.Graph));
        Assert.Equal(0, PassTestUtil.Count<ScaleBias>(ctx.Graph));
    }
}
