using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Export;

/// <summary>
/// An SW layer in ONNX: its collapsed cross (SPEC 2, <see cref="SwCollapse"/>) as two depthwise convolutions over the
/// rep channels, the horizontal band (k × n·k, with the vertical band's centre merged in, as the CUDA and CPU kernels
/// read it) and the vertical band (n·k × k, centre rows zero), each zero-padded so that output (y, x) reads
/// x(y+u−r, x+c−μ) and x(y+c−μ, x+v−r) (r = (k−1)/2, μ = ⌊B/2⌋; the band is off-centre when k does not divide B);
/// the ghost channels scaled and biased; the outputs concatenated [rep channels, ghost channels] as the original
/// orders them.
/// </summary>
internal static class OnnxShiftWise
{
    /// <summary>
    /// Adds the layer's nodes: inputs of <paramref name="node"/> are x, the kept sub-kernels, the path scales, the
    /// bias (rep then ghost channels) and, for a fused layer, the ghost scales.
    /// </summary>
    public static void Emit(OnnxGraphBuilder b, ShiftAdd shift, IReadOnlyList<int> subs, IReadOnlyList<int> rep,
        IReadOnlyList<int> ghost, Node node, Shape x, string y)
    {
        string stem = node.Outputs[0];
        string input = node.Inputs[0];
        var cross = SwCollapse.Collapse(shift, subs, b.Values(node.Inputs[1]), b.Values(node.Inputs[2]));
        var (h, v) = cross.Merged();
        int r = rep.Count, k = cross.Small, band = cross.BandWidth, mu = cross.Mu, half = (k - 1) / 2;
        var bias = b.Values(node.Inputs[3]);
        var parts = new List<string>();
        if (r > 0)
        {
            string xr = r == x[1] && rep.Select((c, i) => c == i).All(t => t)
                ? input
                : b.Node("Gather", stem + "/rep", [input, b.Int64s(stem + "/rep_idx", [.. rep.Select(c => (long)c)])],
                    Attr.Int("axis", 1));
            var hw = b.Constant(stem + "/band_h", [r, 1, k, band], h);
            var vw = b.Constant(stem + "/band_v", [r, 1, band, k], v);
            var rb = b.Constant(stem + "/bias_rep", [r], OnnxOps.Floats(bias.Take(r)));
            // pads: top, left, bottom, right
            var yh = b.Node("Conv", stem + "/h", [xr, hw], Attr.Int("group", r), Attr.Ints("kernel_shape", [k, band]),
                Attr.Ints("pads", [half, mu, k - 1 - half, band - 1 - mu]));
            var yv = b.Node("Conv", stem + "/v", [xr, vw, rb], Attr.Int("group", r),
                Attr.Ints("kernel_shape", [band, k]), Attr.Ints("pads", [mu, half, band - 1 - mu, k - 1 - half]));
            parts.Add(ghost.Count == 0 ? b.NodeTo("Add", y, [yh, yv]) : b.Node("Add", stem + "/rep", [yh, yv]));
        }
        if (ghost.Count > 0)
        {
            int g = ghost.Count;
            var xg = b.Node("Gather", stem + "/ghost", [input,
                b.Int64s(stem + "/ghost_idx", [.. ghost.Select(c => (long)c)])], Attr.Int("axis", 1));
            var gs = b.Constant(stem + "/ghost_scale", [1, g, 1, 1], OnnxOps.Floats(b.Values(node.Inputs[4])));
            var gb = b.Constant(stem + "/ghost_bias", [1, g, 1, 1], OnnxOps.Floats(bias.Skip(r).Take(g)));
            var yg = b.Node("Mul", stem + "/ghost", [xg, gs]);
            parts.Add(r == 0 ? b.NodeTo("Add", y, [yg, gb]) : b.Node("Add", stem + "/ghost", [yg, gb]));
        }
        if (parts.Count == 2) b.NodeTo("Concat", y, parts, Attr.Int("axis", 1));
        else if (parts.Count == 0) throw new IrException($"ONNX export: {node.Describe()} has no channels");
    }
}
