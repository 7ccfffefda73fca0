using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;

namespace ShiftWise.IR.Tests;

/// <summary>
/// The fused ops against compositions of the primitive ops (themselves checked against PyTorch), and the collapsed
/// cross against the factorised definition, over random configurations. All float64: bound 1e-12.
/// </summary>
public sealed class FusedOpTests
{
    public static TheoryData<int> Seeds() => new(Enumerable.Range(0, 24));

    private static Tensor[] Eval(Op op, params Tensor[] xs) => ReferenceExecutor.Evaluate(op, xs);

    private static double Err(Tensor a, Tensor b) => TestUtil.RelL2(a.ToDoubles(), b.ToDoubles());

    /// <summary>conv2d → shift_add → per-path scale → sum + scaled residual + bias, with primitive ops.</summary>
    private static Tensor Composed(ShiftAdd s, Tensor x, Tensor wFull, Tensor scales, Tensor bias)
    {
        int r = s.Rep, k = s.Small;
        var conv = Eval(Conv2d.Simple(k - 1, groups: r), x, wFull)[0];
        var paths = Eval(s, conv);
        var sc = scales.ToDoubles();
        Tensor Row(int i) => Tensor.F64(new Shape(1, r, 1, 1), sc.AsSpan(i * r, r).ToArray());
        var mul = new Binary(BinaryKind.Mul);
        var add = new Binary(BinaryKind.Add);
        var y = Eval(mul, paths[0], Row(0))[0];
        y = Eval(add, y, Eval(mul, paths[1], Row(1))[0])[0];
        y = Eval(add, y, Eval(mul, paths[2], Row(2))[0])[0];
        y = Eval(add, y, Eval(mul, x, Row(3))[0])[0];
        return Eval(add, y, bias.Reshape(new Shape(1, r, 1, 1)))[0];
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void SwCrossEqualsItsDecompositionAndItsCollapse(int seed)
    {
        var rng = new Random(seed);
        var (s, h, w) = SwRandom.Config(rng);
        int r = s.Rep, k = s.Small, rn = r * s.N;
        var x = SwRandom.Rand(rng, 2, r, h, w);
        var wFull = SwRandom.Rand(rng, rn, 1, k, k).ToDoubles();
        // prune a random third of the sub-kernels: the pruned ones are zero in the full weight
        var subs = Enumerable.Range(0, rn).Where(_ => rng.Next(3) > 0).ToArray();
        var keep = subs.ToHashSet();
        for (int t = 0; t < rn; t++)
        {
            if (!keep.Contains(t)) Array.Clear(wFull, t * k * k, k * k);
        }
        var wKept = subs.SelectMany(t => wFull.Skip(t * k * k).Take(k * k)).ToArray();
        var scales = SwRandom.Rand(rng, 4, r);
        var bias = SwRandom.Rand(rng, r);
        var op = new SwCross(s, subs);
        var y = Eval(op, x, Tensor.F64(new Shape(subs.Length, 1, k, k), wKept), scales, bias)[0];
        var expected = Composed(s, x, Tensor.F64(new Shape(rn, 1, k, k), wFull), scales, bias);
        Assert.True(Err(y, expected) <= 1e-12, $"B={s.Big} k={k} G={s.NRep} R={r} {h}x{w}: {Err(y, expected):e2}");

        var cross = SwCollapse.Collapse(s, subs, wKept, scales.ToDoubles());
        var yc = SwCollapse.Apply(cross, x.ToDoubles(), 2, h, w, bias.ToDoubles());
        Assert.True(TestUtil.RelL2(yc, expected.ToDoubles()) <= 1e-12, $"collapse B={s.Big} k={k} {h}x{w}");
        Assert.Equal(2 * s.N * k * k - k * k, cross.Taps);
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void FusedShiftWiseEqualsSelectCrossConcatAffine(int seed)
    {
        var rng = new Random(100 + seed);
        var (s, h, w) = SwRandom.Config(rng);
        int r = s.Rep, k = s.Small, g = rng.Next(0, 3), c = r + g + rng.Next(0, 2);
        var perm = Enumerable.Range(0, c).OrderBy(_ => rng.Next()).ToArray();
        var rep = perm[..r];
        var ghost = perm[r..(r + g)];
        var subs = SwCore.AllSubs(s);
        var x = SwRandom.Rand(rng, 1, c, h, w);
        var wt = SwRandom.Rand(rng, subs.Count, 1, k, k);
        var scales = SwRandom.Rand(rng, 4, r);
        var bias = SwRandom.Rand(rng, r + g);
        var gs = SwRandom.Rand(rng, g);
        var y = Eval(new FusedShiftWise(s, subs, rep, ghost), x, wt, scales, bias, gs)[0];

        var xr = Eval(new ChannelSelect(1, rep), x)[0];
        var z = Eval(new SwCross(s, subs), xr, wt, scales, Tensor.F64(new Shape(r), bias.ToDoubles()[..r]))[0];
        if (g > 0)
        {
            var xg = Eval(new ChannelSelect(1, ghost), x)[0];
            xg = Eval(new ScaleBias(1), xg, gs, Tensor.F64(new Shape(g), bias.ToDoubles()[r..]))[0];
            z = Eval(new Concat(1), z, xg)[0];
        }
        Assert.True(Err(y, z) <= 1e-12);
    }

    [Fact]
    public void ScaleBiasByHand()
    {
        var y = Eval(new ScaleBias(1), Tensor.F64(new Shape(1, 2, 2), 1, 2, 3, 4), Tensor.F64(new Shape(2), 10, -1),
            Tensor.F64(new Shape(2), 0.5, 1))[0];
        Assert.Equal([10.5, 20.5, -2, -3], y.ToDoubles());
    }

    [Theory]
    [InlineData(false, false, GemmAct.None, false, false, false)]
    [InlineData(true, false, GemmAct.Gelu, true, true, false)]
    [InlineData(false, true, GemmAct.None, false, false, true)]
    [InlineData(true, true, GemmAct.Sigmoid, true, false, true)]
    [InlineData(false, false, GemmAct.Relu, true, false, false)]
    public void GemmEqualsItsPrimitiveChain(bool inNchw, bool outNchw, GemmAct act, bool bias, bool grn, bool res)
    {
        var rng = new Random(7);
        var x = SwRandom.Rand(rng, 2, 3, 4, 5); // NCHW (C=3) or NHWC (C=5)
        int kdim = inNchw ? 3 : 5, nout = 6;
        var w = SwRandom.Rand(rng, nout, kdim);
        var b = SwRandom.Rand(rng, nout);
        var gamma = SwRandom.Rand(rng, 1, 1, 1, nout);
        var beta = SwRandom.Rand(rng, 1, 1, 1, nout);
        var yShape = inNchw ? new Shape(2, 4, 5, nout) : new Shape(2, 3, 4, nout);
        var resShape = outNchw ? new Shape(yShape[0], nout, yShape[1], yShape[2]) : yShape;
        var residual = SwRandom.Rand(rng, resShape.ToArray());
        var ins = new List<Tensor> { x, w };
        if (bias) ins.Add(b);
        if (grn) ins.AddRange([gamma, beta]);
        if (res) ins.Add(residual);
        var y = Eval(new Gemm(inNchw, outNchw, act, bias, grn, 1e-6, res), ins.ToArray())[0];

        var t = inNchw ? Eval(new Permute(Vec.Of(0, 2, 3, 1)), x)[0] : x;
        t = Eval(new Linear(), bias ? [t, w, b] : [t, w])[0];
        if (act != GemmAct.None)
        {
            t = Eval(new Unary(act switch { GemmAct.Gelu => UnaryKind.Gelu, GemmAct.Relu => UnaryKind.Relu, _ => UnaryKind.Sigmoid }), t)[0];
        }
        if (grn) t = Eval(new Grn(1e-6), t, gamma, beta)[0];
        if (outNchw) t = Eval(new Permute(Vec.Of(0, 3, 1, 2)), t)[0];
        if (res) t = Eval(new Binary(BinaryKind.Add), t, residual)[0];
        Assert.True(Err(y, t) <= 1e-14);
    }
}
