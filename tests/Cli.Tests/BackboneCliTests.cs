using ShiftWise.Frontend.IO;
using ShiftWise.IR;
using static ShiftWise.Cli.Tests.SwcRun;

namespace ShiftWise.Cli.Tests;

/// <summary>swc run in backbone mode (--features) and at H ≠ W: the outputs in an .npz or a folder, bad values refused.</summary>
public sealed class BackboneCliTests
{
    // the small sw-v2 without its --image-size 24 (each test gives its own)
    private static readonly string[] Small = [.. SmallSwV2.Take(Array.IndexOf(SmallSwV2, "--image-size")),
        .. SmallSwV2.Skip(Array.IndexOf(SmallSwV2, "--image-size") + 2)];

    [Fact]
    public void RunWritesEveryFeatureToAnNpzOrAFolder()
    {
        var dir = Directory.CreateTempSubdirectory("swc-bb-").FullName;
        var npz = Path.Combine(dir, "f.npz");
        var (code, o, e) = Swc(["run", .. Small, "--features", "1,3", "--image-size", "24x40", "--device", "cpu",
            "--output", npz]);
        Assert.True(code == 0, e);
        Assert.Contains("2 outputs f32[1,16,3,5], f32[1,32,1,2]", o);
        var all = Npz.Read(npz);
        Assert.Equal(["norm1", "norm3"], all.Keys.Order());
        Assert.Equal(new Shape(1, 16, 3, 5), all["norm1"].Shape);
        var folder = Path.Combine(dir, "features");
        (code, o, e) = Swc(["run", .. Small, "--features", "1,3", "--image-size", "24x40", "--device", "cpu",
            "--output", folder]);
        Assert.True(code == 0, e);
        Assert.Equal(all["norm3"].ToDoubles(), Npy.Read(Path.Combine(folder, "norm3.npy")).ToDoubles());
    }

    [Theory]
    [InlineData("--image-size", "24y40", "option --image-size: '24y40' is not N or HxW")]
    [InlineData("--features", "1,4", "option --features: [1,4] must be distinct stage indices 0 to 3")]
    [InlineData("--features", "3,1", "option --features: [3,1] must be distinct stage indices 0 to 3")]
    public void BadValuesAreRefusedNamingTheOption(string option, string value, string message)
    {
        var (code, _, e) = Swc(["run", .. Small, option, value, "--device", "cpu"]);
        Assert.NotEqual(0, code);
        Assert.Contains(message, e);
    }

    [Fact]
    public void AClassifiersCheckpointRunsAsABackboneWithItsMissingNormsStartedAndAWarning()
    {
        var dir = Directory.CreateTempSubdirectory("swc-bb-").FullName;
        var ckpt = Path.Combine(dir, "classifier.safetensors");
        var classifier = Frontend.ModelSource.Load("sw-v2", Args(null), withWeights: true);
        Frontend.IO.SafeTensors.Write(ckpt, classifier.Weights);
        var npz = Path.Combine(dir, "f.npz");
        var (code, _, e) = Swc(["run", .. Small, "--features", "0,3", "--image-size", "24x40", "--weights", ckpt,
            "--device", "cpu", "--output", npz]);
        Assert.True(code == 0, e);
        Assert.Contains($"warning: {ckpt} has no norm0.weight, norm0.bias, norm3.weight, norm3.bias (a classifier's "
            + "checkpoint): these backbone norms start as new LayerNorms do (weight 1, bias 0)", e);
        // the backbone's features: the classifier's stage weights, the new norms at weight 1 and bias 0
        var bb = Frontend.ModelSource.Load("sw-v2", Args([0, 3]), withWeights: false);
        var w = classifier.Weights.Where(kv => bb.Graph.Params.Any(p => p.Name == kv.Key))
            .ToDictionary(kv => kv.Key, kv => kv.Value);
        foreach (var p in bb.Graph.Params.Where(p => p.Name.StartsWith("norm", StringComparison.Ordinal)))
        {
            w[p.Name] = Tensor.FromDoubles(p.Type, Enumerable.Repeat(p.Name.EndsWith("weight",
                StringComparison.Ordinal) ? 1.0 : 0.0, (int)p.Type.Shape.Elements).ToArray());
        }
        var x = Frontend.ModelSource.RandomInput(bb.Graph.Inputs[0].Type, 0);
        var want = IR.Reference.ReferenceExecutor.Run(bb.Graph, w, new Dictionary<string, Tensor> { ["x"] = x });
        var got = Npz.Read(npz);
        foreach (var name in bb.Graph.Outputs)
        {
            double err = IR.Analysis.Error.RelL2(got[name].ToDoubles(), want[name].ToDoubles());
            Assert.True(err <= 1e-5, $"{name}: relative L2 {err:E2} against the float64 reference");
        }
        // anything else that does not match is still refused: a checkpoint of other dims
        var other = Frontend.ModelSource.Load("sw-v2", Args(null) with { Dims = [8, 16, 16, 24] }, withWeights: true);
        Frontend.IO.SafeTensors.Write(ckpt, other.Weights);
        (code, _, e) = Swc(["run", .. Small, "--features", "0,3", "--image-size", "24x40", "--weights", ckpt]);
        Assert.NotEqual(0, code);
        Assert.Contains("weights do not match graph", e);
    }

    // the small sw-v2 of SmallSwV2 at 24 x 40, a classifier (null) or a backbone
    private static Frontend.ModelArgs Args(int[]? features) => new()
    {
        Depths = [1, 1, 1, 1], Dims = [8, 16, 16, 32], KernelSize = [7, 5, 5, 3, 3], NumClasses = 5, ImageSize = 24,
        ImageWidth = 40, Features = features,
    };
}
