using ShiftWise.Frontend.IO;
using ShiftWise.IR;

namespace ShiftWise.Cli.Tests;

/// <summary>swc run and inspect on presets, with and without weights and inputs.</summary>
public sealed class RunTests
{
    private static readonly string[] Small =
    [
        "--in-chans", "1", "--num-classes", "10", "--depths", "1,1,2,1", "--dims", "16,32,64,128",
        "--kernel-size", "13,11,7,5,3", "--ghost-ratio", "0.23", "--n-path", "2", "--n-rep", "4", "--width-factor", "1",
        "--image-size", "32",
    ];

    private static (int Code, string Out, string Err) Swc(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = SwcApp.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    private static string TempDir() => Directory.CreateTempSubdirectory("swc-run-").FullName;

    [Fact]
    public void RunSmallV2PrintsTopFiveAndWritesTheOutput()
    {
        var y = Path.Combine(TempDir(), "y.npy");
        var (code, o, e) = Swc(["run", "sw-v2", .. Small, "--output", y]);
        Assert.True(code == 0, e);
        Assert.Contains("input f32[1,1,32,32], output f32[1,10]", o);
        Assert.Matches(@"sample 0 top-5: class \d+ \(logit", o);
        var t = Npy.Read(y);
        Assert.Equal(new Shape(1, 10), t.Shape);
        Assert.All(t.ToDoubles(), v => Assert.True(double.IsFinite(v)));
    }

    [Fact]
    public void SameSeedSameLogitsOtherSeedOtherLogits()
    {
        string Logits(string seed)
        {
            var y = Path.Combine(TempDir(), "y.npy");
            Assert.Equal(0, Swc(["run", "sw-v2", .. Small, "--seed", seed, "--output", y]).Code);
            return string.Join(",", Npy.Read(y).ToDoubles());
        }
        Assert.Equal(Logits("3"), Logits("3"));
        Assert.NotEqual(Logits("3"), Logits("4"));
    }

    [Fact]
    public void InputFileFixesTheShape()
    {
        var dir = TempDir();
        var x = Path.Combine(dir, "x.npy");
        Npy.Write(x, Tensor.FromDoubles(TensorType.Of(DType.F32, 2, 1, 40, 40), new double[3200]));
        // the options leave batch, channels and size open: the array decides them (an option that disagrees is an
        // error: BadConfigTests)
        var open = Small.Where((a, i) => a != "--image-size" && (i == 0 || Small[i - 1] != "--image-size")).ToArray();
        var (code, o, e) = Swc(["run", "sw-v2", .. open, "--input", x]);
        Assert.True(code == 0, e);
        Assert.Contains("input f32[2,1,40,40], output f32[2,10]", o);
        Assert.Contains("sample 1 top-5", o);
    }

    [Fact]
    public void SwLayerPresetRuns()
    {
        var (code, o, e) = Swc("run", "sw-layer", "--channels", "8", "--height", "10", "--width", "12", "--big", "7",
            "--small", "3", "--n-rep", "2", "--batch", "2");
        Assert.True(code == 0, e);
        Assert.Contains("output f32[2,8,10,12]", o);
    }

    [Fact]
    public void InspectSwTinyReportsTheOriginalsCounts()
    {
        var (code, o, e) = Swc("inspect", "sw-tiny");
        Assert.True(code == 0, e);
        Assert.Contains("parameters: 31,790,260 trainable, 72,300 in buffers", o);
        Assert.Contains("parameters with the N_path small convs merged: 31,002,670 trainable", o);
    }

    [Theory]
    [InlineData("--kernel-size", "13,11,7,5,4", "option --kernel-size:")]
    [InlineData("--ghost-ratio", "1.5", "option --ghost-ratio:")]
    [InlineData("--dims", "16,x,64,128", "option --dims: '16,x,64,128' is not a comma-separated list")]
    [InlineData("--device", "tpu", "option --device: 'tpu' is not available")]
    public void BadOptionsAreNamed(string option, string value, string phrase)
    {
        var args = new List<string> { "run", "sw-v2" };
        for (int i = 0; i < Small.Length; i += 2)
        {
            if (Small[i] != option) args.AddRange([Small[i], Small[i + 1]]);
        }
        var (code, _, e) = Swc([.. args, option, value]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains(phrase, e);
    }

    [Fact]
    public void UnknownPresetListsTheKnownOnes()
    {
        var (code, _, e) = Swc("run", "sw-huge");
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("unknown model 'sw-huge'", e);
        Assert.Contains("sw-tiny", e);
    }
}

/// <summary>swc as a separate process, for behaviour fixed at process start.</summary>
public sealed class ProcessTests
{
    [Fact]
    public void AnUnusableBlasChoiceGivesOneWarningAndTheManagedGemm()
    {
        using var p = SwcRun.Start(Runtime.SwcCache.Root, new Dictionary<string, string> { ["SWC_BLAS"] = "no-such-blas" },
            "run", "sw-layer", "--channels", "8", "--height", "9", "--width", "9", "--big", "7");
        string err = p.StandardError.ReadToEnd(), output = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(120_000));
        Assert.Equal(0, p.ExitCode);
        Assert.Single(err.Split('\n'), l => l.StartsWith("warning: ", StringComparison.Ordinal));
        Assert.Contains("SWC_BLAS", err);
        Assert.Contains("output f32[1,8,9,9]", output);
    }

    [Fact]
    public void WithoutNvrtcCompileForCudaStillWritesTheSourcesAndSaysTheyWereNotCompiled()
    {
        var dir = Directory.CreateTempSubdirectory("swc-nonvrtc-").FullName;
        using var p = SwcRun.Start(Runtime.SwcCache.Root, new Dictionary<string, string> { ["SWC_DISABLE"] = "nvrtc" },
            "compile", "sw-layer", "--channels", "8", "--height", "9", "--width", "9", "--big", "7", "--target", "cuda", "--out", dir);
        string err = p.StandardError.ReadToEnd(), output = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(120_000));
        Assert.True(p.ExitCode == 0, err);
        Assert.Contains("not compiled: NVRTC is disabled by SWC_DISABLE=nvrtc", output);
        var cu = Assert.Single(Directory.GetFiles(Path.Combine(dir, "kernels")));
        Assert.Contains("extern \"C\" __global__", File.ReadAllText(cu));
        Assert.False(Directory.Exists(Path.Combine(dir, "ptx")));
        Assert.Contains("NVRTC: not compiled: NVRTC is disabled", File.ReadAllText(Path.Combine(dir, "report.md")));
        Assert.True(File.Exists(Path.Combine(dir, "plan.json")));
    }
}
