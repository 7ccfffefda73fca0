using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Passes;

/// <summary>
/// conv(x, W₀) + conv(x, W₁) + … with identical attributes and no bias becomes conv(x, ΣWᵢ): the N_path small
/// depthwise convs of an SW layer merged into one (SPEC 1.3, merge_branches). Exact up to rounding: convolution is
/// linear in its weight.
/// </summary>
public sealed class MergeParallelConvs : Pass
{
    /// <inheritdoc/>
    public override string Name => "merge-parallel-convs";

    /// <inheritdoc/>
    public override bool Run(PassContext ctx)
    {
        var e = new GraphEditor(ctx);
        foreach (var n in ctx.Graph.Nodes)
        {
            // the root of a sum tree: an add whose result is not itself summed into a larger tree of the same convs
            if (n.Op is not Binary { Kind: BinaryKind.Add } || e.Touched(n)) continue;
            if (e.OnlyConsumer(n.Outputs[0]) is { Op: Binary { Kind: BinaryKind.Add } } parent
                && ConvSum.Match(e, parent.Outputs[0]) is not null)
            {
                continue;
            }
            var m = ConvSum.Match(e, n.Outputs[0]);
            if (m is null) continue;
            var first = m.Convs[0];
            string name = MergedName(first.Inputs[1]);
            var w = e.AddParam(name, e.TypeOf(first.Inputs[1]).DType, e.TypeOf(first.Inputs[1]).Shape, m.Weight);
            foreach (var c in m.Convs) e.Remove(c);
            foreach (var a in m.Adds.Where(a => a != n)) e.Remove(a);
            e.Replace(n, e.Make(first.Op, [n.Outputs[0]], m.Input, w));
        }
        return e.Commit();
    }

    /// <summary>The original names the merged conv `LoRA` where the paths were `LoRAs.q`.</summary>
    private static string MergedName(string w) =>
        w.EndsWith(".LoRAs.0.weight", StringComparison.Ordinal) ? w[..^".LoRAs.0.weight".Length] + ".LoRA.weight"
        : w == "LoRAs.0.weight" ? "LoRA.weight" : w + ".merged";
}

/// <summary>A sum tree of bias-free convolutions of one input with the same attributes.</summary>
public sealed record ConvSum(string Input, IReadOnlyList<Node> Convs, IReadOnlyList<Node> Adds, double[] Weight)
{
    /// <summary>
    /// Matches <paramref name="value"/> as Σ conv(x, Wᵢ) with at least two terms, every intermediate used once and
    /// every weight a parameter; null otherwise.
    /// </summary>
    public static ConvSum? Match(GraphEditor e, string value)
    {
        var convs = new List<Node>();
        var adds = new List<Node>();
        if (!Collect(e, value, convs, adds, root: true) || convs.Count < 2) return null;
        var c0 = convs[0];
        foreach (var c in convs)
        {
            if (c.Inputs.Count != 2 || c.Op != c0.Op || c.Inputs[0] != c0.Inputs[0] || !e.IsParam(c.Inputs[1])
                || !e.TypeOf(c.Inputs[1]).Equals(e.TypeOf(c0.Inputs[1])))
            {
                return null;
            }
        }
        var sum = new double[e.TypeOf(c0.Inputs[1]).Shape.Elements];
        foreach (var c in convs)
        {
            var w = e.Const(c.Inputs[1])!;
            for (int i = 0; i < sum.Length; i++) sum[i] += w[i];
        }
        return new ConvSum(c0.Inputs[0], convs, adds, sum);
    }

    /// <summary>Matches a single bias-free conv too (a sum of one term).</summary>
    public static ConvSum? MatchOneOrMore(GraphEditor e, string value)
    {
        if (e.Producer(value) is { Op: Conv2d } c && c.Inputs.Count == 2 && e.IsParam(c.Inputs[1]))
        {
            return new ConvSum(c.Inputs[0], [c], [], e.Const(c.Inputs[1])!);
        }
        return Match(e, value);
    }

    private static bool Collect(GraphEditor e, string v, List<Node> convs, List<Node> adds, bool root)
    {
        var p = e.Producer(v);
        if (p is null || (!root && !e.SingleUse(v))) return false;
        if (p.Op is Conv2d)
        {
            convs.Add(p);
            return true;
        }
        if (p.Op is Binary { Kind: BinaryKind.Add } && p.Inputs[0] != p.Inputs[1])
        {
            adds.Add(p);
            return Collect(e, p.Inputs[0], convs, adds, false) && Collect(e, p.Inputs[1], convs, adds, false);
        }
        return false;
    }
}
