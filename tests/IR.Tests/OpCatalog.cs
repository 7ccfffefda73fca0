using ShiftWise.IR.Ops;

namespace ShiftWise.IR.Tests;

/// <summary>
/// One entry per op of <see cref="OpTable"/>: a small valid graph using it (for print/parse round trips) and a bad
/// application that the verifier must reject, with a phrase its message must contain.
/// A test checks that every op the parser knows has an entry here, so a new op cannot go untested.
/// </summary>
internal static class OpCatalog
{
    private static TensorType F(params int[] d) => TensorType.Of(DType.F32, d);

    /// <summary>The worked example of SPEC 1.8: B=7, k=3, G=2, R=2.</summary>
    public static ShiftAdd SpecExample() => new(7, 3, 2,
        new[]
        {
            -5, -2, -5, 1,
            1, 1, -2, -5,
            -2, -5, 1, -2,
            1, 1, -2, -5,
            -2, -5, -5, 1,
            -5, -2, 1, -2,
        },
        new[] { 0, 1, 3, 4 });

    public sealed record Entry(Func<GraphBuilder, Value[]> Build, Func<TensorType[]> BadInputs, Op BadOp, string Phrase);

    public static readonly Dictionary<string, Entry> Entries = new()
    {
        ["conv2d"] = new(b => b.Apply(new Conv2d(Vec.Of(2, 1), Vec.Of(1, 2), Vec.Of(1, 2), 2), "conv",
                b.Input("x", F(1, 4, 9, 8)), b.Param("w", F(6, 2, 3, 3)), b.Param("bias", F(6))),
            () => [F(1, 4, 9, 8), F(6, 3, 3, 3)], Conv2d.Simple(1, groups: 2), "input channels per group"),
        ["shift_add"] = new(b => b.Apply(SpecExample(), "sw", b.Input("x", F(2, 6, 7, 8))),
            () => [F(2, 5, 7, 8)], SpecExample(), "the tables need R*n = 6"),
        ["batch_norm"] = new(b => b.Apply(new BatchNorm(1e-5, 0.1, Mode.Train), "bn", b.Input("x", F(2, 3, 4, 4)),
                b.Param("w", F(3)), b.Param("b", F(3)), b.Param("rm", F(3), buffer: true), b.Param("rv", F(3), buffer: true)),
            () => [F(2, 3, 4, 4), F(3), F(3), F(4), F(3)], new BatchNorm(1e-5, 0.1, Mode.Eval), "input 3 must have shape [3]"),
        ["layer_norm"] = new(b => b.Apply(new LayerNorm(1e-6, NormLayout.ChannelsFirst), "ln",
                b.Input("x", F(1, 4, 3, 3)), b.Param("w", F(4)), b.Param("b", F(4))),
            () => [F(1, 4, 3, 3), F(3), F(3)], new LayerNorm(1e-6, NormLayout.ChannelsFirst), "weight must have shape [4]"),
        ["grn"] = new(b => b.Apply(new Grn(1e-6), "grn", b.Input("x", F(1, 2, 2, 8)), b.Param("g", F(1, 1, 1, 8))),
            () => [F(1, 2, 2, 8), F(8)], new Grn(1e-6), "must have shape [1,1,1,8]"),
        ["linear"] = new(b => b.Apply(new Linear(), "fc", b.Input("x", F(2, 5)), b.Param("w", F(3, 5)), b.Param("b", F(3))),
            () => [F(2, 5), F(3, 4)], new Linear(), "needs 5 input features"),
        ["gelu"] = new(b => b.Apply(new Unary(UnaryKind.Gelu), "g", b.Input("x", F(2, 3))),
            () => [TensorType.Of(DType.I32, 2)], new Unary(UnaryKind.Gelu), "must be floating point"),
        ["relu"] = new(b => b.Apply(new Unary(UnaryKind.Relu), "r", b.Input("x", F(2, 3))),
            () => [F(2), F(2)], new Unary(UnaryKind.Relu), "expects 1 inputs, got 2"),
        ["sigmoid"] = new(b => b.Apply(new Unary(UnaryKind.Sigmoid), "s", b.Input("x", F(2, 3))),
            () => [TensorType.Of(DType.I64, 3)], new Unary(UnaryKind.Sigmoid), "must be floating point"),
        ["add"] = new(b => b.Apply(new Binary(BinaryKind.Add), "a", b.Input("x", F(2, 3, 4)), b.Input("y", F(3, 1))),
            () => [F(2, 3), F(4, 3)], new Binary(BinaryKind.Add), "do not broadcast"),
        ["mul"] = new(b => b.Apply(new Binary(BinaryKind.Mul), "m", b.Input("x", F(2, 3)), b.Input("y", F(1, 3))),
            () => [F(2, 3), TensorType.Of(DType.F64, 2, 3)], new Binary(BinaryKind.Mul), "expected f32"),
        ["mean"] = new(b => b.Apply(new Mean(Vec.Of(2, 3), true), "gap", b.Input("x", F(1, 2, 3, 3))),
            () => [F(1, 2, 3, 3)], new Mean(Vec.Of(2, 4), false), "out of range"),
        ["softmax"] = new(b => b.Apply(new Softmax(-1), "sm", b.Input("x", F(2, 5))),
            () => [F(2, 5)], new Softmax(2), "out of range"),
        ["cross_entropy"] = new(b => b.Apply(new CrossEntropy(0.1), "ce", b.Input("x", F(4, 5)),
                b.Input("y", TensorType.Of(DType.I64, 4))),
            () => [F(4, 5), F(4)], new CrossEntropy(0), "labels must be i64 or i32"),
        ["grad"] = new(b =>
            {
                var x = b.Input("x", F(2, 3));
                var y = b.Apply1(new Unary(UnaryKind.Gelu), "act", x);
                return b.Apply(new Grad(new Unary(UnaryKind.Gelu), Vec.Of(0), Vec.Of(0)), "d.act", x, y, b.Input("gy", F(2, 3)));
            },
            () => [F(2, 3), F(2, 3), F(3, 2)], new Grad(new Unary(UnaryKind.Gelu), Vec.Of(0), Vec.Of(0)), "gradient of output 0 must be"),
        ["drop_path"] = new(b => b.Apply(new DropPath(0.2, Mode.Train, 7), "dp", b.Input("x", F(4, 3))),
            () => [F(4, 3)], new DropPath(1.0, Mode.Train, 7), "must be in [0, 1)"),
        ["channel_select"] = new(b => b.Apply(new ChannelSelect(1, Vec.Of(2, 0)), "sel", b.Input("x", F(1, 3, 2, 2))),
            () => [F(1, 3, 2, 2)], new ChannelSelect(1, Vec.Of(3)), "index 3 is out of range"),
        ["concat"] = new(b => b.Apply(new Concat(1), "cat", b.Input("x", F(1, 3, 2)), b.Input("y", F(1, 2, 2))),
            () => [F(1, 3, 2), F(1, 2, 3)], new Concat(1), "does not match"),
        ["permute"] = new(b => b.Apply(new Permute(Vec.Of(0, 2, 3, 1)), "p", b.Input("x", F(1, 2, 3, 4))),
            () => [F(1, 2, 3, 4)], new Permute(Vec.Of(0, 1, 1, 2)), "is not a permutation"),
        ["reshape"] = new(b => b.Apply(new Reshape(Vec.Of(6, 4)), "rs", b.Input("x", F(2, 3, 4))),
            () => [F(2, 3, 4)], new Reshape(Vec.Of(5, 5)), "cannot reshape"),
        ["scale_bias"] = new(b => b.Apply(new ScaleBias(1), "sb", b.Input("x", F(1, 3, 2, 2)), b.Param("s", F(3)),
                b.Param("b", F(3))),
            () => [F(1, 3, 2, 2), F(2), F(3)], new ScaleBias(1), "scale and bias must have shape [3]"),
        ["sw_cross"] = new(b => b.Apply(new SwCross(SpecExample(), Vec.Of(0, 2, 3, 5)), "cross", b.Input("x", F(1, 2, 5, 6)),
                b.Param("w", F(4, 1, 3, 3)), b.Param("s", F(4, 2)), b.Param("b", F(2))),
            () => [F(1, 2, 5, 6), F(6, 1, 3, 3), F(4, 2), F(2)], new SwCross(SpecExample(), Vec.Of(0, 2, 3, 5)),
            "weight must have shape [4,1,3,3]"),
        ["fused_shiftwise"] = new(b => b.Apply(new FusedShiftWise(SpecExample(), SwCore.AllSubs(SpecExample()),
                Vec.Of(1, 2), Vec.Of(0)), "fsw", b.Input("x", F(1, 3, 5, 6)), b.Param("w", F(6, 1, 3, 3)),
                b.Param("s", F(4, 2)), b.Param("b", F(3)), b.Param("gs", F(1))),
            () => [F(1, 3, 5, 6), F(6, 1, 3, 3), F(4, 2), F(3), F(1)],
            new FusedShiftWise(SpecExample(), SwCore.AllSubs(SpecExample()), Vec.Of(1, 3), Vec.Of(0)),
            "channel 3 is out of range"),
        ["gemm"] = new(b => b.Apply(new Gemm(true, true, GemmAct.Gelu, true, true, 1e-6, true), "mm",
                b.Input("x", F(1, 3, 2, 2)), b.Param("w", F(4, 3)), b.Param("b", F(4)), b.Param("g", F(1, 1, 1, 4)),
                b.Param("be", F(1, 1, 1, 4)), b.Input("res", F(1, 4, 2, 2))),
            () => [F(1, 3, 2, 2), F(4, 2)], new Gemm(true, false, GemmAct.None, false, false, 1e-6, false),
            "needs 3 input features"),
    };
}
