using ShiftWise.IR;

namespace ShiftWise.Passes;

/// <summary>Removes nodes whose outputs nobody reads, then parameters nobody reads.</summary>
public sealed class DeadCodeElimination : Pass
{
    /// <inheritdoc/>
    public override string Name => "dce";

    /// <inheritdoc/>
    public override bool Run(PassContext ctx)
    {
        var g = ctx.Graph;
        var live = g.Outputs.ToHashSet(StringComparer.Ordinal);
        var keep = new List<Node>();
        for (int i = g.Nodes.Count - 1; i >= 0; i--)
        {
            var n = g.Nodes[i];
            if (!n.Outputs.Any(live.Contains)) continue;
            keep.Add(n);
            foreach (var x in n.Inputs) live.Add(x);
        }
        keep.Reverse();
        var pars = g.Params.Where(p => live.Contains(p.Name)).ToArray();
        if (keep.Count == g.Nodes.Count && pars.Length == g.Params.Count) return false;
        foreach (var p in g.Params.Where(p => !live.Contains(p.Name))) ctx.Weights.Remove(p.Name);
        ctx.Graph = g with { Nodes = keep.ToArray(), Params = pars };
        return true;
    }
}
