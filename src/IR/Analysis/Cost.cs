using ShiftWise.IR.Ops;

namespace ShiftWise.IR.Analysis;

/// <summary>
/// What one node costs: parameters it introduces, multiply-accumulates, plain additions, floating-point operations
/// (2 per MAC, 1 per addition or element-wise step) and bytes moved (inputs, parameters and outputs, once each).
/// </summary>
public sealed record NodeCost(Node Node, long Params, long Macs, long Adds, long Flops, long Bytes);

/// <summary>
/// Counts parameters and arithmetic per node. A trainable parameter is counted at the first node that reads it.
/// MACs are those of convolutions and linear layers (the convention of the original's FLOP tables);
/// the shift-add's accumulations are plain additions, counted exactly with border clipping (SPEC 3.1).
/// </summary>
public static class Cost
{
    /// <summary>
    /// Costs of every node in order. The FLOPs and bytes of the SW layer ops (<see cref="SwCross"/>,
    /// <see cref="FusedShiftWise"/>) depend on how a target lowers them, which the IR does not know:
    /// <paramref name="lowered"/> gives them (Passes.Lowering.SwLoweringCost.Cheapest); without it they count 0 FLOPs
    /// and their inputs and outputs once.
    /// </summary>
    public static IReadOnlyList<NodeCost> Of(Graph g, Func<Op, Shape, (long Flops, long Bytes)>? lowered = null)
    {
        var types = g.ValueTypes();
        var pars = g.Params.Where(p => !p.Buffer)
            .ToDictionary(p => p.Name, p => p.Type.Shape.Elements, StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var list = new List<NodeCost>();
        foreach (var n in g.Nodes)
        {
            long p = 0;
            foreach (var i in n.Inputs)
            {
                if (pars.TryGetValue(i, out var e) && seen.Add(i)) p += e;
            }
            var ins = n.Inputs.Select(i => types[i].Shape).ToArray();
            var outShape = n.Types[0].Shape;
            long macs = n.Op switch
            {
                Conv2d c => outShape.Elements * ins[1][1] * ins[1][2] * ins[1][3],
                Linear => outShape.Elements * ins[1][1],
                _ => 0,
            };
            long adds = n.Op is ShiftAdd s ? ShiftAddTerms(s, ins[0]) : 0;
            long elems = n.Types.Sum(t => t.Shape.Elements);
            long flops = n.Op switch
            {
                Conv2d or Linear => 2 * macs,
                Gemm gm => 2 * outShape.Elements * ins[1][1] + (gm.Act == GemmAct.None ? 0 : 8 * elems)
                    + (gm.HasGrn ? 4 * elems : 0) + (gm.HasResidual ? elems : 0),
                GemmGrnFold f => FoldFlops(f, ins, outShape.Elements),
                ShiftAdd => adds,
                SwCross or FusedShiftWise => lowered?.Invoke(n.Op, ins[0]).Flops ?? 0,
                BatchNorm or ScaleBias => 2 * elems,
                LayerNorm or Grn or Softmax => 5 * elems,
                Unary { Kind: UnaryKind.Gelu } => 8 * elems,
                Unary or Binary or Mean or CrossEntropy => ins.Max(i => i.Elements),
                _ => 0,
            };
            long bytes = n.Inputs.Sum(i => Bytes(types[i])) + n.Types.Sum(Bytes);
            if (n.Op is SwCross or FusedShiftWise && lowered is not null) bytes = lowered(n.Op, ins[0]).Bytes;
            list.Add(new NodeCost(n, p, macs, adds, flops, bytes));
        }
        return list;
    }

    private static long Bytes(TensorType t) => t.Shape.Elements * t.DType.Size();

    /// <summary>The two GEMMs of a folded GRN pair, GRN on the first's output u, the second's epilogue.</summary>
    private static long FoldFlops(GemmGrnFold f, Shape[] ins, long outElems)
    {
        var w2 = ins[f.Slots.W2];
        long u = w2[0] == 0 ? 0 : outElems / w2[0] * w2[1];
        return 2 * u * ins[1][1] + (f.Act == GemmAct.None ? 0 : 8 * u) + 4 * u + 2 * outElems * w2[1]
            + (f.Act2 == GemmAct.None ? 0 : 8 * outElems) + (f.HasResidual ? outElems : 0);
    }

    /// <summary>Trainable parameters declared by the graph (buffers excluded).</summary>
    public static long TotalParams(Graph g) => g.Params.Where(p => !p.Buffer).Sum(p => p.Type.Shape.Elements);

    /// <summary>Elements of the graph's buffers (running statistics).</summary>
    public static long TotalBuffers(Graph g) => g.Params.Where(p => p.Buffer).Sum(p => p.Type.Shape.Elements);

    /// <summary>
    /// Number of X terms the shift-add sums into its three outputs: per replica and sub-channel, the output
    /// positions whose source lies inside X along the shifted axis, plus one identity term per output and replica.
    /// </summary>
    public static long ShiftAddTerms(ShiftAdd s, Shape x)
    {
        int e = s.Extra, hin = x[2], win = x[3], h = hin - 2 * e, w = win - 2 * e;
        long total = 0;
        for (int t = 0; t < x[1]; t++)
        {
            for (int g = 0; g < s.NRep; g++)
            {
                total += (long)h * Valid(w, win, s.ShiftH(t, g));
                total += (long)w * Valid(h, hin, s.ShiftV(t, g));
            }
        }
        total += (long)s.Rep * s.NRep * h * w;
        return total * x[0];
    }

    /// <summary>#{p ∈ [0, size) : 0 ≤ p − shift &lt; extent}.</summary>
    private static long Valid(int size, int extent, int shift) =>
        Math.Max(0, Math.Min(size, extent + shift) - Math.Max(0, shift));

    /// <summary>
    /// Weights that merge_branches removes: the parallel small convs beyond the first, i.e. conv weights of every
    /// conv2d that is summed with another conv2d of the same input before a shift_add.
    /// </summary>
    public static long MergeableParams(Graph g)
    {
        var producer = g.Nodes.SelectMany(n => n.Outputs.Select(o => (o, n))).ToDictionary(x => x.o, x => x.n);
        var types = g.ValueTypes();
        long extra = 0;
        foreach (var n in g.Nodes.Where(n => n.Op is ShiftAdd))
        {
            var convs = new List<Node>();
            void Walk(string v)
            {
                var p = producer.GetValueOrDefault(v);
                if (p?.Op is Binary { Kind: BinaryKind.Add }) { Walk(p.Inputs[0]); Walk(p.Inputs[1]); }
                else if (p?.Op is Conv2d) convs.Add(p);
            }
            Walk(n.Inputs[0]);
            extra += convs.Skip(1).Sum(c => types[c.Inputs[1]].Shape.Elements);
        }
        return extra;
    }
}
