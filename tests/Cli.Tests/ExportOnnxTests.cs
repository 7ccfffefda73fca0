using static ShiftWise.Cli.Tests.SwcRun;

namespace ShiftWise.Cli.Tests;

/// <summary>swc export-onnx from the command line: the file and its summary, the options it refuses.</summary>
public sealed class ExportOnnxTests
{
    [Fact]
    public void ExportWritesTheFileAndSaysWhatItHolds()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("swc-onnx-").FullName, "sub", "small.onnx");
        var (code, o, e) = Swc(["export-onnx", .. SmallSwV2, "--out", path, "--dynamic-batch", "--seed", "3"]);
        Assert.True(code == 0, e);
        Assert.Contains($"to {path}: ", o);
        Assert.Contains("opset 17, dynamic batch", o);
        var bytes = File.ReadAllBytes(path);
        var model = Onnx.ModelProto.Parser.ParseFrom(bytes);
        Assert.Equal("batch", model.Graph.Input[0].Type.TensorType.Shape.Dim[0].DimParam);
        // every SW layer as its two band convolutions (outputs named LAYER/h/N and LAYER/v/N)
        Assert.Contains(model.Graph.Node, n => n.OpType == "Conv" && n.Output[0].Contains("/h/", StringComparison.Ordinal));
        Assert.Contains(model.Graph.Node, n => n.OpType == "Conv" && n.Output[0].Contains("/v/", StringComparison.Ordinal));
        Assert.DoesNotContain(model.Graph.Node, n => n.Domain.Length > 0);
        // written all at once: no temporary file left beside it
        Assert.Equal([path], Directory.GetFiles(Path.GetDirectoryName(path)!));
    }

    [Fact]
    public void AnUnsupportedOpsetIsRefusedInOneSentenceAndNothingIsWritten()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("swc-onnx-").FullName, "x.onnx");
        var (code, _, e) = Swc(["export-onnx", .. SmallSwV2, "--out", path, "--opset", "11"]);
        Assert.NotEqual(0, code);
        Assert.Contains("--opset: 11 is not supported", e);
        Assert.False(File.Exists(path));
    }
}
