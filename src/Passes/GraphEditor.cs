using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Passes;

/// <summary>
/// Rewrites a graph: look up producers and consumers, replace a node by another that keeps the replaced chain's
/// final output name (so consumers need no rewiring), remove nodes, add parameters. Nothing changes until
/// <see cref="Commit"/>, which rebuilds the graph in the original order with replacements in place.
/// </summary>
public sealed class GraphEditor
{
    private readonly PassContext _ctx;
    private readonly Dictionary<string, Node> _producer = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<Node>> _consumers = new(StringComparer.Ordinal);
    private readonly HashSet<string> _outputs;
    private readonly Dictionary<string, ValueDecl> _params;
    private readonly Dictionary<Node, List<Node>> _replacements = new(ReferenceEqualityComparer.Instance);
    private readonly HashSet<Node> _removed = new(ReferenceEqualityComparer.Instance);
    private readonly List<ValueDecl> _newParams = [];
    private readonly HashSet<string> _names;
    private readonly Dictionary<string, TensorType> _pending = new(StringComparer.Ordinal); // types of values made here
    private readonly Dictionary<string, TensorType> _types;

    /// <summary>Indexes the context's current graph.</summary>
    public GraphEditor(PassContext ctx)
    {
        _ctx = ctx;
        var g = ctx.Graph;
        foreach (var n in g.Nodes)
        {
            foreach (var o in n.Outputs) _producer[o] = n;
            foreach (var i in n.Inputs)
            {
                if (!_consumers.TryGetValue(i, out var list)) _consumers[i] = list = [];
                if (!list.Contains(n)) list.Add(n);
            }
        }
        _outputs = g.Outputs.ToHashSet(StringComparer.Ordinal);
        _params = g.Params.ToDictionary(p => p.Name, StringComparer.Ordinal);
        _types = g.ValueTypes();
        _names = _types.Keys.ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>The graph being edited (as it was before this editor's changes).</summary>
    public Graph Graph => _ctx.Graph;

    /// <summary>The node producing a value (null for inputs and parameters).</summary>
    public Node? Producer(string value) => _producer.GetValueOrDefault(value);

    /// <summary>The nodes reading a value.</summary>
    public IReadOnlyList<Node> Consumers(string value) => _consumers.GetValueOrDefault(value) ?? [];

    /// <summary>True when exactly one node reads the value and it is not a graph output.</summary>
    public bool SingleUse(string value) => Consumers(value).Count == 1 && !_outputs.Contains(value)
        && Consumers(value)[0].Inputs.Count(i => i == value) == 1;

    /// <summary>The only consumer of a single-use value, else null.</summary>
    public Node? OnlyConsumer(string value) => SingleUse(value) ? Consumers(value)[0] : null;

    /// <summary>True when the value is a parameter with a value in the weights.</summary>
    public bool IsParam(string value) => _params.ContainsKey(value) && _ctx.Weights.ContainsKey(value);

    /// <summary>A parameter's values as doubles (null when the value is not a parameter).</summary>
    public double[]? Const(string value) => IsParam(value) ? _ctx.Weights[value].ToDoubles() : null;

    /// <summary>
    /// A parameter's tensor as stored (null when the value is not a parameter): read it, never change it (the caller's
    /// weights are shared, not copied). For large weights it avoids <see cref="Const"/>'s whole double copy.
    /// </summary>
    public Tensor? Weight(string value) => IsParam(value) ? _ctx.Weights[value] : null;

    /// <summary>A value's type.</summary>
    public TensorType TypeOf(string value) => _types[value];

    /// <summary>Adds a parameter; <paramref name="name"/> is made unique. Returns its name.</summary>
    public string AddParam(string name, Tensor value, bool buffer = false)
    {
        string n = name;
        for (int k = 1; _names.Contains(n); k++) n = $"{name}_{k}";
        _names.Add(n);
        _newParams.Add(new ValueDecl(n, value.Type, buffer));
        _pending[n] = value.Type;
        _ctx.Weights[n] = value;
        return n;
    }

    /// <summary>Adds a parameter from doubles, rounded to <paramref name="dtype"/>.</summary>
    public string AddParam(string name, DType dtype, Shape shape, double[] values) =>
        AddParam(name, Tensor.FromDoubles(new TensorType(dtype, shape), values));

    /// <summary>Replaces <paramref name="anchor"/> by nodes placed where it stood.</summary>
    public void Replace(Node anchor, params Node[] with)
    {
        _replacements[anchor] = [.. with];
    }

    /// <summary>Removes a node.</summary>
    public void Remove(Node n) => _removed.Add(n);

    /// <summary>True when a node is already removed or replaced by this editor.</summary>
    public bool Touched(Node n) => _removed.Contains(n) || _replacements.ContainsKey(n);

    /// <summary>A fresh value name based on <paramref name="name"/>.</summary>
    public string Fresh(string name)
    {
        string n = name;
        for (int k = 1; _names.Contains(n); k++) n = $"{name}_{k}";
        _names.Add(n);
        return n;
    }

    /// <summary>A node with its output types inferred.</summary>
    public Node Make(Op op, string[] outputs, params string[] inputs)
    {
        var types = Verifier.InferNode(op, outputs[0], inputs.Select(i => TypeOfAny(i)).ToArray());
        foreach (var (o, t) in outputs.Zip(types)) _pending[o] = t;
        return new Node(op, inputs, outputs, types);
    }

    private TensorType TypeOfAny(string v) => _pending.TryGetValue(v, out var t) ? t : TypeOf(v);

    /// <summary>Applies the edits to the context; true when anything changed.</summary>
    public bool Commit()
    {
        if (_replacements.Count == 0 && _removed.Count == 0 && _newParams.Count == 0)
        {
            return false;
        }
        var nodes = new List<Node>();
        foreach (var n in Graph.Nodes)
        {
            if (_replacements.TryGetValue(n, out var with)) nodes.AddRange(with);
            else if (!_removed.Contains(n)) nodes.Add(n);
        }
        var pars = Graph.Params.Concat(_newParams).ToArray();
        _ctx.Graph = Graph with { Params = pars, Nodes = nodes.ToArray() };
        return true;
    }
}

/// <summary>Recognises per-channel affine nodes: eval-mode BatchNorm and ScaleBias.</summary>
public static class Affine
{
    /// <summary>
    /// (scale, bias) per channel along axis 1 when the node is such an affine with constant parameters.
    /// </summary>
    public static (double[] Scale, double[] Bias)? Of(GraphEditor e, Node n)
    {
        switch (n.Op)
        {
            case BatchNorm { Mode: Mode.Eval } bn:
                var p = n.Inputs.Skip(1).Select(e.Const).ToArray();
                if (p.Any(x => x is null)) return null;
                int c = p[0]!.Length;
                var s = new double[c];
                var b = new double[c];
                for (int i = 0; i < c; i++)
                {
                    s[i] = p[0]![i] / Math.Sqrt(p[3]![i] + bn.Eps);
                    b[i] = p[1]![i] - p[2]![i] * s[i];
                }
                return (s, b);
            case ScaleBias sb when e.TypeOf(n.Inputs[0]).Shape.Axis(sb.Axis) == 1:
                var sc = e.Const(n.Inputs[1]);
                var bi = e.Const(n.Inputs[2]);
                return sc is null || bi is null ? null : (sc, bi);
            default:
                return null;
        }
    }
}
