using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Passes;

/// <summary>A training graph: the forward graph, its backward nodes, and where each parameter's gradient is.</summary>
/// <param name="Graph">Forward outputs first (the loss is output 0), then one gradient output per parameter.</param>
/// <param name="Gradients">Parameter name to the value holding its gradient, in parameter order.</param>
/// <param name="Unreached">Parameters asked for that the loss does not depend on (their gradient is zero).</param>
public sealed record AutodiffResult(Graph Graph, IReadOnlyDictionary<string, string> Gradients,
    IReadOnlyList<string> Unreached);

/// <summary>
/// Reverse-mode autodiff as a graph rewrite: keeps the forward nodes, then, visiting them in reverse, emits one
/// <see cref="Grad"/> node per node that lies between a differentiated parameter and the loss, and an add wherever a
/// value is used more than once (its gradient is the sum over its uses, summed in use order, last use first). What a
/// grad node computes is each op's backward rule, so any target that runs the forward ops and the grad ops trains.
/// </summary>
public static class AutodiffBuilder
{
    /// <summary>The name of the value holding the gradient of <paramref name="param"/>.</summary>
    public static string GradName(string param) => "grad." + param;

    /// <summary>
    /// Differentiates the scalar value <paramref name="loss"/> with respect to <paramref name="wrt"/> (default: every
    /// float parameter that is not a buffer). Throws naming the value when the loss is not a single float value.
    /// </summary>
    public static AutodiffResult Build(Graph g, string loss, IEnumerable<string>? wrt = null)
    {
        var types = g.ValueTypes();
        if (!types.TryGetValue(loss, out var lt))
        {
            throw new IrException($"graph '{g.Name}' has no value %{loss} to differentiate");
        }
        if (lt.Shape.Elements != 1 || !lt.DType.IsFloat())
        {
            throw new IrException($"graph '{g.Name}': the loss %{loss} must be a single float value, got {lt}");
        }
        var paramSet = g.Params.ToDictionary(p => p.Name, StringComparer.Ordinal);
        var wrtList = (wrt ?? g.Params.Where(p => !p.Buffer && p.Type.DType.IsFloat()).Select(p => p.Name)).ToList();
        foreach (var w in wrtList)
        {
            if (!paramSet.TryGetValue(w, out var d)) throw new IrException($"graph '{g.Name}' has no parameter '{w}'");
            if (!d.Type.DType.IsFloat())
            {
                throw new IrException($"parameter '{w}' is {d.Type}: only float parameters have gradients");
            }
        }

        // values that depend on a differentiated parameter, and nodes that reach the loss
        var needs = new HashSet<string>(wrtList, StringComparer.Ordinal);
        foreach (var n in g.Nodes)
        {
            if (n.Inputs.Any(needs.Contains))
            {
                for (int j = 0; j < n.Outputs.Count; j++)
                {
                    if (n.Types[j].DType.IsFloat()) needs.Add(n.Outputs[j]);
                }
            }
        }
        if (!needs.Contains(loss))
        {
            throw new IrException($"graph '{g.Name}': the loss %{loss} depends on none of the parameters");
        }
        var reaches = new HashSet<string>(StringComparer.Ordinal) { loss };
        for (int k = g.Nodes.Count - 1; k >= 0; k--)
        {
            var n = g.Nodes[k];
            if (n.Outputs.Any(reaches.Contains)) reaches.UnionWith(n.Inputs);
        }

        var b = new GraphBuilder(g.Name + "_train");
        var vals = new Dictionary<string, Value>(StringComparer.Ordinal);
        foreach (var i in g.Inputs) vals[i.Name] = b.Input(i.Name, i.Type);
        foreach (var p in g.Params) vals[p.Name] = b.Param(p.Name, p.Type, p.Buffer);
        foreach (var n in g.Nodes)
        {
            var outs = b.Apply(n.Op, BaseName(n), n.Inputs.Select(i => vals[i]).ToArray());
            for (int j = 0; j < outs.Length; j++)
            {
                if (outs[j].Name != n.Outputs[j])
                {
                    throw new IrException($"{n.Describe()}: output {j} renamed to {outs[j].Name}");
                }
                vals[n.Outputs[j]] = outs[j];
            }
        }

        // gradient contributions per value, in the order they were made
        var parts = new Dictionary<string, List<Value>>(StringComparer.Ordinal);
        Value? Sum(string v)
        {
            if (!parts.TryGetValue(v, out var list)) return null;
            var acc = list[0];
            for (int i = 1; i < list.Count; i++)
            {
                acc = b.Apply1(new Binary(BinaryKind.Add), $"d.{v}.sum{i}", acc, list[i]);
            }
            return acc;
        }
        for (int k = g.Nodes.Count - 1; k >= 0; k--)
        {
            var n = g.Nodes[k];
            var wrtIdx = Enumerable.Range(0, n.Inputs.Count)
                .Where(i => needs.Contains(n.Inputs[i]) && reaches.Contains(n.Inputs[i])).ToArray();
            if (wrtIdx.Length == 0 || !n.Outputs.Any(reaches.Contains)) continue;
            Op grad;
            var ins = new List<Value>(n.Inputs.Select(i => vals[i]));
            ins.AddRange(n.Outputs.Select(o => vals[o]));
            if (n.Outputs.Contains(loss))
            {
                if (n.Outputs[0] != loss || parts.ContainsKey(loss))
                {
                    throw new IrException($"{n.Describe()}: the loss must be the node's first output and must not be "
                        + $"used again");
                }
                grad = new Grad(n.Op, wrtIdx, Vec<int>.Empty);
            }
            else
            {
                var dy = new List<int>();
                for (int j = 0; j < n.Outputs.Count; j++)
                {
                    if (Sum(n.Outputs[j]) is { } s)
                    {
                        dy.Add(j);
                        ins.Add(s);
                    }
                }
                if (dy.Count == 0) continue; // its outputs reach the loss only through values without gradient
                grad = new Grad(n.Op, wrtIdx, dy.ToArray());
            }
            var gx = b.Apply(grad, "d." + BaseName(n), ins.ToArray());
            for (int i = 0; i < wrtIdx.Length; i++)
            {
                var v = n.Inputs[wrtIdx[i]];
                if (!parts.TryGetValue(v, out var list)) parts[v] = list = [];
                list.Add(gx[i]);
            }
        }

        var grads = new Dictionary<string, string>(StringComparer.Ordinal);
        var unreached = new List<string>();
        var outputs = g.Outputs.Select(o => vals[o]).ToList();
        foreach (var w in wrtList)
        {
            if (Sum(w) is not { } s)
            {
                unreached.Add(w);
                continue;
            }
            var named = b.Apply1(new Reshape(s.Shape.ToArray()), GradName(w), s);
            grads[w] = named.Name;
            outputs.Add(named);
        }
        b.Output(outputs.ToArray());
        return new AutodiffResult(b.Build(), grads, unreached);
    }

    /// <summary>The name a node was built with: its first output less that output's suffix.</summary>
    private static string BaseName(Node n)
    {
        var suffix = n.Op.OutputSuffixes[0];
        return suffix.Length > 0 && n.Name.EndsWith(suffix, StringComparison.Ordinal)
            ? n.Name[..^suffix.Length] : n.Name;
    }
}

/// <summary>
/// The training pipeline's autodiff step: when the graph's first output is a scalar loss and there are no grad nodes
/// yet, appends the backward graph and one gradient output per trainable parameter (<see cref="AutodiffBuilder"/>).
/// </summary>
public sealed class Autodiff : Pass
{
    /// <inheritdoc/>
    public override string Name => "autodiff";

    /// <inheritdoc/>
    public override bool Run(PassContext ctx)
    {
        var g = ctx.Graph;
        if (g.Nodes.Any(n => n.Op is Grad)) return false;
        if (ctx.Loss is { } loss)
        {
            ctx.Graph = AutodiffBuilder.Build(g, loss).Graph;
            return true;
        }
        if (g.Outputs.Count == 0) return false;
        var t = g.ValueTypes()[g.Outputs[0]];
        if (t.Shape.Elements != 1 || !t.DType.IsFloat()) return false;
        ctx.Graph = AutodiffBuilder.Build(g, g.Outputs[0]).Graph;
        return true;
    }
}
