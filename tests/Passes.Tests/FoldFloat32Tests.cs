using ShiftWise.IR;

namespace ShiftWise.Passes.Tests;

/// <summary>
/// Folding into float32 weights without a double copy (issue 24, deliver 5) rounds exactly as the double path did:
/// each element widened, multiplied by each scale in turn in double, rounded once.
/// </summary>
public sealed class FoldFloat32Tests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Scaling_float32_storage_gives_the_bits_of_the_double_path(int folds)
    {
        var rng = new Random(folds);
        int rows = 37, per = 3 * 3 * 5;
        var w = new float[rows * per];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() * 4 - 2);
        var scales = Enumerable.Range(0, folds)
            .Select(_ => Enumerable.Range(0, rows).Select(_ => rng.NextDouble() * 3 - 1.5).ToArray()).ToList();
        var t = Tensor.Wrap(TensorType.Of(DType.F32, rows, 5, 3, 3), w);
        var d = t.ToDoubles();
        foreach (var s in scales) d = FoldBatchNorm.Scaled(d, s);
        var expected = Tensor.FromDoubles(t.Type, d);
        var got = FoldBatchNorm.Scaled(t, DType.F32, scales);
        Assert.IsType<float[]>(got.Data);
        Assert.Equal((float[])expected.Data, (float[])got.Data);
        Assert.NotSame(w, got.Data);
        // other element types go through doubles and round to the type asked for
        var half = FoldBatchNorm.Scaled(t, DType.F16, scales);
        Assert.Equal((Half[])Tensor.FromDoubles(new TensorType(DType.F16, t.Shape), d).Data, (Half[])half.Data);
    }
}
