using System.Diagnostics;
using System.Globalization;
using ShiftWise.Frontend.IO;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.Runtime.Cpu;

namespace ShiftWise.Runtime.Train;

/// <summary>Where a run is, for progress display: the epoch and step, running means over the epoch so far, speed.</summary>
public sealed record TrainProgress(int Epoch, int Epochs, int Step, int Steps, double Loss, double Accuracy, double ImagesPerSecond, double Lr);

/// <summary>One finished epoch.</summary>
public sealed record EpochResult(int Epoch, double TrainLoss, double TrainAccuracy, double TestLoss, double TestAccuracy,
    double TrainSeconds, double EvalSeconds, double ImagesPerSecond);

/// <summary>
/// A training run on the CPU target: Fashion-MNIST, the configured ShiftWise_v2, the optimizer and schedule, an
/// evaluation on the test set and a checkpoint (weights, optimizer state, progress; one file, written atomically)
/// after every epoch. Everything random derives from the seed and the epoch or step, so a run resumed from a
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

    /// <summary>Prepares a run; nothing is read or written until <see cref="Run"/>.</summary>
    public TrainRun(TrainConfig cfg, Action<string>? log = null)
    {
        _cfg = cfg;
        _log = log ?? (_ => { });
    }

    /// <summary>The epochs finished in this call (and, when resuming, those read from the checkpoint's metrics).</summary>
    public List<EpochResult> Epochs { get; } = [];

    /// <summary>When set before <see cref="Run"/>, every training step's kernels are timed (see <see cref="Profile"/>).</summary>
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
        var train = Load("train", _cfg.LimitTrain);
        var test = Load("t10k", _cfg.LimitTest);
        int stepsPerEpoch = train.Count / _cfg.Batch / _cfg.Accumulate * _cfg.Accumulate;
        if (stepsPerEpoch == 0) throw new IrException($"{train.Count} training images make no full batch of {_cfg.Batch}×{_cfg.Accumulate}");
        int optSteps = stepsPerEpoch / _cfg.Accumulate;

        var model = _cfg.Model with { Batch = _cfg.Batch };
        var trainModel = ShiftWiseV2.Build(model, "train", training: new TrainingForm(_cfg.LabelSmoothing, _cfg.Seed));
        var weights = WeightInit.Draw(trainModel, InitScheme.Original, _cfg.Seed, model.LayerScaleInit);
        var sw = Stopwatch.StartNew();
        var trainer = new CpuTrainer(trainModel.Graph, weights, _log);
        trainer.Executor.Profile = Profiling;
        trainer.Executor.CheckFinite = CheckFinite;
        Stopwatch dataTime = new(), optTime = new(), evalTime = new();
        int profiledSteps = 0;
        _log($"training graph: {trainer.Graph.Nodes.Count} nodes ({trainModel.Graph.Nodes.Count} forward), "
            + $"{trainModel.TrainableCount:N0} parameters, arena {trainer.Executor.Plan.ArenaBytes / (1 << 20)} MiB, bound in {sw.Elapsed.TotalSeconds:F1} s");
        var shapes = trainer.Parameters.ToDictionary(kv => kv.Key, kv => trainModel.Graph.Params.First(p => p.Name == kv.Key).Type.Shape.ToArray());
        Optimizer opt = _cfg.Optimizer == "sgd"
            ? new Sgd(shapes, _cfg.Lr, _cfg.Momentum, _cfg.WeightDecay)
            : new AdamW(shapes, _cfg.Lr, weightDecay: _cfg.WeightDecay);
        var acc = new GradientAccumulator(opt, trainer.Parameters, _cfg.Accumulate);
        var schedule = new LrSchedule(_cfg.Lr, _cfg.MinLr, (int)Math.Round(_cfg.WarmupEpochs * optSteps), _cfg.Epochs * optSteps);

        Directory.CreateDirectory(_cfg.Out);
        string ckpt = Path.Combine(_cfg.Out, CheckpointFile);
        int start = 0;
        if (resume)
        {
            if (!File.Exists(ckpt)) throw new IrException($"--resume: there is no {ckpt} to resume from");
            start = ReadCheckpoint(ckpt, trainer, opt);
            _log($"resuming after epoch {start} from {ckpt}");
        }
        else if (File.Exists(ckpt))
        {
            _log($"note: {ckpt} exists and will be replaced after the first epoch (use --resume to continue it)");
        }

        var evalModel = ShiftWiseV2.Build(_cfg.Model with { Batch = Math.Min(_cfg.EvalBatch, test.Count) }, "eval");
        var evalExec = new CpuExecutor(evalModel.Graph, trainer.Weights(), generated: false, _log) { CheckFinite = CheckFinite };
        int pixels = model.Height * model.Width;
        var x = new float[_cfg.Batch * pixels];
        var y = new int[_cfg.Batch];
        float scale = 1f / _cfg.Accumulate;
        var scaled = trainer.Gradients.ToDictionary(kv => kv.Key, kv => new float[_cfg.Accumulate > 1 ? kv.Value.Length : 0]);
        for (int epoch = start; epoch < _cfg.Epochs; epoch++)
        {
            var order = Shuffle(train.Count, _cfg.Seed, epoch);
            double lossSum = 0;
            long correct = 0, seen = 0;
            var clock = Stopwatch.StartNew();
            for (int s = 0; s < stepsPerEpoch; s++)
            {
                cancel.ThrowIfCancellationRequested();
                long step = (long)epoch * stepsPerEpoch + s;
                dataTime.Start();
                for (int b = 0; b < _cfg.Batch; b++)
                {
                    int idx = order[s * _cfg.Batch + b];
                    ulong rnd = Mix(_cfg.Seed, (ulong)step, (ulong)b);
                    bool flip = _cfg.HFlip && (rnd & 1) == 1;
                    int span = 2 * _cfg.Shift + 1;
                    int dy = (int)((rnd >> 8) % (ulong)span) - _cfg.Shift, dx = (int)((rnd >> 24) % (ulong)span) - _cfg.Shift;
                    Fill(train, idx, x.AsSpan(b * pixels, pixels), flip, dy, dx);
                    if (_cfg.Erase > 0) Erase(x.AsSpan(b * pixels, pixels), train.Images.Dims[1], train.Images.Dims[2], Mix(_cfg.Seed, (ulong)step, (ulong)b + (1UL << 32)));
                    y[b] = train.Labels.Data[idx];
                }
                dataTime.Stop();
                opt.LearningRate = schedule.At((int)(step / _cfg.Accumulate));
                double loss = trainer.Step(x, y, step);
                profiledSteps++;
                optTime.Start();
                correct += Correct(trainer.Logits, y, model.NumClasses);
                lossSum += loss;
                seen += _cfg.Batch;
                if (_cfg.Accumulate > 1)
                {
                    foreach (var (p, g) in trainer.Gradients)
                    {
                        var d = scaled[p];
                        for (int i = 0; i < g.Length; i++) d[i] = g[i] * scale;
                    }
                }
                acc.Accumulate(_cfg.Accumulate > 1 ? scaled : trainer.Gradients);
                optTime.Stop();
                progress?.Invoke(new TrainProgress(epoch + 1, _cfg.Epochs, s + 1, stepsPerEpoch, lossSum / (s + 1),
                    (double)correct / seen, seen / clock.Elapsed.TotalSeconds, opt.LearningRate));
            }
            double trainSeconds = clock.Elapsed.TotalSeconds;
            clock.Restart();
            evalTime.Start();
            var (testLoss, testAcc) = Evaluate(evalExec, trainer, test, pixels);
            evalTime.Stop();
            var r = new EpochResult(epoch + 1, lossSum / stepsPerEpoch, (double)correct / seen, testLoss, testAcc, trainSeconds,
                clock.Elapsed.TotalSeconds, seen / trainSeconds);
            Epochs.Add(r);
            WriteCheckpoint(ckpt, trainer, opt, epoch + 1);
            WriteMetrics();
            _log($"epoch {r.Epoch}/{_cfg.Epochs}: train loss {r.TrainLoss:F4}, train accuracy {100 * r.TrainAccuracy:F2}%, "
                + $"test loss {r.TestLoss:F4}, test accuracy {100 * r.TestAccuracy:F2}%, {r.TrainSeconds:F1} s train "
                + $"({r.ImagesPerSecond:F0} images/s) + {r.EvalSeconds:F1} s eval; checkpoint {ckpt}");
        }
        SafeTensors.Write(Path.Combine(_cfg.Out, WeightsFile), trainer.Weights());
        if (Profiling)
        {
            Profile = [.. trainer.Executor.Times(),
                new KernelTime("(data)", "(data)", "batch assembly", dataTime.Elapsed, profiledSteps),
                new KernelTime("(optimizer)", "(optimizer)", _cfg.Optimizer, optTime.Elapsed, profiledSteps),
                new KernelTime("(eval)", "(eval)", "test set", evalTime.Elapsed, profiledSteps)];
        }
    }

    private ImageSet Load(string split, int limit)
    {
        var set = FashionMnist.Load(split, _cfg.DataDir);
        if (limit <= 0 || limit >= set.Count) return set;
        int px = set.Images.Data.Length / set.Count;
        var images = new IdxArray([limit, .. set.Images.Dims[1..]], set.Images.Data[..(limit * px)]);
        var labels = new IdxArray([limit], set.Labels.Data[..limit]);
        return new ImageSet(images, labels, set.Classes);
    }

    /// <summary>
    /// Writes image <paramref name="idx"/> normalised, optionally mirrored and translated by (dy, dx): output pixel
    /// (i, j) reads source (i − dy, j − dx) of the (mirrored) image, background (pixel 0) outside it.
    /// </summary>
    private void Fill(ImageSet set, int idx, Span<float> dst, bool flip, int dy = 0, int dx = 0)
    {
        int h = set.Images.Dims[1], w = set.Images.Dims[2];
        var src = set.Images.Data.AsSpan(idx * h * w, h * w);
        float a = (float)(1 / (255.0 * _cfg.Std)), b = (float)(-_cfg.Mean / _cfg.Std);
        for (int i = 0; i < h; i++)
        {
            int si = i - dy;
            for (int j = 0; j < w; j++)
            {
                int sj = j - dx;
                bool inside = si >= 0 && si < h && sj >= 0 && sj < w;
                dst[i * w + j] = inside ? src[si * w + (flip ? w - 1 - sj : sj)] * a + b : b;
            }
        }
    }

    private (double Loss, double Accuracy) Evaluate(CpuExecutor exec, CpuTrainer trainer, ImageSet test, int pixels)
    {
        foreach (var p in exec.Graph.Params) trainer.Executor.Parameter(p.Name).CopyTo(exec.Parameter(p.Name), 0);
        int n = exec.InputBuffer("x").Length / pixels;
        string logits = exec.Graph.Outputs[0];
        long correct = 0;
        double loss = 0;
        int done = 0;
        var y = new int[n];
        for (int start = 0; start < test.Count; start += n)
        {
            // the last batch may be partial: it is padded with the first images and only its real rows count
            int real = Math.Min(n, test.Count - start);
            var x = exec.InputBuffer("x");
            for (int b = 0; b < n; b++)
            {
                int idx = b < real ? start + b : b - real;
                Fill(test, idx, x.Slice(b * pixels, pixels), false);
                y[b] = test.Labels.Data[idx];
            }
            exec.RunBound();
            var l = exec.OutputBuffer(logits);
            int k = l.Length / n;
            for (int b = 0; b < real; b++)
            {
                var row = l.Slice(b * k, k);
                double mx = double.NegativeInfinity, z = 0;
                for (int c = 0; c < k; c++) mx = Math.Max(mx, row[c]);
                for (int c = 0; c < k; c++) z += Math.Exp(row[c] - mx);
                loss += Math.Log(z) + mx - row[y[b]];
            }
            correct += Correct(l[..(real * k)], y.AsSpan(0, real), k);
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

    /// <summary>The epoch's order of the training images: Fisher–Yates driven by SplitMix64 of (seed, epoch).</summary>
    public static int[] Shuffle(int n, uint seed, int epoch)
    {
        var order = Enumerable.Range(0, n).ToArray();
        for (int i = n - 1; i > 0; i--)
        {
            int j = (int)(Mix(seed, 0xE70C, (ulong)epoch * (ulong)n + (ulong)i) % (ulong)(i + 1));
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    /// <summary>
    /// Random erasing (Zhong et al. 2017) from one 64-bit draw, stretched by SplitMix64: with probability
    /// <see cref="TrainConfig.Erase"/> a rectangle of 2–25% of the area with aspect 0.3–3.3 (log-uniform) at a
    /// uniform position gets uniform random pixels, normalised like the image.
    /// </summary>
    private void Erase(Span<float> img, int h, int w, ulong rnd)
    {
        ulong state = rnd;
        double U() => (Mix(0, state += 0x9E3779B97F4A7C15UL, 0) >> 11) * (1.0 / (1UL << 53));
        if (U() >= _cfg.Erase) return;
        for (int attempt = 0; attempt < 10; attempt++)
        {
            double area = (0.02 + 0.23 * U()) * h * w, aspect = Math.Exp(Math.Log(0.3) + (Math.Log(3.3) - Math.Log(0.3)) * U());
            int eh = (int)Math.Round(Math.Sqrt(area * aspect)), ew = (int)Math.Round(Math.Sqrt(area / aspect));
            if (eh < 1 || ew < 1 || eh >= h || ew >= w) continue;
            int top = (int)(U() * (h - eh + 1)), left = (int)(U() * (w - ew + 1));
            float a = (float)(1 / _cfg.Std), b = (float)(-_cfg.Mean / _cfg.Std);
            for (int i = top; i < top + eh; i++)
            for (int j = left; j < left + ew; j++) img[i * w + j] = (float)U() * a + b;
            return;
        }
    }

    private static ulong Mix(uint seed, ulong a, ulong b)
    {
        ulong z = unchecked(seed * 0x9E3779B97F4A7C15UL + a * 0xD1B54A32D192ED03UL + b * 0xBF58476D1CE4E5B9UL + 0x632BE59BD9B4E019UL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return z ^ (z >> 31);
    }

    private void WriteCheckpoint(string path, CpuTrainer trainer, Optimizer opt, int epochsDone)
    {
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, t) in trainer.Weights()) tensors["model/" + name] = t;
        var state = opt.SaveState();
        foreach (var (key, buf) in state.Buffers) tensors["optim/" + key] = Tensor.Wrap(TensorType.Of(DType.F32, buf.Length), (float[])buf.Clone());
        var meta = new Dictionary<string, string>
        {
            ["format"] = Format,
            ["config"] = _cfg.Fingerprint(),
            ["epochs_done"] = epochsDone.ToString(CultureInfo.InvariantCulture),
            ["optimizer_step"] = state.Step.ToString(CultureInfo.InvariantCulture),
            ["metrics"] = System.Text.Json.JsonSerializer.Serialize(Epochs),
        };
        SafeTensors.Write(path, tensors, meta);
    }

    private int ReadCheckpoint(string path, CpuTrainer trainer, Optimizer opt)
    {
        var meta = SafeTensors.ReadMetadata(path);
        if (!meta.TryGetValue("format", out var f) || f != Format) throw new IrException($"{path}: not a swc training checkpoint");
        if (meta.GetValueOrDefault("config") != _cfg.Fingerprint())
        {
            throw new IrException($"{path} was written by a run with a different configuration; resume it with the same config, or start afresh without --resume");
        }
        var t = SafeTensors.Read(path);
        trainer.Load(t.Where(kv => kv.Key.StartsWith("model/", StringComparison.Ordinal)).ToDictionary(kv => kv.Key[6..], kv => kv.Value));
        var bufs = t.Where(kv => kv.Key.StartsWith("optim/", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key[6..], kv => kv.Value.ToDoubles().Select(v => (float)v).ToArray());
        opt.LoadState(new OptimizerState(long.Parse(meta["optimizer_step"], CultureInfo.InvariantCulture), bufs));
        if (meta.TryGetValue("metrics", out var m) && System.Text.Json.JsonSerializer.Deserialize<List<EpochResult>>(m) is { } prev)
        {
            Epochs.AddRange(prev);
        }
        int done = int.Parse(meta["epochs_done"], CultureInfo.InvariantCulture);
        if (done > _cfg.Epochs) throw new IrException($"{path} has {done} epochs done, more than the {_cfg.Epochs} configured");
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
