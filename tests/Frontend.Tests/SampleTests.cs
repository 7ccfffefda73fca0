using ShiftWise.IR;
using ShiftWise.IR.Reference;

namespace ShiftWise.Frontend.Tests;

/// <summary>The committed sample model loads with its weights and runs on the reference executor.</summary>
public sealed class SampleTests
{
    private static string Sample()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d is not null && !File.Exists(Path.Combine(d.FullName, "ShiftWise.Compiler.sln"))) d = d.Parent;
        return Path.Combine(d!.FullName, "samples", "sw_layer.swir");
    }

    [Fact]
    public void SwLayerSampleRunsAndPassesTheGhostChannelThrough()
    {
        var g = ModelLoader.LoadGraph(Sample());
        var w = ModelLoader.LoadWeights(g, Sample());
        var rng = new Random(1);
        var x = Tensor.FromDoubles(TensorType.Of(DType.F32, 1, 3, 9, 9),
            Enumerable.Range(0, 243).Select(_ => rng.NextDouble() - 0.5).ToArray());
        var y = ReferenceExecutor.Run(g, w, new Dictionary<string, Tensor> { ["x"] = x })["y"];
        Assert.Equal(new Shape(1, 3, 9, 9), y.Shape);
        var xs = (float[])x.Data;
        var ys = (float[])y.Data;
        // output channel 2 is ghost channel 0, untouched (SPEC 1.7)
        Assert.Equal(xs.AsSpan(0, 81).ToArray(), ys.AsSpan(2 * 81, 81).ToArray());
        Assert.All(ys, v => Assert.True(float.IsFinite(v)));
        // rep outputs are not just the residual: the shifted paths contribute
        Assert.NotEqual(xs.AsSpan(81, 81).ToArray(), ys.AsSpan(0, 81).ToArray());
    }

    [Fact]
    public void MismatchedWeightsAreReportedTogether()
    {
        var g = ModelLoader.LoadGraph(Sample());
        var w = new Dictionary<string, Tensor>(ModelLoader.LoadWeights(g, Sample()));
        w.Remove("bn_small.bias");
        w["LoRAs.0.weight"] = Tensor.Zeros(TensorType.Of(DType.F32, 6, 1, 5, 5));
        w["extra.thing"] = Tensor.Zeros(TensorType.Of(DType.F32, 1));
        var e = Assert.Throws<IrException>(() => ModelLoader.CheckWeights(g, w, "w.safetensors"));
        Assert.Contains("w.safetensors", e.Message);
        Assert.Contains("missing 'bn_small.bias'", e.Message);
        Assert.Contains("'LoRAs.0.weight' has shape [6,1,5,5], expected [6,1,3,3]", e.Message);
        Assert.Contains("unexpected 'extra.thing'", e.Message);
    }
}
