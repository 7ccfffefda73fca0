using Google.Protobuf;
using Onnx;

namespace ShiftWise.Bench.Onnx;

/// <summary>
/// Builds a tiny ONNX model (IR version 8, default-domain opset 17) of float tensors: graph inputs/outputs with
/// static shapes, float initializers (raw_data) and Conv/Add nodes. The protobuf classes are OnnxSharp's (onnx.proto
/// compiled with Google.Protobuf), the same path as swc export-onnx (src/Runtime/Export).
/// </summary>
internal sealed class OnnxModel
{
    private readonly GraphProto _graph = new();
    private int _nodeCount;

    /// <summary>The opset version written to opset_import.</summary>
    public int Opset { get; init; } = 17;

    /// <summary>The graph name.</summary>
    public string Name { get; init; } = "graph";

    /// <summary>Declares a float graph input.</summary>
    public OnnxModel Input(string name, params long[] dims)
    {
        _graph.Input.Add(Value(name, dims));
        return this;
    }

    /// <summary>Declares a float graph output.</summary>
    public OnnxModel Output(string name, params long[] dims)
    {
        _graph.Output.Add(Value(name, dims));
        return this;
    }

    /// <summary>Adds a float initializer; <paramref name="data"/> is row-major and must match the dims.</summary>
    public OnnxModel Initializer(string name, long[] dims, float[] data)
    {
        long count = dims.Aggregate(1L, (a, d) => a * d);
        if (count != data.Length) throw new ArgumentException($"initializer {name}: {data.Length} values for {count}");
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("raw_data is little-endian");
        var bytes = new byte[data.Length * sizeof(float)];
        Buffer.BlockCopy(data, 0, bytes, 0, bytes.Length);
        var t = new TensorProto
        {
            Name = name, DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(bytes),
        };
        t.Dims.AddRange(dims);
        _graph.Initializer.Add(t);
        return this;
    }

    /// <summary>A depthwise-or-grouped 2-D Conv; pads are [top, left, bottom, right] as ONNX orders them.</summary>
    public OnnxModel Conv(string x, string w, string? b, string y, long[] kernel, long[] pads, long group)
    {
        string[] inputs = b is null ? [x, w] : [x, w, b];
        return Node("Conv", inputs, y, Ints("kernel_shape", kernel), Ints("pads", pads), Ints("strides", [1, 1]),
            Ints("dilations", [1, 1]),
            new AttributeProto { Name = "group", Type = AttributeProto.Types.AttributeType.Int, I = group });
    }

    /// <summary>An elementwise Add.</summary>
    public OnnxModel Add(string a, string b, string y) => Node("Add", [a, b], y);

    private static AttributeProto Ints(string name, long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    private OnnxModel Node(string op, string[] inputs, string output, params AttributeProto[] attrs)
    {
        var n = new NodeProto { OpType = op, Name = $"{op}_{_nodeCount++}" };
        n.Input.AddRange(inputs);
        n.Output.Add(output);
        n.Attribute.AddRange(attrs);
        _graph.Node.Add(n);
        return this;
    }

    private static ValueInfoProto Value(string name, long[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (long d in dims) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto
            {
                TensorType = new TypeProto.Types.Tensor
                {
                    ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape,
                },
            },
        };
    }

    /// <summary>The serialized ModelProto.</summary>
    public byte[] ToBytes()
    {
        _graph.Name = Name;
        var model = new ModelProto { IrVersion = 8, ProducerName = "ShiftWise.Bench", Graph = _graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        return model.ToByteArray();
    }
}
