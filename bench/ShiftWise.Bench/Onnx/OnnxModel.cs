using System.Runtime.InteropServices;

namespace ShiftWise.Bench.Onnx;

/// <summary>
/// Builds a tiny ONNX model (IR version 8, default-domain opset 17) of float tensors: graph inputs/outputs with
/// static shapes, float initializers (raw_data) and Conv/Add nodes. Field numbers follow onnx/onnx.proto.
/// </summary>
internal sealed class OnnxModel
{
    private const int FloatType = 1; // TensorProto.DataType.FLOAT
    private const int AttrInt = 2, AttrInts = 7; // AttributeProto.AttributeType

    private readonly List<(string Name, long[] Dims)> _inputs = [], _outputs = [];
    private readonly List<(string Name, long[] Dims, float[] Data)> _inits = [];
    private readonly List<Action<ProtoWriter>> _nodes = [];
    private int _nodeCount;

    /// <summary>The opset version written to opset_import.</summary>
    public int Opset { get; init; } = 17;

    /// <summary>The graph name.</summary>
    public string Name { get; init; } = "graph";

    /// <summary>Declares a float graph input.</summary>
    public OnnxModel Input(string name, params long[] dims)
    {
        _inputs.Add((name, dims));
        return this;
    }

    /// <summary>Declares a float graph output.</summary>
    public OnnxModel Output(string name, params long[] dims)
    {
        _outputs.Add((name, dims));
        return this;
    }

    /// <summary>Adds a float initializer; <paramref name="data"/> is row-major and must match the dims.</summary>
    public OnnxModel Initializer(string name, long[] dims, float[] data)
    {
        long count = dims.Aggregate(1L, (a, d) => a * d);
        if (count != data.Length) throw new ArgumentException($"initializer {name}: {data.Length} values for {count}");
        _inits.Add((name, dims, data));
        return this;
    }

    /// <summary>A depthwise-or-grouped 2-D Conv; pads are [top, left, bottom, right] as ONNX orders them.</summary>
    public OnnxModel Conv(string x, string w, string? b, string y, long[] kernel, long[] pads, long group)
    {
        string[] inputs = b is null ? [x, w] : [x, w, b];
        return Node("Conv", inputs, y, n =>
        {
            IntsAttr(n, "kernel_shape", kernel);
            IntsAttr(n, "pads", pads);
            IntsAttr(n, "strides", [1, 1]);
            IntsAttr(n, "dilations", [1, 1]);
            n.Message(5, a => a.String(1, "group").Int(3, group).Int(20, AttrInt));
        });
    }

    /// <summary>An elementwise Add.</summary>
    public OnnxModel Add(string a, string b, string y) => Node("Add", [a, b], y, _ => { });

    private static void IntsAttr(ProtoWriter node, string name, long[] values) =>
        node.Message(5, a => a.String(1, name).Ints(8, values).Int(20, AttrInts));

    private OnnxModel Node(string op, string[] inputs, string output, Action<ProtoWriter> attrs)
    {
        string name = $"{op}_{_nodeCount++}";
        _nodes.Add(n =>
        {
            foreach (string i in inputs) n.String(1, i);
            n.String(2, output).String(3, name).String(4, op);
            attrs(n);
        });
        return this;
    }

    private static void ValueInfo(ProtoWriter v, string name, long[] dims) =>
        v.String(1, name).Message(2, type => type.Message(1, tensor =>
            tensor.Int(1, FloatType).Message(2, shape =>
            {
                foreach (long d in dims) shape.Message(1, dim => dim.Int(1, d));
            })));

    /// <summary>The serialized ModelProto.</summary>
    public byte[] ToBytes()
    {
        var model = new ProtoWriter();
        model.Int(1, 8) // ir_version
            .String(2, "ShiftWise.Bench") // producer_name
            .Message(7, g =>
            {
                foreach (var node in _nodes) g.Message(1, node);
                g.String(2, Name);
                foreach (var (name, dims, data) in _inits)
                {
                    g.Message(5, t => t.Ints(1, dims).Int(2, FloatType).String(8, name)
                        .Bytes(9, MemoryMarshal.AsBytes(data.AsSpan())));
                }
                foreach (var (name, dims) in _inputs) g.Message(11, v => ValueInfo(v, name, dims));
                foreach (var (name, dims) in _outputs) g.Message(12, v => ValueInfo(v, name, dims));
            })
            .Message(8, op => op.String(1, "").Int(2, Opset));
        return model.ToArray();
    }
}
