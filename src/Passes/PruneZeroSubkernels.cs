using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Passes;

/// <summary>
/// Drops all-zero sub-kernels (what sparse training leaves, SPEC 5.5) from the factorised form of
/// <see cref="SwCross"/> and <see cref="FusedShiftWise"/>: a zero sub-kernel contributes nothing to any path.
/// </summary>
public sealed class PruneZeroSubkernels : Pass
{
    /// <inheritdoc/>
    public override string Name => "prune-zero-subkernels";

    /// <inheritdoc/>
    public override bool Run(PassContext ctx)
    {
        var e = new GraphEditor(ctx);
        foreach (var n in ctx.Graph.Nodes)
        {
            if (n.Op is not (SwCross or FusedShiftWise) || !e.IsParam(n.Inputs[1])) continue;
            var (shift, subs) = n.Op is SwCross c ? (c.Shift, c.Subs)
                : (((FusedShiftWise)n.Op).Shift, ((FusedShiftWise)n.Op).Subs);
            int kk = shift.Small * shift.Small;
            var w = e.Const(n.Inputs[1])!;
            var keep = Enumerable.Range(0, subs.Count).Where(i => w.AsSpan(i * kk, kk).ContainsAnyExcept(0.0))
                .ToArray();
            if (keep.Length == subs.Count) continue;
            var kept = keep.SelectMany(i => w.AsSpan(i * kk, kk).ToArray()).ToArray();
            var newSubs = new Vec<int>(keep.Select(i => subs[i]));
            var t = e.TypeOf(n.Inputs[1]);
            var wn = e.AddParam(n.Inputs[1] + ".pruned", t.DType,
                new Shape(keep.Length, 1, shift.Small, shift.Small), kept);
            Op op = n.Op is SwCross sc ? sc with { Subs = newSubs } : ((FusedShiftWise)n.Op) with { Subs = newSubs };
            e.Replace(n, e.Make(op, n.Outputs.ToArray(), [n.Inputs[0], wn, .. n.Inputs.Skip(2)]));
        }
        return e.Commit();
    }
}
