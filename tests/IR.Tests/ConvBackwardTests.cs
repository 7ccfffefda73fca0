using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;

namespace ShiftWise.IR.Tests;

/// <summary>
/// Extra finite-difference cases for the rules of ConvBackward (conv2d, shift_add, sw_cross, fused_shiftwise, gemm,
/// linear), beyond the one catalog entry each that <see cref="BackwardTests"/> checks: every mode of each op.
/// </summary>
public sealed class ConvBackwardTests
{
    private static TensorType F(params int[] d) => TensorType.Of(DType.F64, d);

    private static void AssertClose(Op op, TensorType[] types, string what)
    {
        op.Infer(types);
        for (int seed = 0; seed < 3; seed++)
        {
            double err = BackwardTests.Check(op, types, seed);
            Assert.True(err <= 1e-6, $"{what}: relative error {err:E2} (seed {seed})");
        }
    }

    [Theory]
    [InlineData(3, 1, 1, 1, true)] // depthwise
    [InlineData(3, 2, 2, 1, false)] // depthwise, stride 2, dilation 2, no bias
    [InlineData(1, 2, 1, 0, false)]
    [InlineData(1, 1, 2, 2, true)]
    [InlineData(3, 2, 1, 2, true)]
    public void Conv2d(int groups, int stride, int dilation, int padding, bool bias)
    {
        var op = new Conv2d(Vec.Of(stride, stride), Vec.Of(padding, padding), Vec.Of(dilation, dilation), groups);
        int cout = 6;
        var types = new List<TensorType> { F(2, 3, 7, 6), F(cout, 3 / groups, 3, 3) };
        if (bias) types.Add(F(cout));
        AssertClose(op, types.ToArray(), $"conv2d g={groups} s={stride} d={dilation} p={padding} bias={bias}");
    }

    [Fact]
    public void Conv2dAsymmetric()
    {
        var op = new Conv2d(Vec.Of(2, 1), Vec.Of(0, 2), Vec.Of(1, 3), 1);
        AssertClose(op, [F(1, 2, 8, 7), F(3, 2, 2, 3), F(3)], "conv2d asymmetric");
    }

    public static TheoryData<bool, bool, int, bool, bool, bool> GemmModes()
    {
        var d = new TheoryData<bool, bool, int, bool, bool, bool>();
        foreach (var inN in new[] { false, true })
        foreach (var outN in new[] { false, true })
        for (int act = 0; act < 4; act++)
        foreach (var grn in new[] { false, true })
        foreach (var res in new[] { false, true })
        foreach (var bias in new[] { false, true })
        {
            d.Add(inN, outN, act, grn, res, bias);
        }
        return d;
    }

    [Theory]
    [MemberData(nameof(GemmModes))]
    public void Gemm(bool inNchw, bool outNchw, int act, bool grn, bool residual, bool bias)
    {
        var op = new Gemm(inNchw, outNchw, (GemmAct)act, bias, grn, 1e-6, residual);
        int n = 2, h = 2, w = 3, k = 3, nout = 4;
        var types = new List<TensorType> { inNchw ? F(n, k, h, w) : F(n, h, w, k), F(nout, k) };
        if (bias) types.Add(F(nout));
        if (grn)
        {
            types.Add(F(1, 1, 1, nout));
            types.Add(F(1, 1, 1, nout));
        }
        if (residual) types.Add(outNchw ? F(n, nout, h, w) : F(n, h, w, nout));
        AssertClose(op, types.ToArray(), $"gemm {op}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void GemmRank2(bool bias)
    {
        var op = new Gemm(false, false, GemmAct.Gelu, bias, false, 1e-6, true);
        var types = new List<TensorType> { F(5, 3), F(4, 3) };
        if (bias) types.Add(F(4));
        types.Add(F(5, 4));
        AssertClose(op, types.ToArray(), "gemm rank 2");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Linear(bool bias)
    {
        var types = new List<TensorType> { F(2, 3, 5), F(4, 5) };
        if (bias) types.Add(F(4));
        AssertClose(new Linear(), types.ToArray(), "linear");
    }

    public static TheoryData<int[]> SubSets() => new(
        [0, 1, 2, 3, 4, 5],
        [0, 2, 3, 5],
        [1, 4],
        [2, 5], // both identity sub-channels of each rep channel pruned
        [5]);

    [Theory]
    [MemberData(nameof(SubSets))]
    public void SwCross(int[] subs)
    {
        var op = new SwCross(OpCatalog.SpecExample(), subs);
        AssertClose(op, [F(2, 2, 5, 6), F(subs.Length, 1, 3, 3), F(4, 2), F(2)], $"sw_cross subs {string.Join(",", subs)}");
    }

    [Theory]
    [MemberData(nameof(SubSets))]
    public void FusedShiftWise(int[] subs)
    {
        var op = new FusedShiftWise(OpCatalog.SpecExample(), subs, Vec.Of(2, 0), Vec.Of(1, 2, 1));
        AssertClose(op, [F(2, 3, 4, 5), F(subs.Length, 1, 3, 3), F(4, 2), F(5), F(3)],
            $"fused_shiftwise subs {string.Join(",", subs)}");
    }

    [Fact]
    public void FusedShiftWiseRepeatedRepChannel()
    {
        var op = new FusedShiftWise(OpCatalog.SpecExample(), Vec.Of(0, 1, 3, 4), Vec.Of(1, 1), Vec.Of<int>());
        AssertClose(op, [F(1, 2, 5, 6), F(4, 1, 3, 3), F(4, 2), F(2), F(0)], "fused_shiftwise repeated rep");
    }

    [Fact]
    public void ShiftAdd() => AssertClose(OpCatalog.SpecExample(), [F(2, 6, 7, 8)], "shift_add");

    [Fact]
    public void ShiftAddNullOutputGradientsCountAsZero()
    {
        var op = OpCatalog.SpecExample();
        var rng = new Random(3);
        var x = BackwardTests.RandomInputs(op, [F(1, 6, 5, 6)], rng);
        var y = ReferenceExecutor.Evaluate(op, x);
        Tensor Rand(Tensor t) => Tensor.FromDoubles(t.Type, Enumerable.Range(0, (int)t.Shape.Elements).Select(_ => rng.NextDouble()).ToArray());
        Tensor Zero(Tensor t) => Tensor.FromDoubles(t.Type, new double[t.Shape.Elements]);
        for (int keep = 0; keep < 3; keep++)
        {
            var g = Rand(y[keep]);
            var withNulls = Backward.Vjp(op, x, y, y.Select((t, i) => i == keep ? g : null).ToArray());
            var withZeros = Backward.Vjp(op, x, y, y.Select((t, i) => i == keep ? g : Zero(t)).ToArray());
            Assert.Equal(withZeros[0]!.ToDoubles(), withNulls[0]!.ToDoubles());
            Assert.Contains(withNulls[0]!.ToDoubles(), v => v != 0);
        }
    }
}
