using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Passes;

/// <summary>
/// Eval-mode batch norm folded into what precedes it: into a convolution's weight and bias, or through an
/// NHWC→NCHW permute into a linear layer's rows. Where there is nothing to fold into (after the shift-add paths,
/// after a concat), the BN becomes a per-channel scale_bias.
/// </summary>
public sealed class FoldBatchNorm : Pass
{
    /// <inheritdoc/>
    public override string Name => "fold-batch-norm";

    /// <inheritdoc/>
    public override bool Run(PassContext ctx)
    {
        var e = new GraphEditor(ctx);
        foreach (var bn in ctx.Graph.Nodes.Where(n => n.Op is BatchNorm { Mode: Mode.Eval }))
        {
            var affine = Affine.Of(e, bn);
            if (affine is null) continue;
            var (scale, bias) = affine.Value;
            var x = bn.Inputs[0];
            var dtype = e.TypeOf(x).DType;
            var prod = e.Producer(x);
            if (prod is { Op: Conv2d } conv && e.SingleUse(x) && !e.Touched(conv) && e.IsParam(conv.Inputs[1])
                && (conv.Inputs.Count == 2 || e.IsParam(conv.Inputs[2])))
            {
                var w = Scaled(e.Weight(conv.Inputs[1])!, dtype, [scale]);
                var b = Shifted(conv.Inputs.Count == 3 ? e.Const(conv.Inputs[2]) : null, scale, bias);
                var wn = e.AddParam(conv.Inputs[1] + ".bn_folded", w);
                var bnm = e.AddParam((conv.Inputs.Count == 3 ? conv.Inputs[2] : conv.Inputs[1] + ".bias")
                    + ".bn_folded", dtype, new Shape(scale.Length), b);
                e.Remove(conv);
                e.Replace(bn, e.Make(conv.Op, [bn.Outputs[0]], conv.Inputs[0], wn, bnm));
                continue;
            }
            if (prod is { Op: Permute p } perm && p.Perm == Vec.Of(0, 3, 1, 2) && e.SingleUse(x) && !e.Touched(perm)
                && e.Producer(perm.Inputs[0]) is { Op: Linear } lin && e.SingleUse(perm.Inputs[0]) && !e.Touched(lin)
                && e.IsParam(lin.Inputs[1]) && (lin.Inputs.Count == 2 || e.IsParam(lin.Inputs[2])))
            {
                var w = Scaled(e.Weight(lin.Inputs[1])!, dtype, [scale]);
                var b = Shifted(lin.Inputs.Count == 3 ? e.Const(lin.Inputs[2]) : null, scale, bias);
                var wn = e.AddParam(lin.Inputs[1] + ".bn_folded", w);
                var bnm = e.AddParam(lin.Inputs[1] + ".bias.bn_folded", dtype, new Shape(scale.Length), b);
                e.Replace(lin, e.Make(new Linear(), [lin.Outputs[0]], lin.Inputs[0], wn, bnm));
                e.Remove(perm);
                e.Replace(bn, e.Make(perm.Op, [bn.Outputs[0]], lin.Outputs[0]));
                continue;
            }
            var c = new Shape(scale.Length);
            var sn = e.AddParam(bn.Inputs[1] + ".scale", dtype, c, scale);
            var bs = e.AddParam(bn.Inputs[2] + ".shift", dtype, c, bias);
            e.Replace(bn, e.Make(new ScaleBias(1), [bn.Outputs[0]], x, sn, bs));
        }
        return e.Commit();
    }

    /// <summary>Multiplies each output row (first axis) of a weight by its channel's scale.</summary>
    public static double[] Scaled(double[] w, double[] scale)
    {
        int per = w.Length / scale.Length;
        var r = new double[w.Length];
        for (int i = 0; i < w.Length; i++) r[i] = w[i] * scale[i / per];
        return r;
    }

    /// <summary>
    /// A weight with each output row (first axis) multiplied by its channel's scale, by each of
    /// <paramref name="scales"/> in turn: in double per element, rounded once to <paramref name="dtype"/>, exactly as
    /// <see cref="Scaled(double[], double[])"/> applied in turn then rounded, but without a double copy of the weight
    /// (float32 in, float32 out).
    /// </summary>
    public static Tensor Scaled(Tensor w, DType dtype, IReadOnlyList<double[]> scales)
    {
        var type = new TensorType(dtype, w.Shape);
        if (scales.Count == 0) return w.Cast(dtype);
        if (w.Data is not float[] src || dtype != DType.F32)
        {
            var d = w.ToDoubles();
            foreach (var s in scales) d = Scaled(d, s);
            return Tensor.FromDoubles(type, d);
        }
        var r = Tensor.Zeros(type);
        var dst = (float[])r.Data;
        int rows = scales[0].Length;
        int per = src.Length / rows;
        for (int row = 0; row < rows; row++)
        {
            for (int i = row * per, end = i + per; i < end; i++)
            {
                double v = src[i];
                foreach (var s in scales) v *= s[row];
                dst[i] = (float)v;
            }
        }
        return r;
    }

    /// <summary>bias·scale + shift (bias 0 when absent).</summary>
    public static double[] Shifted(double[]? b, double[] scale, double[] shift) =>
        scale.Select((s, i) => (b?[i] ?? 0) * s + shift[i]).ToArray();
}
