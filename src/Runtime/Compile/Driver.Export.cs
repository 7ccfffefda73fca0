using System.Diagnostics;
using ShiftWise.Frontend;
using ShiftWise.Runtime.Export;

namespace ShiftWise.Runtime.Compile;

/// <summary>What <see cref="Driver.ExportOnnx"/> wrote.</summary>
/// <param name="Path">The .onnx file.</param>
/// <param name="Nodes">ONNX nodes.</param>
/// <param name="Initializers">ONNX initializers (weights and constants).</param>
/// <param name="Bytes">File size.</param>
/// <param name="Time">Pipeline and export.</param>
public sealed record OnnxExportResult(string Path, int Nodes, int Initializers, long Bytes, TimeSpan Time);

public static partial class Driver
{
    /// <summary>
    /// Exports <paramref name="m"/> to <paramref name="path"/> as ONNX (issue 23): the "export" pipeline (the
    /// re-parameterised inference graph before epilogue fusion), then <see cref="OnnxExporter"/>; the file is written
    /// all at once, so a failure leaves nothing behind.
    /// </summary>
    public static OnnxExportResult ExportOnnx(LoadedModel m, string path, OnnxExportOptions options, string version)
    {
        var sw = Stopwatch.StartNew();
        var opt = Optimize(m.Graph, m.Weights, "export");
        var model = OnnxExporter.Export(opt.Graph, opt.Weights, options, version);
        var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        OnnxExporter.Write(model, path);
        return new OnnxExportResult(path, model.Graph.Node.Count, model.Graph.Initializer.Count,
            new FileInfo(path).Length, sw.Elapsed);
    }
}
