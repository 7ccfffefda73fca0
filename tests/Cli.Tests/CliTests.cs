namespace ShiftWise.Cli.Tests;

/// <summary>The swc command run in-process with captured output.</summary>
public sealed class CliTests
{
    private static string Repo => SwcRun.Repo;

    private static (int Code, string Out, string Err) Swc(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = SwcApp.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    private static string Temp(string name, string text)
    {
        var dir = Directory.CreateTempSubdirectory("swc-cli-");
        var p = Path.Combine(dir.FullName, name);
        File.WriteAllText(p, text);
        return p;
    }

    [Fact]
    public void HelpListsInspect()
    {
        var (code, o, _) = Swc("--help");
        Assert.Equal(0, code);
        Assert.Contains("inspect", o);
    }

    [Fact]
    public void VersionPrintsTheAssemblyVersion()
    {
        var (code, o, _) = Swc("--version");
        Assert.Equal(0, code);
        Assert.Equal(typeof(SwcApp).Assembly.GetName().Version!.ToString(3), o.Trim());
    }

    [Fact]
    public void InspectSampleShowsEveryNodeAndTotals()
    {
        var (code, o, e) = Swc("inspect", Path.Combine(Repo, "samples", "sw_layer.swir"));
        Assert.True(code == 0, e);
        // 2 small convs of 6x1x3x3 = 108 weights, 3 BNs x (weight, bias) of 2 = 12; 4 running stats x 3 BNs = 12
        Assert.Contains("parameters: 120 trainable, 12 in buffers", o);
        // each conv: 6 output channels x 11x11 x 9 taps = 6,534 MACs
        Assert.Contains("multiply-accumulates: 13,068", o);
        foreach (var node in new[] { "rep", "ghost", "conv0", "conv1", "sw.h", "bh", "bv", "bi", "y" })
        {
            Assert.Matches($"(?m)^{System.Text.RegularExpressions.Regex.Escape(node)} ", o);
        }
    }

    [Fact]
    public void SyntaxErrorPrintsFileLineColumnAndFails()
    {
        var p = Temp("broken.swir", "swir 1\ngraph g {\n  input %x: f32[2]\n  %y: f32[2] = relu(%x\n  output %y\n}\n");
        var (code, _, e) = Swc("inspect", p);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains($"{p}:4:23: error: expected ')', got 'end of line'", e);
    }

    [Fact]
    public void VerifierErrorNamesTheNode()
    {
        var p = Temp("bad.swir", "swir 1\ngraph g {\n  input %x: f32[2,3]\n  param @w: f32[4,5]\n"
            + "  %fc1: f32[2,4] = linear(%x, @w)\n  output %fc1\n}\n");
        var (code, _, e) = Swc("inspect", p);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains($"{p}:5:20: error: node %fc1 (linear)", e);
        Assert.Contains("needs 3 input features", e);
    }

    [Fact]
    public void MissingFileAndUnknownModelAreClearErrors()
    {
        var (code, _, e) = Swc("inspect", "/nonexistent/m.swir");
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("/nonexistent/m.swir: no such file", e);
        (code, _, e) = Swc("inspect", "resnet50");
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("unknown model 'resnet50'", e);
    }

    [Fact]
    public void UnknownCommandIsAUsageError()
    {
        var (code, _, e) = Swc("frobnicate");
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("frobnicate", e);
    }
}
