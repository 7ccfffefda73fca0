using ShiftWise.Frontend.IO;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.Runtime.Train;

namespace ShiftWise.Runtime.Tests;

/// <summary>
/// The training loop on a tiny configuration (a few hundred Fashion-MNIST images, a narrow sw-fmnist): a run killed in
/// the middle of an epoch and resumed from its last checkpoint ends with weights identical, bit for bit, to an
/// uninterrupted run; checkpoints refuse a different configuration; the config reader names bad keys.
/// </summary>
public sealed class TrainRunTests
{
    private const string Tiny = """
        {
          "model": { "preset": "sw-fmnist", "dims": [8, 16, 16, 16], "kernel_size": [9, 7, 5, 3, 3], "drop_path": 0.2 },
          "data": { "hflip": true, "shift": 2, "erase": 0.5, "limit_train": 192, "limit_test": 100 },
          "train": { "epochs": 3, "batch": 16, "accumulate": 2, "lr": 3e-3, "min_lr": 1e-4, "warmup_epochs": 1,
                     "label_smoothing": 0.1, "seed": 7, "eval_batch": 64 },
          "out": "unused"
        }
        """;

    private static TrainConfig Config(string dir) => TrainConfig.Parse(Tiny, "tiny.json") with { Out = dir };

    private static string Dir() => Directory.CreateTempSubdirectory("swc-train-").FullName;

    [Fact]
    public void AKilledRunResumedEndsWithIdenticalWeights()
    {
        Assert.SkipUnless(FashionMnist.Installed(), "Fashion-MNIST is not installed (Debian's dataset-fashion-mnist)");
        string a = Dir(), b = Dir();
        var whole = new TrainRun(Config(a));
        whole.Run(false, TestContext.Current.CancellationToken);
        Assert.Equal(3, whole.Epochs.Count);

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var first = new TrainRun(Config(b));
        Assert.ThrowsAny<OperationCanceledException>(() => first.Run(false, cts.Token, p =>
        {
            if (p.Epoch == 2 && p.Step == 3) cts.Cancel(); // killed in the middle of epoch 2
        }));
        Assert.False(File.Exists(Path.Combine(b, TrainRun.WeightsFile)));
        Assert.Equal("1", SafeTensors.ReadMetadata(Path.Combine(b, TrainRun.CheckpointFile))["epochs_done"]);
        var resumed = new TrainRun(Config(b));
        resumed.Run(true, TestContext.Current.CancellationToken);
        Assert.Equal(3, resumed.Epochs.Count);

        var wa = SafeTensors.Read(Path.Combine(a, TrainRun.WeightsFile));
        var wb = SafeTensors.Read(Path.Combine(b, TrainRun.WeightsFile));
        Assert.Equal(wa.Keys, wb.Keys);
        foreach (var (k, t) in wa) Assert.True(t.ToDoubles().SequenceEqual(wb[k].ToDoubles()), $"{k} differs after resuming");
        Assert.Equal(File.ReadAllBytes(Path.Combine(a, TrainRun.WeightsFile)), File.ReadAllBytes(Path.Combine(b, TrainRun.WeightsFile)));
        Assert.Equal(whole.Epochs.Select(e => e.TestAccuracy), resumed.Epochs.Select(e => e.TestAccuracy));
        AssertMoved(Config(a), wa);
        // the last checkpoint holds the final weights and, for every parameter, second moments that saw gradients
        var ckpt = SafeTensors.Read(Path.Combine(a, TrainRun.CheckpointFile));
        foreach (var (k, t) in wa) Assert.True(t.Bytes().SequenceEqual(ckpt["model/" + k].Bytes()), $"{k} differs");
        var (_, buffers) = Initial(Config(a));
        foreach (var k in wa.Keys.Where(k => !buffers.Contains(k)))
        {
            Assert.True(ckpt.TryGetValue($"optim/{k}/exp_avg_sq", out var v), $"no optimizer state for {k}");
            Assert.True(v.ToDoubles().Any(x => x > 0), $"{k}'s exp_avg_sq is all zero: no gradient reached it");
        }
    }

    /// <summary>
    /// The weights a run of <paramref name="cfg"/> starts from, drawn as <see cref="TrainRun"/> draws them, and the
    /// names of the buffers (BatchNorm running statistics) among them.
    /// </summary>
    private static (Dictionary<string, Tensor> Weights, HashSet<string> Buffers) Initial(TrainConfig cfg)
    {
        var model = cfg.Model with { Batch = cfg.Batch };
        var m = ShiftWiseV2.Build(model, "train", training: new TrainingForm(cfg.LabelSmoothing, cfg.Seed));
        return (WeightInit.Draw(m, InitScheme.Original, cfg.Seed, model.LayerScaleInit),
            m.Graph.Params.Where(p => p.Buffer).Select(p => p.Name).ToHashSet(StringComparer.Ordinal));
    }

    /// <summary>
    /// Training moved the weights: every tensor, trainable parameter and running statistic alike, has elements that
    /// differ from where the run started, and every trainable element does. That is what AdamW does: it moves each
    /// element that ever had a non-zero gradient, and decay moves each non-zero decaying one; only an element that
    /// never had a gradient and starts at zero or has no decay could stay. Measured: all 16,432 of the tiny recipe.
    /// </summary>
    private static void AssertMoved(TrainConfig cfg, IReadOnlyDictionary<string, Tensor> trained)
    {
        var (init, buffers) = Initial(cfg);
        Assert.Equal(init.Keys.Order(StringComparer.Ordinal), trained.Keys.Order(StringComparer.Ordinal));
        long moved = 0, total = 0;
        foreach (var (k, t) in init)
        {
            var before = t.ToDoubles();
            var after = trained[k].ToDoubles();
            int changed = before.Zip(after).Count(p => p.First != p.Second);
            Assert.True(changed > 0, $"{k} ({(buffers.Contains(k) ? "buffer" : "parameter")}) is where it started");
            if (buffers.Contains(k)) continue;
            moved += changed;
            total += before.Length;
        }
        Assert.True(moved == total, $"only {moved} of {total} trainable elements moved");
    }

    [Fact]
    public void ResumeRefusesADifferentConfigurationAndAMissingCheckpoint()
    {
        Assert.SkipUnless(FashionMnist.Installed(), "Fashion-MNIST is not installed (Debian's dataset-fashion-mnist)");
        string d = Dir();
        IrException e = Assert.Throws<OptionException>(() => new TrainRun(Config(d)).Run(true, TestContext.Current.CancellationToken));
        Assert.Contains("no " + Path.Combine(d, TrainRun.CheckpointFile), e.Message);
        new TrainRun(Config(d) with { Epochs = 1 }).Run(false, TestContext.Current.CancellationToken);
        e = Assert.Throws<IrException>(() => new TrainRun(Config(d) with { Lr = 1e-2 }).Run(true, TestContext.Current.CancellationToken));
        Assert.Contains("different configuration", e.Message);
    }

    [Theory]
    [InlineData("""{ "train": { "epoch": 3 } }""", "tiny.json: train.epoch: unknown key")]
    [InlineData("""{ "model": { "dims": [8, "x", 16, 16] } }""", "tiny.json: model.dims: must be a list of integers")]
    [InlineData("""{ "train": { "batch": 1 } }""", "tiny.json: train.batch: 1 must be >= 2")]
    [InlineData("""{ "train": { "optimizer": "lion" } }""", "train.optimizer: 'lion' is adamw or sgd")]
    [InlineData("""{ "model": { "preset": "sw-huge" } }""", "model.preset: 'sw-huge' is not a ShiftWise_v2 preset")]
    [InlineData("""{ "model": { "kernel_size": [13, 9, 5, 3, 4] } }""", "tiny.json: model: option --kernel-size")]
    [InlineData("""{ "model": { "in_chans": 3 } }""", "model.in_chans: 3: Fashion-MNIST images have 1 channel")]
    [InlineData("""[1, 2]""", "tiny.json: the file: must be a JSON object")]
    [InlineData("""{ "data": { "erase": 1.5 } }""", "tiny.json: data.erase: 1.5 must be a probability in [0, 1]")]
    [InlineData("""{ "train": """, "tiny.json: not valid JSON")]
    public void ConfigErrorsNameTheFileAndKey(string json, string phrase)
    {
        var e = Assert.Throws<IrException>(() => TrainConfig.Parse(json, "tiny.json"));
        Assert.Contains(phrase, e.Message);
    }

    [Fact]
    public void TheSampleRecipeParses()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "ShiftWise.Compiler.sln"))) dir = dir.Parent;
        var cfg = TrainConfig.Load(Path.Combine(dir!.FullName, "samples", "fashion-mnist.json"));
        Assert.Equal(1, cfg.Model.InChans);
        Assert.Equal(10, cfg.Model.NumClasses);
    }

    [Fact]
    public void ErasingChangesWhatIsLearnedAndTheFingerprint()
    {
        Assert.SkipUnless(FashionMnist.Installed(), "Fashion-MNIST is not installed (Debian's dataset-fashion-mnist)");
        string a = Dir(), b = Dir();
        var plain = Config(a) with { Epochs = 1, Erase = 0 };
        var erased = Config(b) with { Epochs = 1, Erase = 1 };
        Assert.NotEqual(plain.Fingerprint(), erased.Fingerprint());
        new TrainRun(plain).Run(false, TestContext.Current.CancellationToken);
        new TrainRun(erased).Run(false, TestContext.Current.CancellationToken);
        var wa = SafeTensors.Read(Path.Combine(a, TrainRun.WeightsFile));
        var wb = SafeTensors.Read(Path.Combine(b, TrainRun.WeightsFile));
        Assert.Contains(wa.Keys, k => !wa[k].ToDoubles().SequenceEqual(wb[k].ToDoubles()));
    }

    [Fact]
    public void ShufflesDependOnlyOnSeedAndEpoch()
    {
        var a = TrainRun.Shuffle(1000, 3, 4);
        Assert.Equal(a, TrainRun.Shuffle(1000, 3, 4));
        Assert.NotEqual(a, TrainRun.Shuffle(1000, 3, 5));
        Assert.NotEqual(a, TrainRun.Shuffle(1000, 4, 4));
        Assert.Equal(Enumerable.Range(0, 1000), a.Order());
    }
}
