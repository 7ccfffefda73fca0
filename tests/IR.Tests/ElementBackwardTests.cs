using ShiftWise.IR.Ops;

namespace ShiftWise.IR.Tests;

/// <summary>
/// Extra finite-difference cases for the element-wise, norm, reduction and layout backward rules: every mode and
/// layout the catalog's single entry per op does not reach (see <see cref="BackwardTests.Check"/>).
/// </summary>
public sealed class ElementBackwardTests
{
    private static TensorType F(params int[] d) => TensorType.Of(DType.F32, d);

    private static void AssertMatches(Op op, params TensorType[] types)
    {
        for (int seed = 0; seed < 3; seed++)
        {
            double err = BackwardTests.Check(op, types, seed);
            Assert.True(err <= 1e-6, $"{op}: relative error {err:E2} (seed {seed})");
        }
    }

    [Theory]
    [InlineData(Mode.Train)]
    [InlineData(Mode.Eval)]
    public void BatchNorm(Mode mode) =>
        AssertMatches(new BatchNorm(1e-5, 0.1, mode), F(3, 2, 3, 2), F(2), F(2), F(2), F(2));

    [Fact]
    public void BatchNormOnRank2() =>
        AssertMatches(new BatchNorm(1e-3, 0.1, Mode.Train), F(5, 3), F(3), F(3), F(3), F(3));

    [Theory]
    [InlineData(NormLayout.ChannelsFirst)]
    [InlineData(NormLayout.ChannelsLast)]
    public void LayerNorm(NormLayout layout)
    {
        int c = 4;
        var x = layout == NormLayout.ChannelsFirst ? F(2, c, 3, 2) : F(2, 3, 2, c);
        AssertMatches(new LayerNorm(1e-6, layout), x, F(c), F(c));
    }

    [Fact]
    public void GrnWithBeta() =>
        AssertMatches(new Grn(1e-6), F(2, 3, 2, 5), F(1, 1, 1, 5), F(1, 1, 1, 5));

    [Theory]
    [InlineData(new[] { 0 }, false)]
    [InlineData(new[] { 1 }, true)]
    [InlineData(new[] { -1 }, false)]
    [InlineData(new[] { 1, 3 }, false)]
    [InlineData(new[] { 2, 3 }, true)]
    [InlineData(new[] { 0, 1, 2, 3 }, false)]
    [InlineData(new[] { 0, 2 }, true)]
    public void Mean(int[] axes, bool keepDim) =>
        AssertMatches(new Mean(Vec.Of(axes), keepDim), F(2, 3, 2, 4));

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(-1)]
    public void Softmax(int axis) => AssertMatches(new Softmax(axis), F(3, 4, 5));

    [Theory]
    [InlineData(BinaryKind.Add, new[] { 2, 3, 4 }, new[] { 3, 1 })]
    [InlineData(BinaryKind.Add, new[] { 1, 4 }, new[] { 2, 3, 1 })]
    [InlineData(BinaryKind.Mul, new[] { 2, 1, 4 }, new[] { 3, 1 })]
    [InlineData(BinaryKind.Mul, new[] { 4 }, new[] { 2, 3, 4 })]
    [InlineData(BinaryKind.Mul, new[] { 2, 3 }, new[] { 2, 3 })]
    public void BinaryBroadcasting(BinaryKind kind, int[] a, int[] b) =>
        AssertMatches(new Binary(kind), F(a), F(b));

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.1)]
    [InlineData(0.5)]
    public void CrossEntropy(double smoothing) =>
        AssertMatches(new CrossEntropy(smoothing), F(6, 5), TensorType.Of(DType.I64, 6));

    [Theory]
    [InlineData(Mode.Train, 0.3)]
    [InlineData(Mode.Train, 0.0)]
    [InlineData(Mode.Eval, 0.3)]
    public void DropPath(Mode mode, double p) =>
        AssertMatches(new DropPath(p, mode, 11), F(8, 3, 2));

    [Fact]
    public void DropPathTrainDropsSomeAndKeepsSomeSamples()
    {
        var d = new DropPath(0.3, Mode.Train, 11);
        var keeps = Enumerable.Range(0, 8).Select(b => d.Keeps(b)).ToArray();
        Assert.Contains(true, keeps);
        Assert.Contains(false, keeps);
    }

    [Fact]
    public void ChannelSelectWithRepeatedIndex() =>
        AssertMatches(new ChannelSelect(1, Vec.Of(2, 0, 2)), F(2, 4, 2, 2));

    [Fact]
    public void ChannelSelectLastAxis() =>
        AssertMatches(new ChannelSelect(-1, Vec.Of(1, 1, 3)), F(2, 3, 4));

    [Fact]
    public void ConcatThreeInputsLastAxis() =>
        AssertMatches(new Concat(-1), F(2, 3, 1), F(2, 3, 2), F(2, 3, 3));

    [Fact]
    public void PermuteToChannelsFirst() =>
        AssertMatches(new Permute(Vec.Of(0, 3, 1, 2)), F(2, 3, 4, 5));

    [Fact]
    public void ScaleBiasLastAxis() =>
        AssertMatches(new ScaleBias(-1), F(2, 3, 4), F(4), F(4));

    [Theory]
    [InlineData(UnaryKind.Gelu)]
    [InlineData(UnaryKind.Relu)]
    [InlineData(UnaryKind.Sigmoid)]
    public void UnaryOnLargerInputs(UnaryKind kind) => AssertMatches(new Unary(kind), F(4, 7));
}
