using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.IR.Reference;
using ShiftWise.IR.Text;

namespace ShiftWise.Cli.Tests;

public sealed class CompileTests
{
    private static readonly string[] Small =
        ["--depths", "1,1,1,1", "--dims", "8,16,16,32", "--kernel-size", "7,5,5,3,3", "--image-size", "24", "--num-classes", "5"];

    private static (int Code, string Out, string Err) Swc(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        return (SwcApp.Run(args, o, e), o.ToString(), e.ToString());
    }

    [Fact]
    public void CompileWritesAGraphThatRunsLikeTheOriginalAndAReport()
    {
        var dir = Directory.CreateTempSubdirectory("swc-compile-").FullName;
        var (code, o, e) = Swc(["compile", "sw-v2", .. Small, "--out", dir, "--print-ir-after-all", "--seed", "2"]);
        Assert.True(code == 0, e);
        Assert.Contains("fuse-shiftwise", e);
        var g = ModelLoader.LoadGraph(Path.Combine(dir, "model.swir"));
        var w = ModelLoader.LoadWeights(g, Path.Combine(dir, "model.swir"));
        Assert.Equal(4, g.Nodes.Count(n => n.Op is IR.Ops.FusedShiftWise));
        // the compiled graph computes what the unoptimised one does (float32 graphs: bound 1e-5)
        var src = ModelSource.Load("sw-v2", Args() with { Seed = 2 }, withWeights: true);
        var x = new Dictionary<string, Tensor> { ["x"] = Frontend.ModelSource.RandomInput(src.Graph.Inputs[0].Type, 5) };
        var a = ReferenceExecutor.Run(src.Graph, src.Weights, x)[src.Graph.Outputs[0]].ToDoubles();
        var b = ReferenceExecutor.Run(g, w, x)[g.Outputs[0]].ToDoubles();
        double num = a.Zip(b, (p, q) => (p - q) * (p - q)).Sum(), den = a.Sum(p => p * p);
        Assert.True(Math.Sqrt(num / den) < 1e-5);
        var report = File.ReadAllText(Path.Combine(dir, "report.md"));
        Assert.Contains("| fused_shiftwise | 0 | 4 |", report);
        Assert.Contains("| batch_norm | 20 | 0 |", report);
        Assert.Contains("## Activation memory", report);
        Assert.Contains("bytes moved", report);
        var dumps = Directory.GetFiles(Path.Combine(dir, "ir")).Order().ToArray();
        Assert.Equal(9, dumps.Length); // one per pass of the inference pipeline
        foreach (var d in dumps) SwirParser.ParseFile(d);
        Assert.DoesNotContain(Directory.GetFiles(dir), f => f.Contains(".tmp", StringComparison.Ordinal));
    }

    private static ModelArgs Args() => new()
    {
        Depths = [1, 1, 1, 1], Dims = [8, 16, 16, 32], KernelSize = [7, 5, 5, 3, 3], ImageSize = 24, NumClasses = 5,
    };

    [Fact]
    public void DisablingAPassShowsInTheReport()
    {
        var dir = Directory.CreateTempSubdirectory("swc-compile-").FullName;
        var (code, _, e) = Swc(["compile", "sw-v2", .. Small, "--out", dir, "--disable-pass", "collapse-shiftwise"]);
        Assert.True(code == 0, e);
        var report = File.ReadAllText(Path.Combine(dir, "report.md"));
        Assert.Contains("| collapse-shiftwise | disabled |", report);
        Assert.DoesNotContain("fused_shiftwise", report);
        Assert.Contains("| shift_add | 4 | 4 |", report);
    }

    [Fact]
    public void UnknownPassAndPipelineAreNamed()
    {
        var dir = Directory.CreateTempSubdirectory("swc-compile-").FullName;
        var (code, _, e) = Swc(["compile", "sw-v2", .. Small, "--out", dir, "--disable-pass", "nope"]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("unknown pass 'nope'", e);
        (code, _, e) = Swc(["compile", "sw-v2", .. Small, "--out", dir, "--pipeline", "fast"]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("unknown pipeline 'fast'", e);
        Assert.Empty(Directory.GetFiles(dir));
    }
}
