using ShiftWise.Frontend.IO;
using ShiftWise.IR;

namespace ShiftWise.Cli.Tests;

/// <summary>swc train through the command line on a tiny recipe: progress, per-epoch lines, files, --resume, errors.</summary>
public sealed class TrainTests
{
    private const string Tiny = """
        {
          "model": { "preset": "sw-fmnist", "dims": [8, 16, 16, 16] },
          "data": { "limit_train": 128, "limit_test": 50 },
          "train": { "epochs": 2, "batch": 16, "seed": 3, "eval_batch": 25 },
          "out": "OUT"
        }
        """;

    private static (int Code, string Out, string Err) Swc(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = SwcApp.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    [Fact]
    public void TrainsWritesCheckpointsAndResumes()
    {
        Assert.SkipUnless(FashionMnist.Installed(), "Fashion-MNIST is not installed (Debian's dataset-fashion-mnist)");
        var dir = Directory.CreateTempSubdirectory("swc-train-cli-").FullName;
        var cfg = Path.Combine(dir, "tiny.json");
        var outDir = Path.Combine(dir, "run");
        File.WriteAllText(cfg, Tiny.Replace("OUT", outDir));
        var (code, o, e) = Swc("train", cfg, "--epochs", "1");
        Assert.True(code == 0, e);
        Assert.Contains("epoch 1/1 [", e); // the progress bar (a line per tenth when not on a terminal)
        Assert.Matches(@"epoch 1/1: train loss \d+\.\d+, train accuracy \d+\.\d+%, test loss \d+\.\d+, test accuracy \d+\.\d+%", o);
        Assert.Contains("final test accuracy", o);
        foreach (var f in new[] { "checkpoint.safetensors", "weights.safetensors", "metrics.json" }) Assert.True(File.Exists(Path.Combine(outDir, f)), f);
        Assert.Empty(Directory.GetFiles(outDir, "*.tmp*", SearchOption.AllDirectories).Concat(Directory.GetFiles(outDir, ".*")));
        var afterOne = SafeTensors.Read(Path.Combine(outDir, "weights.safetensors"));
        var checkpoint = SafeTensors.Read(Path.Combine(outDir, "checkpoint.safetensors"));
        foreach (var (k, t) in afterOne)
        {
            Assert.True(t.Bytes().SequenceEqual(checkpoint["model/" + k].Bytes()), $"the checkpoint's {k} differs");
        }
        (code, o, e) = Swc("train", cfg, "--resume");
        Assert.True(code == 0, e);
        Assert.Contains("resuming after epoch 1", o);
        Assert.Contains("epoch 2/2:", o);
        Assert.DoesNotContain("epoch 1/2:", o);
        AssertEpochMoved(afterOne, SafeTensors.Read(Path.Combine(outDir, "weights.safetensors")));
        // the final weights run through the eval graph of the same preset
        (code, o, e) = Swc("run", "sw-fmnist", "--dims", "8,16,16,16", "--weights", Path.Combine(outDir, "weights.safetensors"));
        Assert.True(code == 0, e);
        Assert.Contains("sample 0 top-5", o);
    }

    /// <summary>
    /// The resumed epoch trained: every element of every trainable tensor (all but the BatchNorm running statistics)
    /// moved, and every running statistic has moved elements. AdamW after a whole epoch has a non-zero first moment
    /// for each element that ever had a gradient, so each moves; measured: all 16,000 of the tiny recipe.
    /// </summary>
    private static void AssertEpochMoved(IReadOnlyDictionary<string, Tensor> before,
        IReadOnlyDictionary<string, Tensor> after)
    {
        Assert.Equal(before.Keys, after.Keys);
        long moved = 0, total = 0;
        foreach (var (k, t) in before)
        {
            var (x, y) = (t.ToDoubles(), after[k].ToDoubles());
            int changed = x.Zip(y).Count(p => p.First != p.Second);
            Assert.True(changed > 0, $"{k} did not move in epoch 2");
            if (Buffer(k)) continue;
            moved += changed;
            total += x.Length;
        }
        Assert.True(moved == total, $"only {moved} of {total} trainable elements moved in epoch 2");
    }

    /// <summary>The BatchNorm running statistics: moved by the forward passes, not by the optimizer.</summary>
    private static bool Buffer(string name) =>
        name.EndsWith(".running_mean", StringComparison.Ordinal)
        || name.EndsWith(".running_var", StringComparison.Ordinal);

    [Fact]
    public void ABadConfigIsNamed()
    {
        var dir = Directory.CreateTempSubdirectory("swc-train-cli-").FullName;
        var cfg = Path.Combine(dir, "bad.json");
        File.WriteAllText(cfg, """{ "train": { "lr": "fast" } }""");
        var (code, _, e) = Swc("train", cfg);
        Assert.Equal(2, code);
        Assert.Contains($"{cfg}: train.lr: must be a number", e);
        (code, _, e) = Swc("train", Path.Combine(dir, "missing.json"));
        Assert.Equal(2, code);
        Assert.Contains("missing.json: cannot read the config", e);
    }
}
