using Google.Protobuf;
using Onnx;
using ShiftWise.IR;

namespace ShiftWise.Runtime.Export;

/// <summary>
/// Builds one ONNX graph (the protobuf classes of the OnnxSharp package, compiled from onnx.proto with
/// Google.Protobuf): nodes with their attributes, float and int64 initializers, fresh value names. Parameters of the
/// swc graph become initializers on first use, so parameters that an op replaces (an SW layer's sub-kernels, which the
/// export collapses into bands) are not written.
/// </summary>
internal sealed class OnnxGraphBuilder
{
    private readonly IReadOnlyDictionary<string, Tensor> _weights;
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly HashSet<string> _written = new(StringComparer.Ordinal);
    private int _fresh;

    /// <summary>A builder over <paramref name="weights"/> (the graph's parameters) for an opset.</summary>
    public OnnxGraphBuilder(string name, IReadOnlyDictionary<string, Tensor> weights, int opset)
    {
        Graph = new GraphProto { Name = name };
        _weights = weights;
        Opset = opset;
    }

    /// <summary>The graph being built.</summary>
    public GraphProto Graph { get; }

    /// <summary>The default domain's opset the nodes are written for.</summary>
    public int Opset { get; }

    /// <summary>A value name not used yet, derived from <paramref name="stem"/>.</summary>
    public string Fresh(string stem)
    {
        string name;
        do name = $"{stem}/{_fresh++}";
        while (!_names.Add(name));
        return name;
    }

    /// <summary>Reserves a name the swc graph gives (an input, a node's output).</summary>
    public string Name(string name)
    {
        _names.Add(name);
        return name;
    }

    /// <summary>Adds a node of <paramref name="op"/> with one fresh output; returns that output's name.</summary>
    public string Node(string op, string stem, IEnumerable<string> inputs, params AttributeProto[] attrs) =>
        NodeTo(op, Fresh(stem), inputs, attrs);

    /// <summary>Adds a node of <paramref name="op"/> writing <paramref name="output"/>.</summary>
    public string NodeTo(string op, string output, IEnumerable<string> inputs, params AttributeProto[] attrs)
    {
        var n = new NodeProto { OpType = op, Name = output + "/" + op };
        n.Input.AddRange(inputs);
        n.Output.Add(output);
        n.Attribute.AddRange(attrs);
        Graph.Node.Add(n);
        return output;
    }

    /// <summary>The parameter <paramref name="name"/> as an initializer (written once, on first use).</summary>
    public string Param(string name)
    {
        if (_written.Contains(name)) return name;
        var t = _weights.TryGetValue(name, out var w)
            ? w
            : throw new IrException($"ONNX export: parameter @{name} has no weights");
        var data = t.ToDoubles().Select(v => (float)v).ToArray();
        return Floats(Name(name), t.Shape.ToArray().Select(d => (long)d).ToArray(), data);
    }

    /// <summary>The float parameter values of <paramref name="name"/>, in double.</summary>
    public double[] Values(string name) => _weights.TryGetValue(name, out var t)
        ? t.ToDoubles()
        : throw new IrException($"ONNX export: parameter @{name} has no weights");

    /// <summary>A float initializer of <paramref name="dims"/>; returns its name.</summary>
    public string Floats(string name, long[] dims, float[] data)
    {
        if (dims.Aggregate(1L, (a, d) => a * d) != data.Length)
        {
            throw new IrException($"ONNX export: initializer {name} has {data.Length} values for dims "
                + $"[{string.Join(",", dims)}]");
        }
        var bytes = new byte[data.Length * sizeof(float)];
        Buffer.BlockCopy(data, 0, bytes, 0, bytes.Length);
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("ONNX raw_data is little-endian");
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float, RawData =
            ByteString.CopyFrom(bytes) };
        t.Dims.AddRange(dims);
        Graph.Initializer.Add(t);
        _written.Add(name);
        return name;
    }

    /// <summary>A fresh float constant (initializer) of <paramref name="dims"/>.</summary>
    public string Constant(string stem, long[] dims, params float[] data) => Floats(Fresh(stem), dims, data);

    /// <summary>A fresh int64 constant (initializer): indices, shapes, axes.</summary>
    public string Int64s(string stem, params long[] data)
    {
        var t = new TensorProto { Name = Fresh(stem), DataType = (int)TensorProto.Types.DataType.Int64 };
        t.Dims.Add(data.Length);
        t.Int64Data.AddRange(data);
        Graph.Initializer.Add(t);
        return t.Name;
    }

    /// <summary>
    /// A reduction over <paramref name="axes"/> (into <paramref name="output"/>, or a fresh name): axes as an attribute
    /// up to opset 17, as an input from 18 on.
    /// </summary>
    public string Reduce(string op, string stem, string x, long[] axes, bool keepDims, string? output = null)
    {
        var keep = Attr.Int("keepdims", keepDims ? 1 : 0);
        output ??= Fresh(stem);
        return Opset >= 18
            ? NodeTo(op, output, [x, Int64s(stem + "/axes", axes)], keep)
            : NodeTo(op, output, [x], Attr.Ints("axes", axes), keep);
    }

    /// <summary>Whether <paramref name="name"/> is a parameter of the swc graph.</summary>
    public bool IsParam(string name) => _weights.ContainsKey(name);

    /// <summary>A float graph input or output: its type, with the first dimension symbolic when asked.</summary>
    public static ValueInfoProto Value(string name, Shape shape, string? batchSymbol)
    {
        var tensor = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float,
            Shape = new TensorShapeProto() };
        for (int i = 0; i < shape.Rank; i++)
        {
            tensor.Shape.Dim.Add(i == 0 && batchSymbol is not null
                ? new TensorShapeProto.Types.Dimension { DimParam = batchSymbol }
                : new TensorShapeProto.Types.Dimension { DimValue = shape[i] });
        }
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensor } };
    }
}

/// <summary>ONNX attribute values.</summary>
internal static class Attr
{
    /// <summary>An INT attribute.</summary>
    public static AttributeProto Int(string name, long v) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = v };

    /// <summary>A FLOAT attribute.</summary>
    public static AttributeProto Float(string name, double v) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = (float)v };

    /// <summary>An INTS attribute.</summary>
    public static AttributeProto Ints(string name, IEnumerable<long> v)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(v);
        return a;
    }

    /// <summary>An INTS attribute from ints.</summary>
    public static AttributeProto Ints(string name, IEnumerable<int> v) => Ints(name, v.Select(i => (long)i));
}
