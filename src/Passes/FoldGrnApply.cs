using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Passes;

/// <summary>
/// Folds GRN's apply pass into the GEMM that consumes it (inference; run after <see cref="FuseEpilogues"/>): a
/// <see cref="Gemm"/> with GRN (no residual, NHWC rows out) whose one consumer is a gemm reading it as plain rows
/// (its x, once) becomes one <see cref="GemmGrnFold"/>, whose second bias b2' = b2 + W2·β is a new parameter computed
/// here in float64. A target then scales the consumer's weights per sample by GRN's factor instead of rewriting the
/// activation: N·O·K scaled weights written and read in place of N·P·K activations read and written again.
/// <para>
/// Cost rule: it pays when the positions per sample P are at least the consumer's output features O (P ≥ O), so
/// early stages of a ConvNeXt-V2 style net fold and late ones (7×7, 14×14 at large widths) keep the three-pass GRN.
/// Needs W2, β and b2 (when present) as constant parameters.
/// </para>
/// </summary>
public sealed class FoldGrnApply : Pass
{
    /// <inheritdoc/>
    public override string Name => "fold-grn-apply";

    /// <summary>Whether the fold pays for a GRN output of <paramref name="positions"/> positions per sample feeding a
    /// GEMM with <paramref name="outFeatures"/> outputs: P ≥ O.</summary>
    public static bool Pays(long positions, int outFeatures) => positions >= outFeatures;

    /// <inheritdoc/>
    public override bool Run(PassContext ctx)
    {
        var e = new GraphEditor(ctx);
        foreach (var n in ctx.Graph.Nodes)
        {
            if (n.Op is Gemm { HasGrn: true, HasResidual: false, OutNchw: false } && !e.Touched(n)) Fold(e, n);
        }
        return e.Commit();
    }

    private static void Fold(GraphEditor e, Node grn)
    {
        var g1 = (Gemm)grn.Op;
        string u = grn.Outputs[0];
        if (e.OnlyConsumer(u) is not { Op: Gemm { InNchw: false, HasGrn: false } g2 } c || e.Touched(c)
            || c.Inputs[0] != u || c.Inputs.Count(i => i == u) != 1)
        {
            return;
        }
        var uShape = e.TypeOf(u).Shape;
        var w2Type = e.TypeOf(c.Inputs[1]);
        int o = w2Type.Shape[0], k = w2Type.Shape[1];
        if (uShape.Rank != 4 || !Pays((long)uShape[1] * uShape[2], o)) return;
        var s1 = g1.Slots;
        var beta = e.Const(grn.Inputs[s1.Beta]);
        var w2 = e.Const(c.Inputs[1]);
        var b2 = g2.HasBias ? e.Const(c.Inputs[2]) : new double[o];
        if (beta is null || w2 is null || b2 is null) return;
        var folded = new double[o];
        for (int i = 0; i < o; i++)
        {
            double sum = b2[i];
            for (int j = 0; j < k; j++) sum += w2[(long)i * k + j] * beta[j];
            folded[i] = sum;
        }
        string bias = e.AddParam(c.Inputs[1] + ".grn_fold_bias", w2Type.DType, new Shape(o), folded);
        var ins = new List<string> { grn.Inputs[0], grn.Inputs[1] };
        if (g1.HasBias) ins.Add(grn.Inputs[s1.Bias]);
        ins.AddRange([grn.Inputs[s1.Gamma], c.Inputs[1], bias]);
        if (g2.HasResidual) ins.Add(c.Inputs[g2.Slots.Residual]);
        var op = new GemmGrnFold(g1.InNchw, g1.Act, g1.HasBias, g1.GrnEps, g2.Act, g2.OutNchw, g2.HasResidual);
        e.Remove(grn);
        e.Replace(c, e.Make(op, [c.Outputs[0]], ins.ToArray()));
    }
}
