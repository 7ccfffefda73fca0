using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Export;

/// <summary>
/// The ONNX nodes of each op of the export graph (the re-parameterised inference graph before epilogue fusion), in
/// standard default-domain ops only, so that any ONNX runtime runs the model unmodified. Each op's meaning is its
/// reference implementation's (src/IR/Reference); the tests compare ONNX Runtime's result with it.
/// </summary>
internal static class OnnxOps
{
    /// <summary>Adds the nodes computing <paramref name="node"/>'s output (named as in the swc graph).</summary>
    public static void Emit(OnnxGraphBuilder b, Node node, IReadOnlyDictionary<string, TensorType> types)
    {
        string Arg(int i) => b.IsParam(node.Inputs[i]) ? b.Param(node.Inputs[i]) : node.Inputs[i];
        Shape In(int i) => types[node.Inputs[i]].Shape;
        var y = b.Name(node.Outputs[0]);
        string stem = node.Outputs[0];
        switch (node.Op)
        {
            case Conv2d c:
                b.NodeTo("Conv", y, Enumerable.Range(0, node.Inputs.Count).Select(Arg),
                    Attr.Ints("strides", c.Stride), Attr.Ints("dilations", c.Dilation), Attr.Int("group", c.Groups),
                    Attr.Ints("kernel_shape", [In(1)[2], In(1)[3]]),
                    Attr.Ints("pads", [c.Padding[0], c.Padding[1], c.Padding[0], c.Padding[1]]));
                break;
            case IR.Ops.Linear:
                Linear(b, node, y, In(1));
                break;
            case Unary u:
                Unary(b, u.Kind, Arg(0), y, stem);
                break;
            case Binary bin:
                b.NodeTo(bin.Kind == BinaryKind.Add ? "Add" : "Mul", y, [Arg(0), Arg(1)]);
                break;
            case Mean m:
                b.Reduce("ReduceMean", stem, Arg(0), Axes(m.Axes, In(0)), m.KeepDim, y);
                break;
            case Permute p:
                b.NodeTo("Transpose", y, [Arg(0)], Attr.Ints("perm", p.Perm));
                break;
            case Reshape r:
                // the batch dimension kept as 0 ("copy it from the input") so a dynamic batch still reshapes
                var to = r.To.Select((d, i) => i == 0 && d == In(0)[0] ? 0L : d).ToArray();
                b.NodeTo("Reshape", y, [Arg(0), b.Int64s(stem + "/shape", to)]);
                break;
            case ChannelSelect cs:
                b.NodeTo("Gather", y, [Arg(0), b.Int64s(stem + "/indices", [.. cs.Indices.Select(i => (long)i)])],
                    Attr.Int("axis", cs.Axis));
                break;
            case Concat cat:
                b.NodeTo("Concat", y, Enumerable.Range(0, node.Inputs.Count).Select(Arg), Attr.Int("axis", cat.Axis));
                break;
            case Softmax s:
                b.NodeTo("Softmax", y, [Arg(0)], Attr.Int("axis", s.Axis));
                break;
            case DropPath { Mode: Mode.Eval }:
                b.NodeTo("Identity", y, [Arg(0)]);
                break;
            case ScaleBias sb:
            {
                var x = In(0);
                int axis = x.Axis(sb.Axis);
                var shape = Enumerable.Range(0, x.Rank).Select(i => i == axis ? (long)x[i] : 1L).ToArray();
                var scale = b.Constant(stem + "/scale", shape, Floats(b.Values(node.Inputs[1])));
                var bias = b.Constant(stem + "/bias", shape, Floats(b.Values(node.Inputs[2])));
                b.NodeTo("Add", y, [b.Node("Mul", stem, [Arg(0), scale]), bias]);
                break;
            }
            case LayerNorm ln:
                LayerNorm(b, ln, node, In(0), y, stem);
                break;
            case Grn g:
                Grn(b, g, node, y, stem);
                break;
            case FusedShiftWise f:
                OnnxShiftWise.Emit(b, f.Shift, f.Subs, f.Rep, f.Ghost, node, In(0), y);
                break;
            case SwCross sc:
                OnnxShiftWise.Emit(b, sc.Shift, sc.Subs, Enumerable.Range(0, In(0)[1]).ToArray(), [], node, In(0), y);
                break;
            default:
                throw new IrException($"ONNX export: {node.Describe()}: op {node.Op.Name} has no ONNX form (the "
                    + "export takes the inference graph before epilogue fusion; training ops are not exported)");
        }
    }

    /// <summary>Float copies of double values.</summary>
    public static float[] Floats(IEnumerable<double> v) => v.Select(d => (float)d).ToArray();

    private static long[] Axes(IEnumerable<int> axes, Shape x) => axes.Select(a => (long)x.Axis(a)).ToArray();

    // y = x·Wᵀ + b over the last axis: MatMul with the transposed weight (an initializer), then Add
    private static void Linear(OnnxGraphBuilder b, Node node, string y, Shape w)
    {
        var wv = b.Values(node.Inputs[1]);
        int o = w[0], k = w[1];
        var t = new float[wv.Length];
        for (int i = 0; i < o; i++)
        {
            for (int j = 0; j < k; j++) t[j * o + i] = (float)wv[i * k + j];
        }
        var wt = b.Constant(node.Inputs[1] + "/T", [k, o], t);
        string x = b.IsParam(node.Inputs[0]) ? b.Param(node.Inputs[0]) : node.Inputs[0];
        if (node.Inputs.Count < 3)
        {
            b.NodeTo("MatMul", y, [x, wt]);
            return;
        }
        b.NodeTo("Add", y, [b.Node("MatMul", y, [x, wt]), b.Param(node.Inputs[2])]);
    }

    private static void Unary(OnnxGraphBuilder b, UnaryKind kind, string x, string y, string stem)
    {
        switch (kind)
        {
            case UnaryKind.Relu:
                b.NodeTo("Relu", y, [x]);
                break;
            case UnaryKind.Sigmoid:
                b.NodeTo("Sigmoid", y, [x]);
                break;
            case UnaryKind.Gelu:
                // the exact (erf) GELU: 0.5·x·(1 + erf(x/√2))
                var e = b.Node("Erf", stem, [b.Node("Mul", stem, [x, b.Constant(stem + "/rsqrt2", [],
                    (float)Math.Sqrt(0.5))])]);
                var one = b.Node("Add", stem, [e, b.Constant(stem + "/one", [], 1f)]);
                b.NodeTo("Mul", y, [b.Node("Mul", stem, [x, one]), b.Constant(stem + "/half", [], 0.5f)]);
                break;
            default:
                throw new IrException($"ONNX export: unary {kind} has no ONNX form");
        }
    }

    // biased variance, eps inside the square root; over the last axis LayerNormalization, over axis 1 (NCHW) the
    // same arithmetic spelled out
    private static void LayerNorm(OnnxGraphBuilder b, LayerNorm ln, Node node, Shape x, string y, string stem)
    {
        int axis = ln.Axis(x.Rank);
        if (axis == x.Rank - 1)
        {
            b.NodeTo("LayerNormalization", y, [node.Inputs[0], b.Param(node.Inputs[1]), b.Param(node.Inputs[2])],
                Attr.Int("axis", -1), Attr.Float("epsilon", ln.Eps));
            return;
        }
        var mean = b.Reduce("ReduceMean", stem, node.Inputs[0], [axis], true);
        var d = b.Node("Sub", stem, [node.Inputs[0], mean]);
        var v = b.Reduce("ReduceMean", stem, b.Node("Mul", stem, [d, d]), [axis], true);
        var sd = b.Node("Sqrt", stem, [b.Node("Add", stem, [v, b.Constant(stem + "/eps", [], (float)ln.Eps)])]);
        var shape = Enumerable.Range(0, x.Rank).Select(i => i == axis ? (long)x[i] : 1L).ToArray();
        var w = b.Constant(stem + "/weight", shape, Floats(b.Values(node.Inputs[1])));
        var bias = b.Constant(stem + "/bias", shape, Floats(b.Values(node.Inputs[2])));
        b.NodeTo("Add", y, [b.Node("Mul", stem, [b.Node("Div", stem, [d, sd]), w]), bias]);
    }

    // G = ‖x‖₂ over H, W; N = G / (mean over C of G + eps); y = (γ·N + 1)·x + β (NHWC)
    private static void Grn(OnnxGraphBuilder b, Grn g, Node node, string y, string stem)
    {
        string x = node.Inputs[0];
        var gl2 = b.Reduce("ReduceL2", stem, x, [1, 2], true);
        var mean = b.Reduce("ReduceMean", stem, gl2, [3], true);
        var n = b.Node("Div", stem, [gl2, b.Node("Add", stem, [mean, b.Constant(stem + "/eps", [], (float)g.Eps)])]);
        var f = b.Node("Add", stem, [b.Node("Mul", stem, [n, b.Param(node.Inputs[1])]),
            b.Constant(stem + "/one", [], 1f)]);
        if (node.Inputs.Count < 3)
        {
            b.NodeTo("Mul", y, [f, x]);
            return;
        }
        b.NodeTo("Add", y, [b.Node("Mul", stem, [f, x]), b.Param(node.Inputs[2])]);
    }
}
