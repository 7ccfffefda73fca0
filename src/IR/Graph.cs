using System.Security.Cryptography;
using System.Text;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Text;

namespace ShiftWise.IR;

/// <summary>
/// A named, typed value: a graph input, or a parameter. A parameter is trainable unless it is a buffer
/// (state such as BN running statistics: loaded from checkpoints, never given a gradient).
/// </summary>
public sealed record ValueDecl(string Name, TensorType Type, bool Buffer = false);

/// <summary>
/// One operation applied to named values. The node is known by its first output's name. Output types are stored
/// (so a printed graph is self-describing) and checked against the op's inference by the verifier.
/// </summary>
public sealed record Node(Op Op, Vec<string> Inputs, Vec<string> Outputs, Vec<TensorType> Types)
{
    /// <summary>The node's name: its first output.</summary>
    public string Name => Outputs[0];

    /// <summary>"%name (op)" for messages.</summary>
    public string Describe() => $"node %{Name} ({Op.Name})";
}

/// <summary>
/// An immutable computation graph in topological order. Inputs and parameters are declared with their types;
/// parameter values live outside the graph (a weights file or a dictionary), referenced by name.
/// Equality is structural.
/// </summary>
public sealed record Graph(string Name, Vec<ValueDecl> Inputs, Vec<ValueDecl> Params, Vec<Node> Nodes,
    Vec<string> Outputs)
{
    /// <summary>The side file holding the parameters, relative to the .swir file (not part of equality).</summary>
    public string? WeightsFile { get; init; }

    /// <inheritdoc/>
    public bool Equals(Graph? other) =>
        other is not null && Name == other.Name && Inputs == other.Inputs && Params == other.Params
        && Nodes == other.Nodes && Outputs == other.Outputs;

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Name, Inputs, Params, Nodes, Outputs);

    /// <summary>The type of every value by name (inputs, params, node outputs).</summary>
    public Dictionary<string, TensorType> ValueTypes()
    {
        var d = new Dictionary<string, TensorType>(StringComparer.Ordinal);
        foreach (var v in Inputs) d[v.Name] = v.Type;
        foreach (var v in Params) d[v.Name] = v.Type;
        foreach (var n in Nodes)
        {
            for (int i = 0; i < n.Outputs.Count; i++) d[n.Outputs[i]] = n.Types[i];
        }
        return d;
    }

    /// <summary>SHA-256 (lower-case hex) of the canonical text: keys the kernel and tuning caches.</summary>
    public string ContentHash()
    {
        var text = SwirPrinter.Print(this with { WeightsFile = null });
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
    }

    /// <summary>The canonical .swir text.</summary>
    public override string ToString() => SwirPrinter.Print(this);
}
