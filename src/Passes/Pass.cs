using ShiftWise.IR;

namespace ShiftWise.Passes;

/// <summary>The graph being compiled and the values of its parameters; passes replace both as they rewrite.</summary>
public sealed class PassContext
{
    /// <summary>Starts from a graph and its weights (copied: the caller's dictionary is not changed).</summary>
    public PassContext(Graph graph, IReadOnlyDictionary<string, Tensor> weights)
    {
        Graph = graph;
        Weights = new Dictionary<string, Tensor>(weights, StringComparer.Ordinal);
    }

    /// <summary>The current graph.</summary>
    public Graph Graph { get; set; }

    /// <summary>Parameter values by name.</summary>
    public Dictionary<string, Tensor> Weights { get; }

    /// <summary>The value the autodiff pass differentiates (null: output 0 when it is a single float).</summary>
    public string? Loss { get; set; }
}

/// <summary>
/// A graph rewrite. It returns whether it changed anything, and leaves the graph unchanged when it meets anything it
/// does not support (a rewrite that is not sure it is exact does nothing).
/// </summary>
public abstract class Pass
{
    /// <summary>The name used by pipelines, --disable-pass and --print-ir-after (kebab-case).</summary>
    public abstract string Name { get; }

    /// <summary>Runs once over the graph; true when it changed it.</summary>
    public abstract bool Run(PassContext ctx);
}
