using ShiftWise.IR.Ops;

namespace ShiftWise.IR;

/// <summary>A value while building: its name and type.</summary>
public readonly record struct Value(string Name, TensorType Type)
{
    /// <summary>Shape shorthand.</summary>
    public Shape Shape => Type.Shape;
}

/// <summary>
/// Builds a graph node by node, inferring and checking types as it goes, so a mistake is reported at the node
/// that made it. Names are made unique by appending _1, _2, ... when a base name repeats.
/// </summary>
public sealed class GraphBuilder
{
    private readonly string _name;
    private readonly List<ValueDecl> _inputs = [];
    private readonly List<ValueDecl> _params = [];
    private readonly List<Node> _nodes = [];
    private readonly List<string> _outputs = [];
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    /// <summary>Starts a graph.</summary>
    public GraphBuilder(string name) => _name = name;

    /// <summary>Declares a graph input.</summary>
    public Value Input(string name, TensorType type)
    {
        Claim(name);
        _inputs.Add(new ValueDecl(name, type));
        return new Value(name, type);
    }

    /// <summary>Declares a parameter (weight, or a buffer such as a running mean) by its exact name.</summary>
    public Value Param(string name, TensorType type, bool buffer = false)
    {
        Claim(name);
        _params.Add(new ValueDecl(name, type, buffer));
        return new Value(name, type);
    }

    /// <summary>Adds a node; returns its outputs.</summary>
    public Value[] Apply(Op op, string name, params Value[] inputs)
    {
        var types = Verifier.InferNode(op, name, inputs.Select(i => i.Type).ToArray());
        string baseName = Unique(name, op.OutputSuffixes);
        var outs = op.OutputSuffixes.Select(s => baseName + s).ToArray();
        foreach (var o in outs) Claim(o);
        _nodes.Add(new Node(op, inputs.Select(i => i.Name).ToArray(), outs, types));
        return outs.Select((o, i) => new Value(o, types[i])).ToArray();
    }

    /// <summary>Adds a single-output node.</summary>
    public Value Apply1(Op op, string name, params Value[] inputs) => Apply(op, name, inputs)[0];

    /// <summary>Marks values as graph outputs.</summary>
    public void Output(params Value[] values) => _outputs.AddRange(values.Select(v => v.Name));

    /// <summary>The verified graph.</summary>
    public Graph Build()
    {
        var g = new Graph(_name, _inputs.ToArray(), _params.ToArray(), _nodes.ToArray(), _outputs.ToArray());
        Verifier.Verify(g);
        return g;
    }

    private string Unique(string name, IReadOnlyList<string> suffixes)
    {
        string candidate = name;
        for (int k = 1; suffixes.Any(s => _names.Contains(candidate + s)); k++)
        {
            candidate = $"{name}_{k}";
        }
        return candidate;
    }

    private void Claim(string name)
    {
        if (!_names.Add(name))
        {
            throw new IrException($"graph '{_name}': the name '{name}' is already used");
        }
    }
}
