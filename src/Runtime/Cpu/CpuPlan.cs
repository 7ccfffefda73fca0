using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes;
using ShiftWise.Passes.Lowering;

namespace ShiftWise.Runtime.Cpu;

/// <summary>
/// One node of a CPU plan and the kernel the lowering chose for it: a view of another value (no kernel), the
/// generated kernel of an SW layer spec in a configuration, or the managed kernel of <see cref="Kernels.KernelTable"/>.
/// </summary>
/// <param name="Node">The node.</param>
/// <param name="Request">Its input types and constant inputs (null for a view).</param>
/// <param name="Sw">The SW layer spec when it runs its generated kernel.</param>
/// <param name="Config">The SW kernel's tunables (null: its defaults).</param>
public sealed record CpuStep(Node Node, KernelRequest? Request, SwLayerSpec? Sw = null,
    IReadOnlyDictionary<string, int>? Config = null)
{
    /// <summary>Whether the node's output is a view of its input (reshapes, eval drop paths).</summary>
    public bool IsView => Request is null;
}

/// <summary>
/// What the CPU target binds: the graph, its weights, the activation memory plan and one step per node.
/// </summary>
public sealed record CpuPlan(Graph Graph, IReadOnlyDictionary<string, Tensor> Weights, MemoryPlan Memory,
    IReadOnlyList<CpuStep> Steps) : Compile.TargetPlan(Graph, Weights)
{
    /// <inheritdoc/>
    public override string Summary => $"{Graph.Nodes.Count} nodes";
}

/// <summary>The CPU target's lowering: which kernel runs each node.</summary>
public static class CpuLowering
{
    /// <summary>
    /// Lowers an optimised float32 graph. SW layers with constant weights get their generated kernel (the AVX2 and FMA
    /// code, where this CPU has both and <paramref name="generated"/>), configured by <paramref name="tuned"/> (null
    /// or a null answer: the defaults); everything else the managed kernels (scalar-safe).
    /// </summary>
    public static CpuPlan Lower(Graph graph, IReadOnlyDictionary<string, Tensor> weights, bool generated = true,
        Func<SwLayerSpec, IReadOnlyDictionary<string, int>?>? tuned = null)
    {
        var types = graph.ValueTypes();
        foreach (var t in types.Values.Where(t => t.DType != DType.F32 && t.DType != DType.I64 && t.DType != DType.I32))
        {
            throw new IrException($"graph '{graph.Name}': the CPU target runs float32 graphs, found {t}");
        }
        foreach (var p in graph.Params)
        {
            if (!weights.ContainsKey(p.Name)) throw new IrException($"no value for parameter '{p.Name}'");
        }
        var memory = MemoryPlan.Of(graph);
        var steps = new List<CpuStep>();
        foreach (var n in graph.Nodes)
        {
            if (memory.Aliases.ContainsKey(n.Outputs[0]))
            {
                steps.Add(new CpuStep(n, null));
                continue;
            }
            var req = new KernelRequest(n, n.Inputs.Select(i => types[i]).ToArray(),
                n.Inputs.Select(i => weights.GetValueOrDefault(i)).ToArray());
            if (generated && SwLayerKernel.Supported && n.Op is FusedShiftWise
                && req.Constants.Skip(1).All(c => c is not null))
            {
                var spec = SwLayerSpec.Of(n, types[n.Inputs[0]].Shape);
                steps.Add(new CpuStep(n, req, spec, tuned?.Invoke(spec)));
            }
            else
            {
                steps.Add(new CpuStep(n, req));
            }
        }
        return new CpuPlan(graph, weights, memory, steps);
    }
}
