using ShiftWise.IR.Analysis;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;

namespace ShiftWise.IR.Tests;

public sealed class CostTests
{
    [Theory]
    [InlineData(9, 9)]
    [InlineData(3, 4)] // smaller than the 9-wide band: most shifted terms are clipped
    [InlineData(1, 1)]
    public void ShiftAddTermsEqualTheSumOfAllOnesThroughTheReference(int h, int w)
    {
        var op = OpCatalog.SpecExample();
        var x = Tensor.FromDoubles(TensorType.Of(DType.F64, 2, 6, h + 2, w + 2),
            Enumerable.Repeat(1.0, 2 * 6 * (h + 2) * (w + 2)).ToArray());
        var ys = ReferenceExecutor.Evaluate(op, [x]);
        double sum = ys.Sum(y => y.ToDoubles().Sum());
        Assert.Equal((long)sum, Cost.ShiftAddTerms(op, x.Shape));
    }

    [Fact]
    public void ConvAndLinearMacsAndFirstUseParams()
    {
        var b = new GraphBuilder("c");
        var x = b.Input("x", TensorType.Of(DType.F32, 2, 4, 8, 8));
        var w = b.Param("w", TensorType.Of(DType.F32, 6, 2, 3, 3));
        var y = b.Apply1(new Conv2d(Vec.Of(2, 2), Vec.Of(1, 1), Vec.Of(1, 1), 2), "conv", x, w); // 2x6x4x4
        var y2 = b.Apply1(new Conv2d(Vec.Of(1, 1), Vec.Of(1, 1), Vec.Of(1, 1), 3), "conv2", y, w); // w reused
        var p = b.Apply1(new Permute(Vec.Of(0, 2, 3, 1)), "p", y2);
        var fw = b.Param("fw", TensorType.Of(DType.F32, 5, 6));
        var f = b.Apply1(new Linear(), "fc", p, fw);
        b.Output(f);
        var costs = Cost.Of(b.Build());
        Assert.Equal(2L * 6 * 4 * 4 * 2 * 9, costs[0].Macs);
        Assert.Equal(108, costs[0].Params);
        Assert.Equal(0, costs[1].Params);
        Assert.Equal(2L * 4 * 4 * 5 * 6, costs[3].Macs);
        Assert.Equal(30, costs[3].Params);
    }
}
