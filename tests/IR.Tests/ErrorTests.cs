using ShiftWise.IR.Analysis;

namespace ShiftWise.IR.Tests;

public sealed class ErrorTests
{
    [Fact]
    public void RelL2ByHandNaNAndMismatch()
    {
        Assert.Equal(0.5, Error.RelL2([3.0, 6.5], [3.0, 4.0]), 12); // ‖(0, 2.5)‖ / ‖(3, 4)‖
        Assert.Equal(0.0, Error.RelL2([1.0, 2.0], [1.0, 2.0]));
        Assert.Equal(double.PositiveInfinity, Error.RelL2([double.NaN, 0.0], [1.0, 0.0]));
        Assert.Throws<ArgumentException>(() => Error.RelL2([1.0], [1.0, 2.0]));
        Assert.Throws<ArgumentException>(() => Error.RelL2(Tensor.F64(new Shape(2), 1, 2), Tensor.F64(new Shape(1, 2), 1, 2)));
    }
}
