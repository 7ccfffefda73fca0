using ShiftWise.Frontend.Tables;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using static ShiftWise.Runtime.Tests.KernelHarness;

namespace ShiftWise.Runtime.Tests;

/// <summary>One small valid instance of every op, for the coverage test of the kernel table.</summary>
internal static class Coverage
{
    public static IEnumerable<(Op Op, Tensor[] Inputs)> Samples()
    {
        var rng = new Random(42);
        var x = Rand(rng, 2, 4, 5, 6);
        Tensor C(int n) => Rand(rng, n);
        var s = SwTables.ShiftAdd(7, 3, 2, 2);
        yield return (Conv2d.Simple(1), [x, Rand(rng, 3, 4, 3, 3), C(3)]);
        yield return (s, [Rand(rng, 1, s.Rep * s.N, 5 + 2 * s.Extra, 6 + 2 * s.Extra)]);
        yield return (new BatchNorm(1e-5, 0.1, Mode.Eval), [x, C(4), C(4), C(4), Rand(rng, new Shape(4), 0.5, 1)]);
        yield return (new LayerNorm(1e-6, NormLayout.ChannelsFirst), [x, C(4), C(4)]);
        yield return (new Grn(1e-6), [x, Rand(rng, 1, 1, 1, 6), Rand(rng, 1, 1, 1, 6)]);
        yield return (new Linear(), [x, Rand(rng, 3, 6), C(3)]);
        yield return (new Unary(UnaryKind.Gelu), [x]);
        yield return KernelTests.GradCase(rng, new Unary(UnaryKind.Gelu), [x], [0]);
        yield return (new Unary(UnaryKind.Relu), [x]);
        yield return (new Unary(UnaryKind.Sigmoid), [x]);
        yield return (new Binary(BinaryKind.Add), [x, Rand(rng, 1, 4, 1, 1)]);
        yield return (new Binary(BinaryKind.Mul), [x, Rand(rng, 2, 4, 1, 1)]);
        yield return (new Mean(Vec.Of(2, 3), false), [x]);
        yield return (new Softmax(-1), [x]);
        yield return (new CrossEntropy(0.1), [Rand(rng, 3, 5), Labels(rng, 3, 5)]);
        yield return (new DropPath(0.2, Mode.Eval, 3), [x]);
        yield return (new ChannelSelect(1, Vec.Of(3, 0, 3)), [x]);
        yield return (new Concat(1), [x, Rand(rng, 2, 1, 5, 6)]);
        yield return (new Permute(Vec.Of(0, 2, 3, 1)), [x]);
        yield return (new Reshape(Vec.Of(2, 4, 30)), [x]);
        yield return (new ScaleBias(1), [x, C(4), C(4)]);
        yield return (new SwCross(s, SwCore.AllSubs(s)),
            [Rand(rng, 1, s.Rep, 5, 6), Rand(rng, s.Rep * s.N, 1, 3, 3), Rand(rng, 4, s.Rep), C(s.Rep)]);
        yield return (new FusedShiftWise(s, SwCore.AllSubs(s), Vec.Of(3, 1), Vec.Of(0)),
            [x, Rand(rng, s.Rep * s.N, 1, 3, 3), Rand(rng, 4, s.Rep), C(s.Rep + 1), C(1)]);
        yield return (Gemm.Plain(true), [Rand(rng, 7, 6), Rand(rng, 5, 6), C(5)]);
    }
}
