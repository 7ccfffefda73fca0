using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Ops;

namespace ShiftWise.Frontend.Tests;

public sealed class ZooTests
{
    [Fact]
    public void SwTinyHasTheOriginalsParameterCount()
    {
        var m = ShiftWiseV2.Build(ShiftWiseV2Options.Preset("sw-tiny")!);
        Assert.Equal(31_790_260, m.TrainableCount); // SPEC 3.1, counted by instantiating the real module
        long lora1 = m.Graph.Params.Where(p => p.Name.EndsWith(".LoRAs.1.weight", StringComparison.Ordinal))
            .Sum(p => p.Type.Shape.Elements);
        Assert.Equal(31_002_670, m.TrainableCount - lora1); // after merge_branches
        Assert.Equal(27, m.Graph.Nodes.Count(n => n.Op is ShiftAdd));
        Assert.Equal(72_300, Cost.TotalBuffers(m.Graph)); // BN running statistics, SPEC 3.1
    }

    [Fact]
    public void SwTinyShapesAndArithmeticMatchSpec31()
    {
        var g = ShiftWiseV2.Build(ShiftWiseV2Options.Preset("sw-tiny")!).Graph;
        var costs = Cost.Of(g);
        // per-layer shift-add accumulations (SPEC 3.1): 20.97 M / 7.93 M / 2.26 M / 0.68 M
        var adds = costs.Where(c => c.Node.Op is ShiftAdd).Select(c => c.Adds / 1e6).ToArray();
        Assert.Equal(20.97, adds[0], 2);
        Assert.Equal(7.93, adds[3], 2);
        Assert.Equal(2.26, adds[6], 2);
        Assert.Equal(0.68, adds[^1], 2);
        Assert.Equal(129.4, adds.Sum(), 1);
        // pwconv1 + pwconv2 = 4,335.2 M MACs; the SW small convs 311.7 M per path
        double pw = costs.Where(c => c.Node.Op is Linear && c.Node.Name.StartsWith("stages", StringComparison.Ordinal))
            .Sum(c => c.Macs) / 1e6;
        Assert.Equal(4335.2, pw, 1);
        double sw = costs.Where(c => c.Node.Name.EndsWith("LoRAs.0", StringComparison.Ordinal)).Sum(c => c.Macs) / 1e6;
        Assert.Equal(311.7, sw, 1);
        Assert.Equal(new Shape(1, 1000), g.ValueTypes()[g.Outputs[0]].Shape);
    }

    [Theory]
    [InlineData("sw-small", 3, 3, 27, 3, 96)]
    [InlineData("sw-base", 3, 3, 27, 3, 128)]
    [InlineData("sw-large", 3, 3, 27, 3, 192)]
    public void PresetsFollowTheOriginal(string preset, int d0, int d1, int d2, int d3, int dim0)
    {
        var o = ShiftWiseV2Options.Preset(preset)!;
        Assert.Equal([d0, d1, d2, d3], o.Depths);
        Assert.Equal(dim0, o.StageDims[0]);
        Assert.Equal([51, 49, 47, 13, 3], o.KernelSize);
    }

    [Theory]
    [InlineData("--kernel-size", "must be odd")]
    [InlineData("--ghost-ratio", "must be in [0, 1)")]
    [InlineData("--dims", "must be >= 2")]
    [InlineData("--n-rep", "must be >= 1")]
    public void BadOptionsNameTheOption(string option, string phrase)
    {
        var o = option switch
        {
            "--kernel-size" => new ShiftWiseV2Options { KernelSize = [13, 11, 7, 5, 4] },
            "--ghost-ratio" => new ShiftWiseV2Options { GhostRatio = 1.0 },
            "--dims" => new ShiftWiseV2Options { Dims = [0, 8, 8, 8] },
            _ => new ShiftWiseV2Options { NRep = 0 },
        };
        var e = Assert.Throws<OptionException>(() => ShiftWiseV2.Build(o));
        Assert.StartsWith($"option {option}:", e.Message);
        Assert.Contains(phrase, e.Message);
    }
}
