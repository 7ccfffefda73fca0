using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Passes;

/// <summary>One activation buffer placed in the arena: its value, byte range and live node interval.</summary>
public sealed record BufferSlot(string Value, long Offset, long Bytes, int First, int Last);

/// <summary>
/// Where every activation lives in one arena. Values whose live intervals (definition to last use, in node order)
/// do not overlap share bytes. Reshapes and eval drop-paths are views of their input, not buffers.
/// </summary>
public sealed record MemoryPlan(IReadOnlyList<BufferSlot> Slots, IReadOnlyDictionary<string, string> Aliases,
    long ArenaBytes, long NoReuseBytes, long LowerBound)
{
    /// <summary>Byte alignment of every slot (a GPU-friendly 256).</summary>
    public const int Alignment = 256;

    /// <summary>
    /// Plans the graph's node outputs (graph inputs and parameters live elsewhere). Placement is greedy first-fit in
    /// order of decreasing size, against slots already placed whose intervals overlap.
    /// </summary>
    public static MemoryPlan Of(Graph g)
    {
        var aliases = new Dictionary<string, string>(StringComparer.Ordinal);
        string Root(string v) => aliases.TryGetValue(v, out var a) ? Root(a) : v;
        var produced = new Dictionary<string, (int Index, long Bytes)>(StringComparer.Ordinal);
        for (int i = 0; i < g.Nodes.Count; i++)
        {
            var n = g.Nodes[i];
            if (n.Op is Reshape or DropPath { Mode: Mode.Eval } && produced.ContainsKey(n.Inputs[0]))
            {
                aliases[n.Outputs[0]] = n.Inputs[0];
                continue;
            }
            for (int k = 0; k < n.Outputs.Count; k++)
            {
                produced[n.Outputs[k]] = (i, Align(n.Types[k].Shape.Elements * n.Types[k].DType.Size()));
            }
        }
        var last = produced.ToDictionary(kv => kv.Key, kv => kv.Value.Index, StringComparer.Ordinal);
        for (int i = 0; i < g.Nodes.Count; i++)
        {
            foreach (var v in g.Nodes[i].Inputs)
            {
                var r = Root(v);
                if (last.ContainsKey(r)) last[r] = Math.Max(last[r], i);
            }
        }
        foreach (var o in g.Outputs)
        {
            var r = Root(o);
            if (last.ContainsKey(r)) last[r] = g.Nodes.Count;
        }
        var slots = new List<BufferSlot>();
        foreach (var (v, (first, bytes)) in produced.OrderByDescending(kv => kv.Value.Bytes)
            .ThenBy(kv => kv.Value.Index))
        {
            var overlapping = slots.Where(s => s.First <= last[v] && first <= s.Last).OrderBy(s => s.Offset).ToList();
            long offset = 0;
            foreach (var s in overlapping)
            {
                if (offset + bytes <= s.Offset) break;
                offset = Math.Max(offset, s.Offset + s.Bytes);
            }
            slots.Add(new BufferSlot(v, offset, bytes, first, last[v]));
        }
        long arena = slots.Count == 0 ? 0 : slots.Max(s => s.Offset + s.Bytes);
        long bound = 0;
        for (int i = 0; i <= g.Nodes.Count; i++)
        {
            bound = Math.Max(bound, slots.Where(s => s.First <= i && i <= s.Last).Sum(s => s.Bytes));
        }
        return new MemoryPlan(slots.OrderBy(s => s.First).ToArray(), aliases, arena, slots.Sum(s => s.Bytes), bound);
    }

    private static long Align(long b) => (b + Alignment - 1) / Alignment * Alignment;
}
