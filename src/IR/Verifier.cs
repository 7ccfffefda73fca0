using ShiftWise.IR.Ops;

namespace ShiftWise.IR;

/// <summary>
/// Checks a graph: unique names, definition before use, each node's inputs and attributes (through its op's
/// inference) and its recorded output types. Errors name the node, its op, its inputs' types and the problem.
/// </summary>
public static class Verifier
{
    /// <summary>Throws <see cref="VerifyException"/> on the first problem.</summary>
    public static void Verify(Graph g)
    {
        var types = new Dictionary<string, TensorType>(StringComparer.Ordinal);
        void Define(string name, TensorType t, string what)
        {
            if (string.IsNullOrEmpty(name))
            {
                throw new VerifyException($"graph '{g.Name}': {what} has an empty name");
            }
            if (!types.TryAdd(name, t))
            {
                throw new VerifyException($"graph '{g.Name}': {what} '{name}' is defined twice");
            }
        }
        foreach (var v in g.Inputs) Define(v.Name, v.Type, "input");
        foreach (var v in g.Params) Define(v.Name, v.Type, "param");
        foreach (var n in g.Nodes)
        {
            if (n.Outputs.Count == 0)
            {
                throw new VerifyException($"graph '{g.Name}': a {n.Op.Name} node has no outputs");
            }
            var ins = new List<TensorType>();
            foreach (var i in n.Inputs)
            {
                if (!types.TryGetValue(i, out var t))
                {
                    throw new VerifyException($"{n.Describe()}: input '{i}' is not defined before use", n.Name);
                }
                ins.Add(t);
            }
            var inferred = InferNode(n.Op, n.Name, ins);
            if (inferred.Length != n.Outputs.Count || n.Types.Count != n.Outputs.Count)
            {
                throw new VerifyException($"{Context(n.Op, n.Name, ins)}: has {n.Outputs.Count} outputs, "
                    + $"the op produces {inferred.Length}", n.Name);
            }
            for (int k = 0; k < inferred.Length; k++)
            {
                if (!inferred[k].Equals(n.Types[k]))
                {
                    throw new VerifyException($"{Context(n.Op, n.Name, ins)}: output %{n.Outputs[k]} is declared "
                        + $"{n.Types[k]} but the op gives {inferred[k]}", n.Name);
                }
                Define(n.Outputs[k], n.Types[k], "value");
            }
        }
        if (g.Outputs.Count == 0)
        {
            throw new VerifyException($"graph '{g.Name}' has no outputs");
        }
        foreach (var o in g.Outputs)
        {
            if (!types.ContainsKey(o))
            {
                throw new VerifyException($"graph '{g.Name}': output '{o}' is not defined");
            }
        }
    }

    /// <summary>Runs an op's inference, turning its complaint into a message that names the node.</summary>
    public static TensorType[] InferNode(Op op, string name, IReadOnlyList<TensorType> inputs)
    {
        try
        {
            return op.Infer(inputs);
        }
        catch (IrException e) when (e is not VerifyException)
        {
            throw new VerifyException($"{Context(op, name, inputs)}: {e.Message}", name);
        }
    }

    private static string Context(Op op, string name, IReadOnlyList<TensorType> inputs) =>
        $"node %{name} ({op.Name}) with inputs ({string.Join(", ", inputs)})";
}
