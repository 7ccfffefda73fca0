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
}
