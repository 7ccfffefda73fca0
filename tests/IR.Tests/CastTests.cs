using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;

namespace ShiftWise.IR.Tests;

/// <summary>
/// The cast op's meaning in the reference executor (issue 22): float32 to bf16 and fp16 round to nearest with ties to
/// even, overflow to infinity, keep NaN; widening back is exact. Hand-picked values: exact ones, both kinds of tie,
/// the values just past a tie, the largest finite values and what rounds past them, subnormals.
/// </summary>
public sealed class CastTests
{
    private static double[] Cast(DType to, params double[] x)
    {
        var t = Tensor.FromDoubles(TensorType.Of(DType.F32, x.Length), x);
        var y = Assert.Single(ReferenceExecutor.Evaluate(new Cast(to), [t]));
        Assert.Equal(to, y.DType);
        var back = Assert.Single(ReferenceExecutor.Evaluate(new Cast(DType.F32), [y]));
        Assert.Equal(y.ToDoubles(), back.ToDoubles()); // widening is exact
        return y.ToDoubles();
    }

    [Fact]
    public void ToBf16RoundsToNearestEven()
    {
        double e = Math.Pow(2, -7); // the spacing of bf16 in [1, 2)
        Assert.Equal(new[] { 1, 1, 1 + e, 1 + 2 * e, 1 + 2 * e, -3, 0 },
            Cast(DType.BF16, 1, 1 + e / 2, 1 + e / 2 + Math.Pow(2, -20), 1 + 1.5 * e, 1 + 2 * e, -3, 0));
        double max = (2 - e) * Math.Pow(2, 127);
        var big = Cast(DType.BF16, max, (2 - e / 2) * Math.Pow(2, 127), float.NaN);
        Assert.Equal(max, big[0]);
        Assert.True(double.IsPositiveInfinity(big[1]));
        Assert.True(double.IsNaN(big[2]));
    }

    [Fact]
    public void ToFp16RoundsToNearestEvenAndOverflowsAt65520()
    {
        double e = Math.Pow(2, -10); // the spacing of fp16 in [1, 2)
        Assert.Equal(new[] { 1, 1, 1 + 2 * e, 65504, 6.103515625e-05, 5.9604644775390625e-08, 0 },
            Cast(DType.F16, 1, 1 + e / 2, 1 + 1.5 * e, 65519, 6.103515625e-05, 5.9604644775390625e-08,
                2.9802322387695312e-08));
        Assert.True(double.IsPositiveInfinity(Cast(DType.F16, 65520)[0]));
        Assert.True(double.IsNegativeInfinity(Cast(DType.F16, -1e6)[0]));
    }

    [Fact]
    public void ItsGradientPassesTheOutputGradientBack()
    {
        var x = Tensor.FromDoubles(TensorType.Of(DType.F32, 3), [1, 2, 3]);
        var y = ReferenceExecutor.Evaluate(new Cast(DType.BF16), [x]);
        var gy = Tensor.FromDoubles(TensorType.Of(DType.BF16, 3), [0.5, -1, 4]);
        var gx = Backward.Vjp(new Cast(DType.BF16), [x], y, [gy]);
        Assert.Equal(new[] { 0.5, -1, 4 }, gx[0]!.ToDoubles());
    }
}
