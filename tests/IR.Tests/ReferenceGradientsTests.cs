using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;

namespace ShiftWise.IR.Tests;

/// <summary>
/// Whole-graph gradients (reverse mode over the backward rules) against central finite differences of the loss, in
/// float64: a small training-mode network (conv, batch norm with batch statistics, GELU, a value used twice, SE-style
/// scaling, pooling, linear, label-smoothed cross-entropy). Bound: 1e-6 relative to the directional derivative's scale plus the difference quotient's round-off (1e-8·|L|).
/// </summary>
public sealed class ReferenceGradientsTests
{
    private static TensorType F(params int[] d) => TensorType.Of(DType.F64, d);

    private static (Graph G, string Loss) Net()
    {
        var b = new GraphBuilder("net");
        var x = b.Input("x", F(3, 2, 5, 5));
        var y = b.Input("y", TensorType.Of(DType.I64, 3));
        var c = b.Apply1(new Conv2d(Vec.Of(1, 1), Vec.Of(1, 1), Vec.Of(1, 1), 1), "conv", x, b.Param("w", F(4, 2, 3, 3)), b.Param("cb", F(4)));
        var bn = b.Apply(new BatchNorm(1e-5, 0.1, Mode.Train), "bn", c, b.Param("g", F(4)), b.Param("be", F(4)),
            b.Param("rm", F(4), buffer: true), b.Param("rv", F(4), buffer: true))[0];
        var a = b.Apply1(new Unary(UnaryKind.Gelu), "act", bn);
        var pooled = b.Apply1(new Mean(Vec.Of(2, 3), true), "se_pool", a);
        var s = b.Apply1(new Unary(UnaryKind.Sigmoid), "se_gate", pooled);
        var scaled = b.Apply1(new Binary(BinaryKind.Mul), "se", a, s);        // a is used twice
        var res = b.Apply1(new Binary(BinaryKind.Add), "res", scaled, a);
        var gap = b.Apply1(new Mean(Vec.Of(2, 3), false), "gap", res);
        var logits = b.Apply1(new Linear(), "head", gap, b.Param("hw", F(3, 4)), b.Param("hb", F(3)));
        var loss = b.Apply1(new CrossEntropy(0.1), "loss", logits, y);
        b.Output(loss);
        return (b.Build(), loss.Name);
    }

    [Fact]
    public void GradientsOfEveryParameterMatchFiniteDifferences()
    {
        var (g, loss) = Net();
        var rng = new Random(5);
        Tensor Rand(ValueDecl d) => d.Type.DType == DType.I64
            ? Tensor.FromDoubles(d.Type, Enumerable.Range(0, (int)d.Type.Shape.Elements).Select(_ => (double)rng.Next(3)).ToArray())
            : Tensor.FromDoubles(d.Type, Enumerable.Range(0, (int)d.Type.Shape.Elements).Select(_ => d.Name == "rv" ? 1 + rng.NextDouble() : rng.NextDouble() * 2 - 1).ToArray());
        var inputs = g.Inputs.ToDictionary(d => d.Name, Rand);
        var weights = g.Params.ToDictionary(d => d.Name, Rand);
        var (grads, _) = ReferenceGradients.Run(g, weights, inputs, loss);
        Assert.Equal(new[] { "be", "cb", "g", "hb", "hw", "w", "x" }, grads.Keys.Order(StringComparer.Ordinal));
        double L(IReadOnlyDictionary<string, Tensor> w, IReadOnlyDictionary<string, Tensor> x) =>
            ReferenceExecutor.Run(g, w, x)[loss].ToDoubles()[0];
        const double h = 1e-6;
        double l0 = L(weights, inputs);
        // the conv bias feeds a batch norm with batch statistics, which removes any per-channel shift: its gradient is 0
        Assert.True(grads["cb"].ToDoubles().All(v => Math.Abs(v) < 1e-12));
        foreach (var (name, grad) in grads)
        {
            bool isInput = inputs.ContainsKey(name);
            var baseT = isInput ? inputs[name] : weights[name];
            var gv = grad.ToDoubles();
            for (int t = 0; t < 3; t++)
            {
                var dir = Enumerable.Range(0, gv.Length).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
                double Shifted(double s)
                {
                    var moved = Tensor.FromDoubles(baseT.Type, baseT.ToDoubles().Select((v, k) => v + s * dir[k]).ToArray());
                    var w = new Dictionary<string, Tensor>(weights);
                    var x = new Dictionary<string, Tensor>(inputs);
                    if (isInput) x[name] = moved;
                    else w[name] = moved;
                    return L(w, x);
                }
                double num = (Shifted(h) - Shifted(-h)) / (2 * h);
                double ana = gv.Select((v, k) => v * dir[k]).Sum();
                // relative to the terms' scale, plus the difference quotient's own round-off (about 1e-16·|L| / h)
                double scale = gv.Select((v, k) => Math.Abs(v * dir[k])).Sum();
                Assert.True(Math.Abs(num - ana) <= 1e-6 * scale + 1e-8 * Math.Max(1, Math.Abs(l0)),
                    $"{name}: finite difference {num:E6}, gradient {ana:E6}");
            }
        }
    }

    [Fact]
    public void TheLossMustBeOneValue()
    {
        var (g, _) = Net();
        var rng = new Random(1);
        var inputs = g.Inputs.ToDictionary(d => d.Name, d => Tensor.FromDoubles(d.Type, new double[d.Type.Shape.Elements]));
        var weights = g.Params.ToDictionary(d => d.Name, d => Tensor.FromDoubles(d.Type,
            Enumerable.Range(0, (int)d.Type.Shape.Elements).Select(_ => 1 + rng.NextDouble()).ToArray()));
        var e = Assert.Throws<IrException>(() => ReferenceGradients.Run(g, weights, inputs, "act"));
        Assert.Contains("the loss must be a single value", e.Message);
    }
}
