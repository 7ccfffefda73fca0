using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Passes;

/// <summary>
/// The whole SW layer becomes one <see cref="FusedShiftWise"/>: the rep channel selection, the collapsed
/// <see cref="SwCross"/>, the ghost selection and concat, and the per-channel affine that follows (the block's BN).
/// </summary>
public sealed class FuseShiftWise : Pass
{
    /// <inheritdoc/>
    public override string Name => "fuse-shiftwise";

    /// <inheritdoc/>
    public override bool Run(PassContext ctx)
    {
        var e = new GraphEditor(ctx);
        foreach (var cross in ctx.Graph.Nodes.Where(n => n.Op is SwCross))
        {
            var sc = (SwCross)cross.Op;
            var z = cross.Outputs[0];
            if (e.Producer(cross.Inputs[0]) is not { Op: ChannelSelect { Axis: 1 } repSel } repNode
                || !e.SingleUse(cross.Inputs[0]))
            {
                continue;
            }
            string x = repNode.Inputs[0];
            int[] ghost = [];
            Node? concat = null, ghostNode = null;
            var top = z;
            var next = e.OnlyConsumer(z);
            if (next is { Op: Concat { Axis: 1 } } cat && cat.Inputs.Count == 2 && cat.Inputs[0] == z
                && e.Producer(cat.Inputs[1]) is { Op: ChannelSelect { Axis: 1 } gs } g && g.Inputs[0] == x
                && e.SingleUse(cat.Inputs[1]))
            {
                concat = cat;
                ghostNode = g;
                ghost = gs.Indices.ToArray();
                top = cat.Outputs[0];
            }
            int r = sc.Shift.Rep, c = r + ghost.Length;
            var affineNode = e.OnlyConsumer(top) is { } a && Affine.Of(e, a) is not null ? a : null;
            var (s, b) = affineNode is null ? (Enumerable.Repeat(1.0, c).ToArray(), new double[c])
                : Affine.Of(e, affineNode)!.Value;
            var scales = e.Const(cross.Inputs[2]);
            var bias = e.Const(cross.Inputs[3]);
            if (scales is null || bias is null || !e.IsParam(cross.Inputs[1])) continue;

            var fs = new double[4 * r];
            var fb = new double[c];
            for (int o = 0; o < r; o++)
            {
                for (int row = 0; row < 4; row++) fs[row * r + o] = scales[row * r + o] * s[o];
                fb[o] = bias[o] * s[o] + b[o];
            }
            for (int j = 0; j < ghost.Length; j++) fb[r + j] = b[r + j];
            var dtype = e.TypeOf(x).DType;
            var fsn = e.AddParam(cross.Inputs[2] + ".fused", dtype, new Shape(4, r), fs);
            var fbn = e.AddParam(cross.Inputs[3] + ".fused", dtype, new Shape(c), fb);
            var gsn = e.AddParam(cross.Inputs[3] + ".ghost_scale", dtype, new Shape(ghost.Length), s[r..]);
            var last = affineNode ?? concat ?? cross;
            var op = new FusedShiftWise(sc.Shift, sc.Subs, repSel.Indices, ghost);
            foreach (var n in new[] { repNode, cross, concat, ghostNode, affineNode })
            {
                if (n is not null && n != last) e.Remove(n);
            }
            e.Replace(last, e.Make(op, [last.Outputs[0]], x, cross.Inputs[1], fsn, fbn, gsn));
        }
        return e.Commit();
    }
}
