using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Passes;

/// <summary>
/// The SW layer's rep path, conv(x_rep, W) (one conv or a sum of parallel ones) → shift_add → a per-channel affine
/// on each of the three paths (eval BN or scale_bias, or none) → their sum → + x_rep, becomes one
/// <see cref="SwCross"/>: a depthwise op with one cross-shaped kernel per rep channel (SPEC 2), exact at every
/// border. The sub-kernels and path scales are kept, so both lowerings stay available.
/// </summary>
public sealed class CollapseShiftWise : Pass
{
    /// <inheritdoc/>
    public override string Name => "collapse-shiftwise";

    /// <inheritdoc/>
    public override bool Run(PassContext ctx)
    {
        var e = new GraphEditor(ctx);
        foreach (var root in ctx.Graph.Nodes.Where(n => n.Op is Binary { Kind: BinaryKind.Add }))
        {
            if (e.Touched(root)) continue;
            // a root is the top of its sum tree
            if (e.OnlyConsumer(root.Outputs[0]) is { Op: Binary { Kind: BinaryKind.Add } }) continue;
            TryCollapse(e, root);
        }
        return e.Commit();
    }

    private static void TryCollapse(GraphEditor e, Node root)
    {
        var leaves = new List<string>();
        var adds = new List<Node>();
        SumLeaves(e, root, leaves, adds);
        if (leaves.Count != 4) return;
        // exactly one leaf is the conv input (the residual); three are the paths of one shift_add
        Node? shift = null;
        var paths = new (double[]? Scale, double[]? Bias, Node? Affine)[3];
        var found = new bool[3];
        string? residual = null;
        foreach (var leaf in leaves)
        {
            var (path, affine) = ThroughAffine(e, leaf);
            if (e.Producer(path) is { Op: ShiftAdd } s && (shift is null || s == shift) && e.SingleUse(path))
            {
                shift = s;
                int which = s.Outputs.ToList().IndexOf(path);
                if (found[which]) return;
                found[which] = true;
                var a = affine is null ? null : Affine.Of(e, affine);
                if (affine is not null && a is null) return;
                paths[which] = (a?.Scale, a?.Bias, affine);
            }
            else if (residual is null)
            {
                residual = leaf;
            }
            else
            {
                return;
            }
        }
        if (shift is null || !found.All(f => f) || residual is null || !e.SingleUse(shift.Inputs[0])) return;
        var sa = (ShiftAdd)shift.Op;
        var conv = ConvSum.MatchOneOrMore(e, shift.Inputs[0]);
        if (conv is null || conv.Input != residual) return;
        int r = sa.Rep, k = sa.Small;
        if (conv.Convs[0].Op != Conv2d.Simple(k - 1, groups: r)) return;

        var dtype = e.TypeOf(residual).DType;
        var scales = new double[4 * r];
        var bias = new double[r];
        for (int p = 0; p < 3; p++)
        {
            for (int o = 0; o < r; o++)
            {
                scales[p * r + o] = paths[p].Scale?[o] ?? 1;
                bias[o] += paths[p].Bias?[o] ?? 0;
            }
        }
        for (int o = 0; o < r; o++) scales[3 * r + o] = 1;
        string prefix = conv.Convs[0].Inputs[1];
        var w = e.AddParam(prefix + ".sw", dtype, new Shape(r * sa.N, 1, k, k), conv.Weight);
        var sc = e.AddParam(prefix + ".sw_scales", dtype, new Shape(4, r), scales);
        var b = e.AddParam(prefix + ".sw_bias", dtype, new Shape(r), bias);
        foreach (var n in conv.Convs.Concat(conv.Adds).Append(shift).Concat(adds.Where(a => a != root))) e.Remove(n);
        foreach (var p in paths) if (p.Affine is not null) e.Remove(p.Affine);
        e.Replace(root, e.Make(new SwCross(sa, SwCore.AllSubs(sa)), [root.Outputs[0]], residual, w, sc, b));
    }

    /// <summary>The value under a single-use per-channel affine, or the leaf itself.</summary>
    private static (string Value, Node? Affine) ThroughAffine(GraphEditor e, string leaf)
    {
        var p = e.Producer(leaf);
        return p is { Op: BatchNorm { Mode: Mode.Eval } or ScaleBias } && e.SingleUse(leaf) ? (p.Inputs[0], p)
            : (leaf, null);
    }

    private static void SumLeaves(GraphEditor e, Node add, List<string> leaves, List<Node> adds)
    {
        adds.Add(add);
        foreach (var i in add.Inputs)
        {
            if (e.Producer(i) is { Op: Binary { Kind: BinaryKind.Add } } inner && e.SingleUse(i) && leaves.Count < 8)
            {
                SumLeaves(e, inner, leaves, adds);
            }
            else
            {
                leaves.Add(i);
            }
        }
    }
}
