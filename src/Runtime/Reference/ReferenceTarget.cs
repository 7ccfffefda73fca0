using ShiftWise.IR;
using ShiftWise.IR.Reference;
using ShiftWise.Passes.Lowering;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Tune;

namespace ShiftWise.Runtime.Reference;

/// <summary>
/// The float64 oracle as a target: it runs the graph as loaded (pipeline "none"), node by node, with the op
/// semantics of the IR's reference kernels; nothing to lower, tune or compile. With <paramref name="Precision"/> bf16
/// or fp16 every stored value (weights, each node's outputs) is rounded to that type while the arithmetic stays
/// float64: what 16-bit storage alone costs. tf32 is float32 here (no tensor cores).
/// </summary>
public sealed record ReferenceTarget(Precision Precision = Precision.Fp32) : ITarget
{
    /// <inheritdoc/>
    public string Name => "reference";

    /// <inheritdoc/>
    public string Device => "reference";

    /// <inheritdoc/>
    public string Pipeline => "none";

    /// <inheritdoc/>
    public ISwTunables? Tunables => null;

    /// <inheritdoc/>
    public void Require()
    {
    }

    /// <inheritdoc/>
    public KernelTuning? Tuning(bool cache, Action<string>? log) => null;

    /// <inheritdoc/>
    public ITuner? Tuner(double seconds, bool force, Action<string>? log, Action<TuneStatus>? progress) =>
        null;

    /// <inheritdoc/>
    public TargetPlan Lower(Graph graph, IReadOnlyDictionary<string, Tensor> weights, KernelTuning? tuning) =>
        new ReferencePlan(graph, weights);

    /// <inheritdoc/>
    public IExecutor Bind(TargetPlan plan, Action<string>? log) => new ReferenceRunner(plan.Graph, plan.Weights);
}

/// <summary>The reference target's plan: the graph itself.</summary>
public sealed record ReferencePlan(Graph Graph, IReadOnlyDictionary<string, Tensor> Weights)
    : TargetPlan(Graph, Weights)
{
    /// <inheritdoc/>
    public override string Summary => $"{Graph.Nodes.Count} nodes";
}

/// <summary>Runs a graph on the reference executor (float64).</summary>
internal sealed class ReferenceRunner(Graph graph, IReadOnlyDictionary<string, Tensor> weights) : IExecutor
{
    public Graph Graph => graph;

    public bool CheckFinite
    {
        get => false;
        set
        {
            if (value)
            {
                throw new OptionException("option --check-finite: checks the float32 kernels of --device cpu or cuda; "
                    + "the reference executor computes in float64");
            }
        }
    }

    public Dictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs) =>
        ReferenceExecutor.Run(graph, weights, inputs);

    public void Dispose()
    {
    }
}
