using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Tune;

/// <summary>One gemm or linear node's gemm_api search: the median ms of each candidate and the one kept.</summary>
/// <param name="Node">The node.</param>
/// <param name="Ms">Median ms per run of the node (GEMM and epilogue kernels) by gemm_api value.</param>
/// <param name="Best">The fastest gemm_api.</param>
public sealed record GemmApiRow(string Node, IReadOnlyDictionary<int, double> Ms, int Best);

/// <summary>
/// Searches the tunable gemm_api (<see cref="GemmApi"/>: cuBLAS, cuBLASLt, cuBLASLt with its epilogue; issue 22) of
/// every gemm and linear node on a <see cref="CudaTuneDevice"/>, the way <see cref="CudaTuner"/> times SW layers: a
/// graph of copies of the node on separate inputs (sharing the parameters; enough copies to leave the L2 cache,
/// <see cref="CudaTuner.CopiesFor"/>), lowered once per candidate, bound, warmed up once and timed
/// <see cref="Repeats"/> times, the median kept. Candidate 2 is tried only where it changes the plan (cuBLASLt takes
/// the node's whole epilogue). Nodes of one op on the same types share one search. cuBLAS stays unless another is at
/// least 2% faster. The result is the per-node tunables for <see cref="CudaOptions.Tunables"/>; nothing is cached (a
/// GPU-side measurement, not yet part of <c>swc tune</c>'s cache).
/// </summary>
public sealed class GemmApiTuner
{
    /// <summary>Timed samples per candidate.</summary>
    public int Repeats { get; init; } = 7;

    /// <summary>Whether a node's GEMM is one gemm_api chooses.</summary>
    public static bool Chooses(Node n) => n.Op is Gemm or Linear;

    /// <summary>The search on <paramref name="device"/>; one row per gemm and linear node.</summary>
    public IReadOnlyList<GemmApiRow> Tune(Graph g, IReadOnlyDictionary<string, Tensor> weights, CudaTuneDevice device)
    {
        var types = g.ValueTypes();
        var rows = new List<GemmApiRow>();
        var measured = new Dictionary<string, GemmApiRow>(StringComparer.Ordinal);
        foreach (var node in g.Nodes.Where(Chooses))
        {
            // nodes of one op on the same types (the blocks of a stage) are measured once
            var key = $"{node.Op} " + string.Join(" ", node.Inputs.Select(i =>
                types[i] + (weights.ContainsKey(i) ? " (parameter)" : "")));
            if (measured.TryGetValue(key, out var same))
            {
                rows.Add(same with { Node = node.Name });
                continue;
            }
            long bytes = node.Inputs.Where(i => !weights.ContainsKey(i)).Sum(i => types[i].Shape.Elements
                * types[i].DType.Size()) + node.Types.Sum(t => t.Shape.Elements * t.DType.Size());
            int copies = CudaTuner.CopiesFor(bytes);
            var (mini, w) = Copies(node, types, weights, copies);
            var rng = new Random(1);
            var inputs = mini.Inputs.ToDictionary(i => i.Name, i => Tensor.FromDoubles(i.Type,
                Enumerable.Range(0, (int)i.Type.Shape.Elements).Select(_ => rng.NextDouble() * 2 - 1).ToArray()));
            var ms = new Dictionary<int, double>();
            foreach (int api in new[] { GemmApi.Cublas, GemmApi.Lt, GemmApi.LtEpilogue })
            {
                var cfg = new Dictionary<string, int> { [GemmApi.Tunable] = api };
                var plan = CudaCodegen.Lower(mini, new CudaOptions(device.Arch)
                {
                    Tunables = mini.Nodes.ToDictionary(n => n.Name, _ => (IReadOnlyDictionary<string, int>)cfg,
                        StringComparer.Ordinal),
                });
                bool fuses = plan.Steps.OfType<GemmCall>().Any(c => c.Lt is { Epilogue: not GemmEpilogue.Default });
                if (api == GemmApi.LtEpilogue && !fuses) continue;
                using var trial = device.Bind(plan, mini, w, inputs);
                trial.Sample(); // warm-up
                var samples = Enumerable.Range(0, Repeats).Select(_ => trial.Sample() / copies).Order().ToArray();
                ms[api] = samples[samples.Length / 2];
            }
            var best = ms.MinBy(kv => kv.Value).Key;
            if (ms[best] > 0.98 * ms[GemmApi.Cublas]) best = GemmApi.Cublas;
            rows.Add(measured[key] = new GemmApiRow(node.Name, ms, best));
        }
        return rows;
    }

    /// <summary>The rows as <see cref="CudaOptions.Tunables"/> (gemm_api per node).</summary>
    public static Dictionary<string, IReadOnlyDictionary<string, int>> Tunables(IEnumerable<GemmApiRow> rows) =>
        rows.ToDictionary(r => r.Node, r => (IReadOnlyDictionary<string, int>)new Dictionary<string, int>
            { [GemmApi.Tunable] = r.Best }, StringComparer.Ordinal);

    /// <summary>
    /// <paramref name="copies"/> copies of a node, each on its own activations (the inputs that are not
    /// parameters: x, and a residual), sharing the parameters.
    /// </summary>
    public static (Graph Graph, Dictionary<string, Tensor> Weights) Copies(Node node,
        IReadOnlyDictionary<string, TensorType> types, IReadOnlyDictionary<string, Tensor> weights, int copies)
    {
        var b = new GraphBuilder("tune_gemm");
        var ps = node.Inputs.Distinct().Where(weights.ContainsKey)
            .ToDictionary(p => p, p => b.Param(p, types[p]), StringComparer.Ordinal);
        var outs = new List<Value>();
        for (int c = 0; c < copies; c++)
        {
            var args = node.Inputs.Select((v, i) => ps.TryGetValue(v, out var p) ? p : b.Input($"x{c}_{i}", types[v]))
                .ToArray();
            outs.AddRange(b.Apply(node.Op, $"gemm{c}", args));
        }
        b.Output([.. outs]);
        return (b.Build(), ps.Keys.ToDictionary(p => p, p => weights[p], StringComparer.Ordinal));
    }
}
