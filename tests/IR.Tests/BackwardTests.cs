using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;

namespace ShiftWise.IR.Tests;

/// <summary>
/// Every op's backward rule against central finite differences in float64: for random inputs x, a random upstream
/// gradient g of every float output and random directions d, the directional derivative of L(x) = Σ ⟨op(x), g⟩ along d,
/// (L(x + h·d) − L(x − h·d)) / 2h with h = 1e-6, must equal ⟨∇L, d⟩ from <see cref="Backward.Vjp"/> within 1e-6 of
/// the directional derivative's scale Σ|∂L/∂x_k · d_k| (truncation error O(h²) ≈ 1e-12, round-off ≈ 1e-16·|L| / h; the
/// scale, not |⟨∇L, d⟩| alone, because a direction can make the terms cancel to a tiny sum while the round-off stays).
/// Ops come from <see cref="OpCatalog"/> (so a new op cannot go without a rule) plus extra cases for every mode.
/// </summary>
public sealed class BackwardTests
{
    // grad itself has no backward rule: the compiler takes first derivatives only; gemm_grn_fold is inference-only
    // and refuses (InferenceOnlyFusionsRefuseBackward)
    public static TheoryData<string> OpNames() =>
        new(OpTable.Names.Where(n => n is not ("grad" or "gemm_grn_fold")).Order());

    private static (Op Op, TensorType[] Inputs) FromCatalog(string name)
    {
        var b = new GraphBuilder("g");
        b.Output(OpCatalog.Entries[name].Build(b));
        var g = b.Build();
        var n = Assert.Single(g.Nodes);
        var types = g.ValueTypes();
        return (n.Op, n.Inputs.Select(i => types[i]).ToArray());
    }

    /// <summary>Random float64 inputs valid for the op (labels in range, positive variances).</summary>
    public static Tensor[] RandomInputs(Op op, TensorType[] types, Random rng)
    {
        var result = new Tensor[types.Length];
        for (int i = 0; i < types.Length; i++)
        {
            var t = types[i];
            long n = t.Shape.Elements;
            if (t.DType is DType.I64 or DType.I32)
            {
                int classes = op is CrossEntropy ? types[0].Shape[types[0].Shape.Rank - 1] : 2;
                result[i] = Tensor.FromDoubles(t, Enumerable.Range(0, (int)n).Select(_ => (double)rng.Next(classes)).ToArray());
                continue;
            }
            var v = new double[n];
            for (long k = 0; k < n; k++) v[k] = rng.NextDouble() * 2 - 1;
            if (op is BatchNorm && i == 4) for (long k = 0; k < n; k++) v[k] = 0.5 + rng.NextDouble(); // running variance
            result[i] = Tensor.FromDoubles(new TensorType(DType.F64, t.Shape), v);
        }
        return result;
    }

    /// <summary>Checks the rule of <paramref name="op"/> on random inputs; returns the worst relative error.</summary>
    public static double Check(Op op, TensorType[] types, int seed, int directions = 3)
    {
        var rng = new Random(seed);
        var x = RandomInputs(op, types, rng);
        var y = ReferenceExecutor.Evaluate(op, x);
        var g = y.Select(t => t.Type.DType is DType.F32 or DType.F64
            ? Tensor.FromDoubles(new TensorType(DType.F64, t.Shape), Enumerable.Range(0, (int)t.Shape.Elements).Select(_ => rng.NextDouble() * 2 - 1).ToArray())
            : null).ToArray();
        if (op is BatchNorm { Mode: Mode.Train }) for (int k = 1; k < g.Length; k++) g[k] = null; // running statistics: not part of the loss
        var grads = Backward.Vjp(op, x, y, g);
        double Loss(Tensor[] xin)
        {
            var o = ReferenceExecutor.Evaluate(op, xin);
            double s = 0;
            for (int k = 0; k < o.Length; k++)
            {
                if (g[k] is null) continue;
                var a = o[k].ToDoubles();
                var b = g[k]!.ToDoubles();
                for (int j = 0; j < a.Length; j++) s += a[j] * b[j];
            }
            return s;
        }
        double worst = 0;
        const double h = 1e-6;
        for (int i = 0; i < x.Length; i++)
        {
            if (grads[i] is null) continue;
            var gi = grads[i]!.ToDoubles();
            for (int d = 0; d < directions; d++)
            {
                var dir = Enumerable.Range(0, gi.Length).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
                Tensor Shift(double s) => Tensor.FromDoubles(x[i].Type, x[i].ToDoubles().Select((v, k) => v + s * dir[k]).ToArray());
                var plus = (Tensor[])x.Clone();
                plus[i] = Shift(h);
                var minus = (Tensor[])x.Clone();
                minus[i] = Shift(-h);
                double num = (Loss(plus) - Loss(minus)) / (2 * h);
                double ana = gi.Select((v, k) => v * dir[k]).Sum();
                double scale = gi.Select((v, k) => Math.Abs(v * dir[k])).Sum();
                double err = Math.Abs(num - ana) / Math.Max(Math.Max(scale, Math.Abs(num)), 1e-8);
                worst = Math.Max(worst, err);
            }
        }
        return worst;
    }

    [Theory]
    [MemberData(nameof(OpNames))]
    public void EveryOpsBackwardMatchesFiniteDifferences(string name)
    {
        var (op, types) = FromCatalog(name);
        for (int seed = 0; seed < 3; seed++)
        {
            double err = Check(op, types, seed);
            Assert.True(err <= 1e-6, $"{name}: relative error {err:E2} (seed {seed})");
        }
    }

    [Fact]
    public void NonDifferentiableInputsGetNoGradient()
    {
        var (op, types) = FromCatalog("cross_entropy");
        var rng = new Random(1);
        var x = RandomInputs(op, types, rng);
        var y = ReferenceExecutor.Evaluate(op, x);
        var grads = Backward.Vjp(op, x, y, y.Select(t => Tensor.FromDoubles(new TensorType(DType.F64, t.Shape), new double[t.Shape.Elements])).ToArray());
        Assert.NotNull(grads[0]);
        Assert.Null(grads[1]);
    }

    [Fact]
    public void InferenceOnlyFusionsRefuseBackward()
    {
        var (op, types) = FromCatalog("gemm_grn_fold");
        var x = RandomInputs(op, types, new Random(2));
        var y = ReferenceExecutor.Evaluate(op, x);
        var e = Assert.Throws<IrException>(() => Backward.Vjp(op, x, y, y));
        Assert.Contains("no backward rule for op 'gemm_grn_fold': it is an inference-only fusion", e.Message);
    }
}
