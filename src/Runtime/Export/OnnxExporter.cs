using Google.Protobuf;
using Onnx;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;

namespace ShiftWise.Runtime.Export;

/// <summary>What <see cref="OnnxExporter"/> writes.</summary>
/// <param name="Opset">
/// The default-domain opset, 17 to 21 (17 is the first with LayerNormalization; from 18 reductions take their axes as
/// inputs).
/// </param>
/// <param name="DynamicBatch">
/// The first dimension of every graph input and output named "batch" instead of fixed.
/// </param>
public sealed record OnnxExportOptions(int Opset = 17, bool DynamicBatch = false)
{
    /// <summary>The opsets the exporter writes.</summary>
    public static IReadOnlyList<int> Opsets { get; } = [17, 18, 19, 20, 21];
}

/// <summary>
/// Writes a swc graph as an ONNX model (issue 23): the graph of the "export" pipeline (re-parameterised, batch norms
/// folded, parallel paths merged, every SW layer collapsed into its cross), in standard ops only, weights as float
/// initializers. The protobuf classes come from the OnnxSharp package (onnx.proto compiled with Google.Protobuf).
/// </summary>
public static class OnnxExporter
{
    /// <summary>The ONNX IR version written (8: the version of opsets 17 and 18).</summary>
    public const long IrVersion = 8;

    /// <summary>The model of <paramref name="g"/> with <paramref name="weights"/>.</summary>
    public static ModelProto Export(Graph g, IReadOnlyDictionary<string, Tensor> weights, OnnxExportOptions options,
        string producerVersion)
    {
        if (!OnnxExportOptions.Opsets.Contains(options.Opset))
        {
            throw new IrException($"ONNX opset {options.Opset} is not supported; use one of "
                + string.Join(", ", OnnxExportOptions.Opsets));
        }
        var types = g.ValueTypes();
        foreach (var d in g.Inputs.Concat(g.Params))
        {
            if (d.Type.DType != DType.F32)
            {
                throw new IrException($"ONNX export: {d.Name} is {d.Type.DType.Name()}; the export writes float32");
            }
        }
        var b = new OnnxGraphBuilder(g.Name, weights, options.Opset);
        string? batch = options.DynamicBatch ? "batch" : null;
        foreach (var d in g.Inputs)
        {
            b.Name(d.Name);
            b.Graph.Input.Add(OnnxGraphBuilder.Value(d.Name, d.Type.Shape, batch));
        }
        foreach (var n in g.Nodes)
        {
            if (n.Outputs.Count != 1)
            {
                throw new IrException($"ONNX export: {n.Describe()} has {n.Outputs.Count} outputs (training form?)");
            }
            OnnxOps.Emit(b, n, types);
        }
        foreach (var o in g.Outputs) b.Graph.Output.Add(OnnxGraphBuilder.Value(o, types[o].Shape, batch));
        var model = new ModelProto
        {
            IrVersion = IrVersion, ProducerName = "swc", ProducerVersion = producerVersion, Graph = b.Graph,
            DocString = "ShiftWise network exported by swc (ShiftWise.Compiler): SW layers as band convolutions",
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = options.Opset });
        return model;
    }

    /// <summary>Writes <paramref name="model"/> to <paramref name="path"/> all at once (never half-written).</summary>
    public static void Write(ModelProto model, string path) => AtomicFile.WriteBytes(path, model.ToByteArray());
}
