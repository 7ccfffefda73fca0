using ShiftWise.Frontend.IO;

namespace ShiftWise.Cli.Tests;

/// <summary>
/// swc run with PyTorch checkpoints made by tools/fixtures/gen_cli_checkpoints.py (torch.save of the pure-PyTorch model):
/// the official layout, a merged checkpoint, and the failures a user meets.
/// </summary>
public sealed class CheckpointTests
{
    private static readonly string[] Opts =
        ["--in-chans", "1", "--depths", "1,1,1,1", "--dims", "8,16,16,32", "--kernel-size", "7,5,5,3,3", "--image-size", "24"];

    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    private static (int Code, string Out, string Err) Swc(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        return (SwcApp.Run(args, o, e), o.ToString(), e.ToString());
    }

    private static double[] Logits(string weights)
    {
        var y = Path.Combine(Directory.CreateTempSubdirectory("swc-ck-").FullName, "y.npy");
        var (code, _, e) = Swc(["run", "sw-v2", .. Opts, "--weights", weights, "--output", y]);
        Assert.True(code == 0, e);
        return Npy.Read(y).ToDoubles();
    }

    [Fact]
    public void OfficialLayoutRunsAndTakesTheClassCountFromTheHead()
    {
        var (code, o, e) = Swc(["run", "sw-v2", .. Opts, "--weights", Fixture("good.pth")]);
        Assert.True(code == 0, e);
        Assert.Contains("output f32[1,4]", o);
        Assert.Contains("top-4", o);
    }

    [Fact]
    public void MergedCheckpointGivesTheSameLogits()
    {
        var a = Logits(Fixture("good.pth"));
        var b = Logits(Fixture("merged.pth"));
        double num = a.Zip(b, (x, y) => (x - y) * (x - y)).Sum(), den = a.Sum(x => x * x);
        Assert.True(Math.Sqrt(num / den) < 1e-5, "merging the two paths changed the logits");
    }

    [Fact]
    public void WrongShapeNamesTheFileAndTheTensor()
    {
        var (code, _, e) = Swc(["run", "sw-v2", .. Opts, "--weights", Fixture("wrong_shape.pth")]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("wrong_shape.pth", e);
        Assert.Contains("'stages.1.0.se.down.weight' has shape [16,4,1,1], expected [4,16,1,1]", e);
        Assert.Single(e.Trim().Split('\n'));
    }

    [Fact]
    public void TruncatedCheckpointIsOneClearError()
    {
        var bytes = File.ReadAllBytes(Fixture("good.pth"));
        var path = Path.Combine(Directory.CreateTempSubdirectory("swc-ck-").FullName, "cut.pth");
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var (code, _, e) = Swc(["run", "sw-v2", .. Opts, "--weights", path]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("cut.pth", e);
        Assert.Single(e.Trim().Split('\n'));
    }

    [Fact]
    public void PickleWithAnUnknownGlobalIsReadInertAndRefusedForHoldingNoWeights()
    {
        var evil = Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "Frontend.Tests", "Fixtures", "pth",
            "evil_global.pth");
        Assert.True(File.Exists(evil), evil);
        var (code, _, e) = Swc(["run", "sw-v2", .. Opts, "--weights", evil]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("evil_global.pth", e);
        Assert.Contains("no state_dict found: the checkpoint's entries are 'x' (posix.getcwd(...))", e);
    }
}
