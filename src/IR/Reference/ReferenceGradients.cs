namespace ShiftWise.IR.Reference;

/// <summary>
/// Reverse-mode differentiation of a whole graph in float64 with the backward rule of every op
/// (<see cref="Backward"/>): the forward pass keeps every value, then the nodes are visited in reverse order and each
/// value's gradient is the sum over its uses. This is the oracle of the autodiff pass and of every target's training
/// kernels, and what `swc grad --device reference` computes.
/// </summary>
public static class ReferenceGradients
{
    /// <summary>
    /// The gradient of the scalar value <paramref name="loss"/> (a graph value with one element) with respect to
    /// every parameter and input it depends on (float ones; integer inputs get none), plus the forward values.
    /// </summary>
    public static (Dictionary<string, Tensor> Grads, Dictionary<string, Tensor> Values) Run(Graph g,
        IReadOnlyDictionary<string, Tensor> weights, IReadOnlyDictionary<string, Tensor> inputs, string loss)
    {
        var env = ReferenceExecutor.Run(g, weights, inputs, keepAll: true);
        if (!env.TryGetValue(loss, out var l)) throw new IrException($"graph '{g.Name}' has no value %{loss}");
        if (l.Shape.Elements != 1)
        {
            throw new IrException($"%{loss} has shape {l.Shape}; the loss must be a single value");
        }
        var grads = new Dictionary<string, double[]>(StringComparer.Ordinal)
        {
            [loss] = [1.0],
        };
        for (int k = g.Nodes.Count - 1; k >= 0; k--)
        {
            var n = g.Nodes[k];
            if (!n.Outputs.Any(grads.ContainsKey)) continue; // does not reach the loss
            var outs = n.Outputs.Select(o => env[o]).ToArray();
            var gys = n.Outputs.Select((o, i) => grads.TryGetValue(o, out var d)
                ? Tensor.FromDoubles(new TensorType(DType.F64, outs[i].Shape), d)
                : null).ToArray();
            Tensor?[] gx;
            try
            {
                gx = Backward.Vjp(n.Op, n.Inputs.Select(i => env[i]).ToArray(), outs, gys);
            }
            catch (IrException e)
            {
                throw new IrException($"{n.Describe()}: {e.Message}", e);
            }
            for (int i = 0; i < n.Inputs.Count; i++)
            {
                if (gx[i] is null) continue;
                var d = gx[i]!.ToDoubles();
                if (grads.TryGetValue(n.Inputs[i], out var acc))
                {
                    for (int j = 0; j < acc.Length; j++) acc[j] += d[j];
                }
                else
                {
                    grads[n.Inputs[i]] = d;
                }
            }
        }
        var types = g.ValueTypes();
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var v in g.Params.Concat(g.Inputs))
        {
            if (grads.TryGetValue(v.Name, out var d))
            {
                result[v.Name] = Tensor.FromDoubles(new TensorType(DType.F64, types[v.Name].Shape), d);
            }
        }
        return (result, env);
    }
}
