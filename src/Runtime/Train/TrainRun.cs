using System.Diagnostics;
using System.Globalization;
using ShiftWise.Frontend;
using ShiftWise.Frontend.IO;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Cpu;

namespace ShiftWise.Runtime.Train;

/// <summary>Where a run is, for progress display: the epoch and step, running means over the epoch so far,
/// speed.</summary>
public sealed record TrainProgress(int Epoch, int Epochs, int Step, int Steps, double Loss, double Accuracy,
    double ImagesPerSecond, double Lr)
{
    /// <summary>The share of the epoch's time so far that the step waited for its batch (the input pipeline).</summary>
    public double DataWait { get; init; }
}

/// <summary>One finished epoch.</summary>
public sealed record EpochResult(int Epoch, double TrainLoss, double TrainAccuracy, double TestLoss,
    double TestAccuracy, double TrainSeconds, double EvalSeconds, double ImagesPerSecond);

/// <summary>
/// A training run on the CPU or CUDA target (<see cref="TrainConfig.Device"/>, through <see cref="ITrainer"/>):
/// Fashion-MNIST, the configured ShiftWise_v2, the optimizer and schedule, an evaluation on the test set and a
/// checkpoint (weights, optimizer state, progress; one file, written atomically, the same for both targets) after
/// every epoch. Everything random derives from the seed and the epoch or step, so a run resumed from a
/// checkpoint continues exactly as the uninterrupted run would have.
/// </summary>
public sealed class TrainRun
{
    /// <summary>The checkpoint file inside the output directory.</summary>
    public const string CheckpointFile = "checkpoint.safetensors";

    /// <summary>The final weights (state_dict names; `swc run MODEL --weights` reads them).</summary>
    public const string WeightsFile = "weights.safetensors";

    /// <summary>Per-epoch metrics, rewritten atomically after each epoch.</summary>
    public const string MetricsFile = "metrics.json";

    private const string Format = "swc-train-1";
    private readonly TrainConfig _cfg;
    private readonly Action<string> _log;
    private readonly TrainData _data;

    /// <summary>Prepares a run; nothing is read or written until <see cref="Run"/>.</summary>
    public TrainRun(TrainConfig cfg, Action<string>? log = null)
    {
        _cfg = cfg;
        _log = log ?? (_ => { });
        _data = new TrainData(cfg);
    }

    /// <summary>The epochs finished in this call (and, when resuming, those read from the checkpoint's
    /// metrics).</summary>
    public List<EpochResult> Epochs { get; } = [];

    /// <summary>When set before <see cref="Run"/>, every training step's kernels are timed (see
    /// <see cref="Profile"/>).</summary>
    public bool Profiling { get; init; }

    /// <summary>Check every node of each step (training and evaluation) for NaN or Inf and stop at the first.</summary>
    public bool CheckFinite { get; init; }

    /// <summary>
    /// With <see cref="Profiling"/>: the time of every node of the training graph over the run, plus three rows for the
    /// work outside it ("(data)": batch assembly, "(optimizer)": the update, "(eval)": the test passes).
    /// </summary>
    public IReadOnlyList<KernelTime> Profile { get; private set; } = [];

    /// <summary>
    /// Trains. With <paramref name="resume"/> it continues from the output directory's checkpoint (refusing one from a
    /// different configuration). Cancelling <paramref name="cancel"/> stops between steps, as a killed process would,
    /// leaving the last epoch's checkpoint as the only state on disk.
    /// </summary>
    public void Run(bool resume, CancellationToken cancel = default, Action<TrainProgress>? progress = null)
    {
        var train = _data.Load("train", _cfg.LimitTrain);
        var test = _data.Load("t10k", _cfg.LimitTest);
        int stepsPerEpoch = train.Count / _cfg.Batch / _cfg.Accumulate * _cfg.Accumulate;
        if (stepsPerEpoch == 0)
        {
            throw new IrException(
                $"{train.Count} training images make no full batch of {_cfg.Batch}×{_cfg.Accumulate}");
        }
        int optSteps = stepsPerEpoch / _cfg.Accumulate;

        var model = _cfg.Model with { Batch = _cfg.Batch };
        var trainModel = ModelSource.Network(model, "train", new TrainingForm(_cfg.LabelSmoothing, _cfg.Seed),
            InitScheme.Original, _cfg.Seed);
        var sw = Stopwatch.StartNew();
        var settings = new OptimizerSettings(_cfg.Optimizer, _cfg.Lr, _cfg.WeightDecay, _cfg.Momentum, _cfg.Accumulate);
        using var trainer = Driver.CompileTraining(trainModel, settings, Device, _log, _cfg.Precision);
        trainer.Profile = Profiling;
        trainer.CheckFinite = CheckFinite;
        Stopwatch dataTime = new(), optTime = new(), evalTime = new();
        int profiledSteps = 0;
        _log($"training graph on {trainer.Device}: {trainer.Graph.Nodes.Count} nodes ({trainModel.Graph.Nodes.Count} "
            + $"forward), {Cost.TotalParams(trainModel.Graph):N0} parameters, arena "
            + $"{trainer.ArenaBytes / (1 << 20)} MiB, bound in {sw.Elapsed.TotalSeconds:F1} s");
        var schedule = new LrSchedule(_cfg.Lr, _cfg.MinLr, (int)Math.Round(_cfg.WarmupEpochs * optSteps),
            _cfg.Epochs * optSteps);

        Directory.CreateDirectory(_cfg.Out);
        string ckpt = Path.Combine(_cfg.Out, CheckpointFile);
        int start = 0;
        if (resume)
        {
            if (!File.Exists(ckpt)) throw new OptionException($"--resume: there is no {ckpt} to resume from");
            start = ReadCheckpoint(ckpt, trainer);
            _log($"resuming after epoch {start} from {ckpt}");
        }
        else if (File.Exists(ckpt))
        {
            _log($"note: {ckpt} exists and will be replaced after the first epoch (use --resume to continue it)");
        }

        var evalModel = _cfg.Model with { Batch = Math.Min(_cfg.EvalBatch, test.Count) };
        int pixels = model.Height * model.Width;
        var labels = new[] { new int[_cfg.Batch], new int[_cfg.Batch] };
        for (int epoch = start; epoch < _cfg.Epochs; epoch++)
        {
            var order = TrainData.Shuffle(train.Count, _cfg.Seed, epoch);
            double lossSum = 0;
            long correct = 0, seen = 0;
            var clock = Stopwatch.StartNew();
            var wait = new Stopwatch();
            // the input pipeline: batch s+1 is assembled (and, on a GPU, copied) on another thread while step s runs
            Task Assemble(int s) => Task.Run(() =>
            {
                long step = (long)epoch * stepsPerEpoch + s;
                _data.Batch(train, order, s, step, trainer.InputSlot(s % 2), labels[s % 2], pixels);
                trainer.Submit(s % 2, labels[s % 2], step);
            });
            var next = Assemble(0);
            for (int s = 0; s < stepsPerEpoch; s++)
            {
                cancel.ThrowIfCancellationRequested();
                long step = (long)epoch * stepsPerEpoch + s;
                dataTime.Start();
                wait.Start();
                next.GetAwaiter().GetResult();
                wait.Stop();
                dataTime.Stop();
                next = s + 1 < stepsPerEpoch ? Assemble(s + 1) : Task.CompletedTask;
                double loss;
                try
                {
                    loss = trainer.Step(s % 2);
                }
                catch
                {
                    next.Wait(TimeSpan.FromSeconds(30));
                    throw;
                }
                profiledSteps++;
                optTime.Start();
                correct += Correct(trainer.Logits, labels[s % 2], model.NumClasses);
                lossSum += loss;
                seen += _cfg.Batch;
                double lr = schedule.At((int)(step / _cfg.Accumulate));
                trainer.Update(lr);
                optTime.Stop();
                progress?.Invoke(new TrainProgress(epoch + 1, _cfg.Epochs, s + 1, stepsPerEpoch, lossSum / (s + 1),
                    (double)correct / seen, seen / clock.Elapsed.TotalSeconds, lr)
                {
                    DataWait = wait.Elapsed.TotalSeconds / Math.Max(1e-9, clock.Elapsed.TotalSeconds),
                });
            }
            double trainSeconds = clock.Elapsed.TotalSeconds;
            clock.Restart();
            evalTime.Start();
            var (testLoss, testAcc) = Evaluate(evalModel, trainer.Weights(), test, pixels);
            evalTime.Stop();
            var r = new EpochResult(epoch + 1, lossSum / stepsPerEpoch, (double)correct / seen, testLoss, testAcc,
                trainSeconds, clock.Elapsed.TotalSeconds, seen / trainSeconds);
            Epochs.Add(r);
            WriteCheckpoint(ckpt, trainer, epoch + 1);
            WriteMetrics();
            _log($"epoch {r.Epoch}/{_cfg.Epochs}: train loss {r.TrainLoss:F4}, "
                + $"train accuracy {100 * r.TrainAccuracy:F2}%, "
                + $"test loss {r.TestLoss:F4}, test accuracy {100 * r.TestAccuracy:F2}%, {r.TrainSeconds:F1} s train "
                + $"({r.ImagesPerSecond:F0} images/s) + {r.EvalSeconds:F1} s eval; checkpoint {ckpt}");
        }
        SafeTensors.Write(Path.Combine(_cfg.Out, WeightsFile), trainer.Weights());
        if (Profiling)
        {
            Profile = [.. trainer.Times(),
                new KernelTime("(data)", "(data)", "waiting for batch assembly", dataTime.Elapsed, profiledSteps),
                new KernelTime("(optimizer)", "(optimizer)", _cfg.Optimizer, optTime.Elapsed, profiledSteps),
                new KernelTime("(eval)", "(eval)", "test set", evalTime.Elapsed, profiledSteps)];
        }
    }

    /// <summary>The target that trains: the configuration's, or --device's.</summary>
    public string Device => _cfg.Device;

    // the test set through the inference form of the trained weights, on the training target
    private (double Loss, double Accuracy) Evaluate(ShiftWiseV2Options o, Dictionary<string, Tensor> weights,
        ImageSet test, int pixels)
    {
        var m = ModelSource.Network(o, "eval", weights);
        var target = Device == "cuda" ? Driver.Target("cuda") : new CpuTarget(Generated: false);
        using var compiled = Driver.Compile(m, target, new CompileOptions
        {
            Pipeline = Device == "cuda" ? "inference" : "none",
        });
        compiled.Executor.CheckFinite = CheckFinite;
        int n = o.Batch;
        var xt = Tensor.Wrap(TensorType.Of(DType.F32, n, o.InChans, o.Height, o.Width), new float[n * pixels]);
        var x = (float[])xt.Data;
        string logits = compiled.Graph.Outputs[0];
        long correct = 0;
        double loss = 0;
        int done = 0;
        var y = new int[n];
        for (int start = 0; start < test.Count; start += n)
        {
            // the last batch may be partial: it is padded with the first images and only its real rows count
            int real = Math.Min(n, test.Count - start);
            for (int b = 0; b < n; b++)
            {
                int idx = b < real ? start + b : b - real;
                _data.Fill(test, idx, x.AsSpan(b * pixels, pixels), false);
                y[b] = test.Labels.Data[idx];
            }
            var inputs = new Dictionary<string, Tensor> { [compiled.Graph.Inputs[0].Name] = xt };
            var l = (float[])compiled.Executor.Run(inputs)[logits].Cast(DType.F32).Data;
            int k = l.Length / n;
            for (int b = 0; b < real; b++)
            {
                var row = l.AsSpan(b * k, k);
                double mx = double.NegativeInfinity, z = 0;
                for (int c = 0; c < k; c++) mx = Math.Max(mx, row[c]);
                for (int c = 0; c < k; c++) z += Math.Exp(row[c] - mx);
                loss += Math.Log(z) + mx - row[y[b]];
            }
            correct += Correct(l.AsSpan(0, real * k), y.AsSpan(0, real), k);
            done += real;
        }
        return (loss / done, (double)correct / done);
    }

    private static long Correct(ReadOnlySpan<float> logits, ReadOnlySpan<int> labels, int k)
    {
        long c = 0;
        for (int b = 0; b < labels.Length; b++)
        {
            var row = logits.Slice(b * k, k);
            int best = 0;
            for (int j = 1; j < k; j++) if (row[j] > row[best]) best = j;
            if (best == labels[b]) c++;
        }
        return c;
    }

    /// <summary>The epoch's order of the training images (see <see cref="TrainData.Shuffle"/>).</summary>
    public static int[] Shuffle(int n, uint seed, int epoch) => TrainData.Shuffle(n, seed, epoch);

    private void WriteCheckpoint(string path, ITrainer trainer, int epochsDone)
    {
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, t) in trainer.Weights()) tensors["model/" + name] = t;
        var state = trainer.SaveState();
        foreach (var (key, buf) in state.Buffers)
        {
            tensors["optim/" + key] = Tensor.Wrap(TensorType.Of(DType.F32, buf.Length), (float[])buf.Clone());
        }
        var meta = new Dictionary<string, string>
        {
            ["format"] = Format,
            ["config"] = _cfg.Fingerprint(),
            ["epochs_done"] = epochsDone.ToString(CultureInfo.InvariantCulture),
            ["optimizer_step"] = state.Step.ToString(CultureInfo.InvariantCulture),
            ["metrics"] = System.Text.Json.JsonSerializer.Serialize(Epochs),
        };
        state.LossScale?.WriteTo(meta);
        SafeTensors.Write(path, tensors, meta);
    }

    private int ReadCheckpoint(string path, ITrainer trainer)
    {
        var meta = SafeTensors.ReadMetadata(path);
        if (!meta.TryGetValue("format", out var f) || f != Format)
        {
            throw new IrException($"{path}: not a swc training checkpoint");
        }
        if (meta.GetValueOrDefault("config") != _cfg.Fingerprint())
        {
            throw new IrException($"{path} was written by a run with a different configuration; resume it with "
                + "the same config, or start afresh without --resume");
        }
        var t = SafeTensors.Read(path);
        trainer.Load(t.Where(kv => kv.Key.StartsWith("model/", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key[6..], kv => kv.Value));
        var bufs = t.Where(kv => kv.Key.StartsWith("optim/", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key[6..], kv => kv.Value.ToDoubles().Select(v => (float)v).ToArray());
        var scale = LossScaleState.ReadFrom(meta, path);
        trainer.LoadState(new OptimizerState(long.Parse(meta["optimizer_step"], CultureInfo.InvariantCulture), bufs)
        {
            LossScale = scale,
        });
        if (meta.TryGetValue("metrics", out var m)
            && System.Text.Json.JsonSerializer.Deserialize<List<EpochResult>>(m) is { } prev)
        {
            Epochs.AddRange(prev);
        }
        int done = int.Parse(meta["epochs_done"], CultureInfo.InvariantCulture);
        if (done > _cfg.Epochs)
        {
            throw new IrException($"{path} has {done} epochs done, more than the {_cfg.Epochs} configured");
        }
        return done;
    }

    private void WriteMetrics()
    {
        var json = System.Text.Json.JsonSerializer.Serialize(new { config = _cfg.Fingerprint(), epochs = Epochs },
            new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
        AtomicFile.Write(Path.Combine(_cfg.Out, MetricsFile), s =>
        {
            using var w = new StreamWriter(s, leaveOpen: true);
            w.Write(json + "\n");
        });
    }
}
