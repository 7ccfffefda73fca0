using ShiftWise.IR;
using ShiftWise.IR.Reference;

namespace ShiftWise.Passes;

/// <summary>
/// Nodes whose inputs are all parameters (a reshaped layer scale, a summed weight) are computed once, at compile
/// time, by the reference executor; their outputs become parameters under the same names.
/// </summary>
public sealed class ConstantFold : Pass
{
    /// <inheritdoc/>
    public override string Name => "constant-fold";

    /// <inheritdoc/>
    public override bool Run(PassContext ctx)
    {
        var pars = ctx.Graph.Params.ToDictionary(p => p.Name, StringComparer.Ordinal);
        var folded = new HashSet<Node>(ReferenceEqualityComparer.Instance);
        var newParams = new List<ValueDecl>();
        foreach (var n in ctx.Graph.Nodes)
        {
            if (n.Inputs.Count == 0 || !n.Inputs.All(i => pars.ContainsKey(i) && ctx.Weights.ContainsKey(i))) continue;
            if (n.Op is IR.Ops.DropPath { Mode: IR.Ops.Mode.Train }) continue; // random: not a constant
            var outs = ReferenceExecutor.Evaluate(n.Op, n.Inputs.Select(i => ctx.Weights[i]).ToArray());
            bool buffer = n.Inputs.All(i => pars[i].Buffer);
            for (int k = 0; k < outs.Length; k++)
            {
                ctx.Weights[n.Outputs[k]] = outs[k];
                var d = new ValueDecl(n.Outputs[k], n.Types[k], buffer);
                pars[d.Name] = d;
                newParams.Add(d);
            }
            folded.Add(n);
        }
        if (folded.Count == 0) return false;
        ctx.Graph = ctx.Graph with
        {
            Params = ctx.Graph.Params.Concat(newParams).ToArray(),
            Nodes = ctx.Graph.Nodes.Where(n => !folded.Contains(n)).ToArray(),
        };
        return true;
    }
}
