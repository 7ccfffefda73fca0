using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;

namespace ShiftWise.Tests.Shared;

/// <summary>
/// The one op catalogue of the tests (linked into the IR, Runtime and CudaEmu test projects): for every op of
/// <see cref="OpTable"/>, a small valid sample (its inputs, how the graph declares them and which values they may
/// hold) and a bad application the verifier must reject, with a phrase its message must contain.
/// The IR tests round-trip and differentiate the samples, the CPU kernel table and the CUDA lowering run them, and
/// each of those checks asserts through <see cref="AssertCoversEveryOp"/> that every op the parser knows is either
/// covered or refused with a reason, so a new op cannot go untested.
/// </summary>
public static class OpCatalog
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

    /// <summary>
    /// A graph of one node (named "d") applying <paramref name="op"/> to graph inputs in0, in1, … of the given types,
    /// its outputs the graph's: how a node of a bigger graph is lowered or run on its own.
    /// </summary>
    public static Graph OneNode(string name, Op op, IReadOnlyList<TensorType> inputs)
    {
        var b = new GraphBuilder(name);
        var vals = inputs.Select((t, i) => b.Input($"in{i}", t)).ToArray();
        b.Output(b.Apply(op, "d", vals));
        return b.Build();
    }

    /// <summary>How a sample's graph declares an input.</summary>
    public enum Role { Input, Param, Buffer }

    /// <summary>
    /// One input of a sample: its name and type, its role in the graph, and the range its random values are drawn
    /// from (integers: [Low, High), labels below the class count; floats: [Low, High]).
    /// </summary>
    public sealed record Arg(string Name, TensorType Type, Role Role = Role.Input, double Low = -1, double High = 1);

    /// <summary>What the verifier must refuse: the op applied to inputs of these types, with this phrase.</summary>
    public sealed record Rejection(Op Op, TensorType[] Inputs, string Phrase);

    /// <summary>One op: a valid sample and a rejected application.</summary>
    public sealed record Entry(Op Op, Arg[] Args, Rejection Bad)
    {
        /// <summary>The input types of the sample.</summary>
        public TensorType[] Types => Args.Select(a => a.Type).ToArray();

        /// <summary>Applies the op, as one node named after it, to fresh inputs of <paramref name="b"/>.</summary>
        public Value[] Build(GraphBuilder b) => b.Apply(Op, Op.Name, Args.Select(a => a.Role switch
        {
            Role.Input => b.Input(a.Name, a.Type),
            Role.Param => b.Param(a.Name, a.Type),
            _ => b.Param(a.Name, a.Type, buffer: true),
        }).ToArray());

        /// <summary>A graph of the one node, all its outputs graph outputs.</summary>
        public Graph OneNodeGraph(string name)
        {
            var b = new GraphBuilder(name);
            b.Output(Build(b));
            return b.Build();
        }

        /// <summary>
        /// Random inputs within each argument's range. A grad sample gets the forward outputs the reference executor
        /// computes from its forward inputs (a kernel may read them instead of recomputing), then random gradients.
        /// </summary>
        public Tensor[] Draw(Random rng)
        {
            if (Op is not Grad g) return Args.Select(a => Random(a, rng)).ToArray();
            int forward = Args.Length - g.Of.OutputSuffixes.Count - g.OutGrads.Count;
            var xs = Args[..forward].Select(a => Random(a, rng)).ToArray();
            var ys = ReferenceExecutor.Evaluate(g.Of, xs);
            var gys = Args[(forward + ys.Length)..].Select(a => Random(a, rng));
            return [.. xs, .. ys, .. gys];
        }

        private static Tensor Random(Arg a, Random rng)
        {
            var v = new double[a.Type.Shape.Elements];
            bool integer = a.Type.DType is DType.I64 or DType.I32;
            for (long i = 0; i < v.Length; i++)
            {
                v[i] = integer ? rng.Next((int)a.Low, (int)a.High) : a.Low + rng.NextDouble() * (a.High - a.Low);
            }
            return Tensor.FromDoubles(a.Type, v);
        }
    }

    private static Arg X(string name, params int[] d) => new(name, F(d));

    private static Arg P(string name, params int[] d) => new(name, F(d), Role.Param);

    /// <summary>Every entry, by op name.</summary>
    public static IReadOnlyDictionary<string, Entry> Entries { get; } = Build();

    /// <summary>
    /// Asserts that <paramref name="covered"/> and the keys of <paramref name="refused"/> (each with its reason)
    /// split the ops the parser knows between them: none missing, none in both, none unknown.
    /// </summary>
    public static void AssertCoversEveryOp(string what, IEnumerable<string> covered,
        IReadOnlyDictionary<string, string> refused)
    {
        var cov = covered.ToHashSet(StringComparer.Ordinal);
        var known = OpTable.Names.ToHashSet(StringComparer.Ordinal);
        var missing = known.Where(n => !cov.Contains(n) && !refused.ContainsKey(n)).Order().ToArray();
        Assert.True(missing.Length == 0, $"{what}: no sample and no refusal for op(s) {string.Join(", ", missing)}");
        var both = cov.Where(refused.ContainsKey).Order().ToArray();
        Assert.True(both.Length == 0, $"{what}: op(s) {string.Join(", ", both)} both covered and listed as refused");
        var unknown = cov.Concat(refused.Keys).Where(n => !known.Contains(n)).Distinct().Order().ToArray();
        Assert.True(unknown.Length == 0, $"{what}: op(s) {string.Join(", ", unknown)} unknown to the parser");
        Assert.All(refused, r => Assert.False(string.IsNullOrWhiteSpace(r.Value), $"{what}: {r.Key} has no reason"));
    }

    private static Dictionary<string, Entry> Build()
    {
        var sw = SpecExample();
        var list = new Entry[]
        {
            new(new Conv2d(Vec.Of(2, 1), Vec.Of(1, 2), Vec.Of(1, 2), 2),
                [X("x", 1, 4, 9, 8), P("w", 6, 2, 3, 3), P("bias", 6)],
                new(Conv2d.Simple(1, groups: 2), [F(1, 4, 9, 8), F(6, 3, 3, 3)], "input channels per group")),
            new(sw, [X("x", 2, 6, 7, 8)], new(sw, [F(2, 5, 7, 8)], "the tables need R*n = 6")),
            new(new BatchNorm(1e-5, 0.1, Mode.Train),
                [X("x", 2, 3, 4, 4), P("w", 3), P("b", 3), new("rm", F(3), Role.Buffer),
                    new("rv", F(3), Role.Buffer, 0.5, 1.5)], // a running variance is positive
                new(new BatchNorm(1e-5, 0.1, Mode.Eval), [F(2, 3, 4, 4), F(3), F(3), F(4), F(3)],
                    "input 3 must have shape [3]")),
            new(new LayerNorm(1e-6, NormLayout.ChannelsFirst), [X("x", 1, 4, 3, 3), P("w", 4), P("b", 4)],
                new(new LayerNorm(1e-6, NormLayout.ChannelsFirst), [F(1, 4, 3, 3), F(3), F(3)],
                    "weight must have shape [4]")),
            new(new Grn(1e-6), [X("x", 1, 2, 2, 8), P("g", 1, 1, 1, 8)],
                new(new Grn(1e-6), [F(1, 2, 2, 8), F(8)], "must have shape [1,1,1,8]")),
            new(new Linear(), [X("x", 2, 5), P("w", 3, 5), P("b", 3)],
                new(new Linear(), [F(2, 5), F(3, 4)], "needs 5 input features")),
            new(new Unary(UnaryKind.Gelu), [X("x", 2, 3)],
                new(new Unary(UnaryKind.Gelu), [TensorType.Of(DType.I32, 2)], "must be floating point")),
            new(new Unary(UnaryKind.Relu), [X("x", 2, 3)],
                new(new Unary(UnaryKind.Relu), [F(2), F(2)], "expects 1 inputs, got 2")),
            new(new Unary(UnaryKind.Sigmoid), [X("x", 2, 3)],
                new(new Unary(UnaryKind.Sigmoid), [TensorType.Of(DType.I64, 3)], "must be floating point")),
            new(new Binary(BinaryKind.Add), [X("x", 2, 3, 4), X("y", 3, 1)],
                new(new Binary(BinaryKind.Add), [F(2, 3), F(4, 3)], "do not broadcast")),
            new(new Binary(BinaryKind.Mul), [X("x", 2, 3), X("y", 1, 3)],
                new(new Binary(BinaryKind.Mul), [F(2, 3), TensorType.Of(DType.F64, 2, 3)], "expected f32")),
            new(new Mean(Vec.Of(2, 3), true), [X("x", 1, 2, 3, 3)],
                new(new Mean(Vec.Of(2, 4), false), [F(1, 2, 3, 3)], "out of range")),
            new(new Softmax(-1), [X("x", 2, 5)], new(new Softmax(2), [F(2, 5)], "out of range")),
            new(new CrossEntropy(0.1), [X("x", 4, 5), new("y", TensorType.Of(DType.I64, 4), Role.Input, 0, 5)],
                new(new CrossEntropy(0), [F(4, 5), F(4)], "labels must be i64 or i32")), // labels: 5 classes
            new(new Grad(new Unary(UnaryKind.Gelu), Vec.Of(0), Vec.Of(0)),
                [X("x", 2, 3), X("y", 2, 3), X("gy", 2, 3)], // the forward input, its output, that output's gradient
                new(new Grad(new Unary(UnaryKind.Gelu), Vec.Of(0), Vec.Of(0)), [F(2, 3), F(2, 3), F(3, 2)],
                    "gradient of output 0 must be")),
            new(new DropPath(0.2, Mode.Train, 7), [X("x", 4, 3)],
                new(new DropPath(1.0, Mode.Train, 7), [F(4, 3)], "must be in [0, 1)")),
            new(new ChannelSelect(1, Vec.Of(2, 0)), [X("x", 1, 3, 2, 2)],
                new(new ChannelSelect(1, Vec.Of(3)), [F(1, 3, 2, 2)], "index 3 is out of range")),
            new(new Concat(1), [X("x", 1, 3, 2), X("y", 1, 2, 2)],
                new(new Concat(1), [F(1, 3, 2), F(1, 2, 3)], "does not match")),
            new(new Permute(Vec.Of(0, 2, 3, 1)), [X("x", 1, 2, 3, 4)],
                new(new Permute(Vec.Of(0, 1, 1, 2)), [F(1, 2, 3, 4)], "is not a permutation")),
            new(new Reshape(Vec.Of(6, 4)), [X("x", 2, 3, 4)],
                new(new Reshape(Vec.Of(5, 5)), [F(2, 3, 4)], "cannot reshape")),
            new(new Cast(DType.F64), [X("x", 2, 3)],
                new(new Cast(DType.I32), [F(2, 3)], "must be a float type")),
            new(new ScaleBias(1), [X("x", 1, 3, 2, 2), P("s", 3), P("b", 3)],
                new(new ScaleBias(1), [F(1, 3, 2, 2), F(2), F(3)], "scale and bias must have shape [3]")),
            new(new SwCross(sw, Vec.Of(0, 2, 3, 5)), [X("x", 1, 2, 5, 6), P("w", 4, 1, 3, 3), P("s", 4, 2), P("b", 2)],
                new(new SwCross(sw, Vec.Of(0, 2, 3, 5)), [F(1, 2, 5, 6), F(6, 1, 3, 3), F(4, 2), F(2)],
                    "weight must have shape [4,1,3,3]")),
            new(new FusedShiftWise(sw, SwCore.AllSubs(sw), Vec.Of(1, 2), Vec.Of(0)),
                [X("x", 1, 3, 5, 6), P("w", 6, 1, 3, 3), P("s", 4, 2), P("b", 3), P("gs", 1)],
                new(new FusedShiftWise(sw, SwCore.AllSubs(sw), Vec.Of(1, 3), Vec.Of(0)),
                    [F(1, 3, 5, 6), F(6, 1, 3, 3), F(4, 2), F(3), F(1)], "channel 3 is out of range")),
            new(new Gemm(true, true, GemmAct.Gelu, true, true, 1e-6, true),
                [X("x", 1, 3, 2, 2), P("w", 4, 3), P("b", 4), P("g", 1, 1, 1, 4), P("be", 1, 1, 1, 4),
                    X("res", 1, 4, 2, 2)],
                new(new Gemm(true, false, GemmAct.None, false, false, 1e-6, false), [F(1, 3, 2, 2), F(4, 2)],
                    "needs 3 input features")),
            new(new GemmGrnFold(true, GemmAct.Gelu, true, 1e-6, GemmAct.Relu, true, true),
                [X("x", 1, 3, 2, 2), P("w", 4, 3), P("b", 4), P("g", 1, 1, 1, 4), P("w2", 5, 4), P("b2", 5),
                    X("res", 1, 5, 2, 2)],
                new(new GemmGrnFold(false, GemmAct.None, false, 1e-6, GemmAct.None, false, false),
                    [F(1, 2, 2, 3), F(4, 3), F(1, 1, 1, 4), F(5, 3), F(5)], "needs 4 input features")),
        };
        return list.ToDictionary(e => e.Op.Name, StringComparer.Ordinal);
    }
}
