using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;

namespace ShiftWise.Runtime.Train;

/// <summary>
/// A training recipe as `swc train CONFIG.json` reads it (samples/fashion-mnist.json): the model (a ShiftWise_v2
/// preset and overrides), the data (Fashion-MNIST idx files, normalisation) and the schedule. Unknown keys and
/// out-of-range values are refused with the file and the key's path, so a typo cannot silently train something else.
/// </summary>
public sealed record TrainConfig
{
    /// <summary>The model options (batch set to <see cref="Batch"/>).</summary>
    public required ShiftWiseV2Options Model { get; init; }
    /// <summary>The preset the model started from.</summary>
    public string Preset { get; init; } = "sw-fmnist";
    /// <summary>Directory of the idx files.</summary>
    public string DataDir { get; init; } = Frontend.IO.FashionMnist.DefaultDir;
    /// <summary>Normalisation: (pixel/255 − mean)/std.</summary>
    public double Mean { get; init; } = 0.2860;
    /// <summary>Normalisation std.</summary>
    public double Std { get; init; } = 0.3530;
    /// <summary>Random horizontal flips of training images.</summary>
    public bool HFlip { get; init; }
    /// <summary>
    /// Random translations of training images by up to this many pixels each way (0: none); uncovered pixels are
    /// background.
    /// </summary>
    public int Shift { get; init; }
    /// <summary>
    /// Random erasing: the probability that a training image gets one rectangle (2–25% of its area, aspect 0.3–3.3)
    /// replaced by uniform random pixels (0: none).
    /// </summary>
    public double Erase { get; init; }
    /// <summary>Use only the first N training images (0: all).</summary>
    public int LimitTrain { get; init; }
    /// <summary>Use only the first N test images (0: all).</summary>
    public int LimitTest { get; init; }
    /// <summary>Epochs.</summary>
    public int Epochs { get; init; } = 8;
    /// <summary>Images per micro-batch.</summary>
    public int Batch { get; init; } = 128;
    /// <summary>Micro-batches per optimizer step (gradient accumulation).</summary>
    public int Accumulate { get; init; } = 1;
    /// <summary>adamw or sgd.</summary>
    public string Optimizer { get; init; } = "adamw";
    /// <summary>Peak learning rate.</summary>
    public double Lr { get; init; } = 2e-3;
    /// <summary>Final learning rate of the cosine.</summary>
    public double MinLr { get; init; } = 1e-5;
    /// <summary>Decoupled weight decay (AdamW) or L2 decay (SGD) of the decaying group.</summary>
    public double WeightDecay { get; init; } = 0.05;
    /// <summary>SGD momentum.</summary>
    public double Momentum { get; init; } = 0.9;
    /// <summary>Linear warm-up length in epochs (fractions allowed).</summary>
    public double WarmupEpochs { get; init; } = 1;
    /// <summary>Label smoothing of the cross-entropy.</summary>
    public double LabelSmoothing { get; init; } = 0.1;
    /// <summary>Seed of the initial weights, the shuffles, flips and drop-path masks.</summary>
    public uint Seed { get; init; }
    /// <summary>Images per evaluation batch.</summary>
    public int EvalBatch { get; init; } = 1000;
    /// <summary>
    /// The target that trains: cpu or cuda (swc train --device overrides it). Not part of the
    /// <see cref="Fingerprint"/>: a checkpoint of one target resumes on the other.
    /// </summary>
    public string Device { get; init; } = "cpu";
    /// <summary>
    /// fp32 (default), tf32, or bf16 / fp16 mixed precision (float32 master weights; fp16 with dynamic loss scaling);
    /// CUDA only. Part of the <see cref="Fingerprint"/> when not fp32.
    /// </summary>
    public Precision Precision { get; init; } = Precision.Fp32;
    /// <summary>Output directory (checkpoint, final weights, metrics).</summary>
    public string Out { get; init; } = "runs/fashion-mnist";

    /// <summary>
    /// A hash of everything that shapes the run (not the output directory or the epoch count), checked on resume.
    /// </summary>
    public string Fingerprint()
    {
        var m = Model;
        var text = string.Join("|", Preset, m.InChans, m.NumClasses, string.Join(",", m.Depths),
            string.Join(",", m.Dims), string.Join(",", m.KernelSize), F(m.GhostRatio), m.NPath, m.NRep,
            F(m.WidthFactor), F(m.LayerScaleInit), F(m.DropPathRate), m.Height, m.Width, m.StemStride, m.Bn,
            F(Mean), F(Std), HFlip, Shift, LimitTrain, Batch, Accumulate, Optimizer, F(Lr), F(MinLr), F(WeightDecay),
            F(Momentum), F(WarmupEpochs), F(LabelSmoothing), Seed)
            + (Erase > 0 ? "|erase=" + F(Erase) : "")
            + (Precision != Precision.Fp32 ? "|precision=" + Precision.Name() : "");
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..16];
    }

    private static string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>Reads and validates a config file.</summary>
    public static TrainConfig Load(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IrException($"{path}: cannot read the config: {e.Message}");
        }
        return Parse(text, path);
    }

    /// <summary>Parses and validates config text; <paramref name="file"/> names it in errors.</summary>
    public static TrainConfig Parse(string text, string file)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(text, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip,
                AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new IrException($"{file}: not valid JSON: {e.Message}");
        }
        using (doc)
        {
            var r = new Reader(file);
            var root = r.Object(doc.RootElement, "", ["model", "data", "train", "out"]);
            var model = r.Object(root.Get("model"), "model", ["preset", "in_chans", "num_classes", "image_size",
                "stem_stride", "depths", "dims", "kernel_size", "ghost_ratio", "n_path", "n_rep", "width_factor",
                "layer_scale_init", "drop_path", "bn"]);
            var data = r.Object(root.Get("data"), "data", ["dir", "mean", "std", "hflip", "shift", "erase",
                "limit_train", "limit_test"]);
            var train = r.Object(root.Get("train"), "train", ["epochs", "batch", "accumulate", "optimizer", "lr",
                "min_lr", "weight_decay", "momentum", "warmup_epochs", "label_smoothing", "seed", "eval_batch",
                "device", "precision"]);
            string preset = model.Str("preset") ?? "sw-fmnist";
            var o = ShiftWiseV2Options.Preset(preset) ?? throw r.Error("model.preset",
                $"'{preset}' is not a ShiftWise_v2 preset ({string.Join(", ", ShiftWiseV2Options.PresetNames)})");
            int size = model.Int("image_size") ?? o.Height;
            var cfg = new TrainConfig
            {
                Preset = preset,
                DataDir = data.Str("dir") ?? Frontend.IO.FashionMnist.DefaultDir,
                Mean = data.Num("mean") ?? 0.2860,
                Std = data.Num("std") ?? 0.3530,
                HFlip = data.Bool("hflip") ?? false,
                Shift = data.Int("shift") ?? 0,
                Erase = data.Num("erase") ?? 0,
                LimitTrain = data.Int("limit_train") ?? 0,
                LimitTest = data.Int("limit_test") ?? 0,
                Epochs = train.Int("epochs") ?? 8,
                Batch = train.Int("batch") ?? 128,
                Accumulate = train.Int("accumulate") ?? 1,
                Optimizer = train.Str("optimizer") ?? "adamw",
                Lr = train.Num("lr") ?? 2e-3,
                MinLr = train.Num("min_lr") ?? 1e-5,
                WeightDecay = train.Num("weight_decay") ?? 0.05,
                Momentum = train.Num("momentum") ?? 0.9,
                WarmupEpochs = train.Num("warmup_epochs") ?? 1,
                LabelSmoothing = train.Num("label_smoothing") ?? 0.1,
                Seed = (uint)(train.Int("seed") ?? 0),
                EvalBatch = train.Int("eval_batch") ?? 1000,
                Device = train.Str("device") ?? "cpu",
                Precision = Precisions.TryParse(train.Str("precision") ?? "fp32", out var precision) ? precision
                    : throw r.Error("train.precision", $"'{train.Str("precision")}' is not one of "
                        + string.Join(", ", Precisions.Names)),
                Out = root.Str("out") ?? "runs/fashion-mnist",
                Model = o with
                {
                    InChans = model.Int("in_chans") ?? o.InChans,
                    NumClasses = model.Int("num_classes") ?? o.NumClasses,
                    Height = size,
                    Width = size,
                    StemStride = model.Int("stem_stride") ?? o.StemStride,
                    Depths = model.Ints("depths") ?? o.Depths,
                    Dims = model.Ints("dims") ?? o.Dims,
                    KernelSize = model.Ints("kernel_size") ?? o.KernelSize,
                    GhostRatio = model.Num("ghost_ratio") ?? o.GhostRatio,
                    NPath = model.Int("n_path") ?? o.NPath,
                    NRep = model.Int("n_rep") ?? o.NRep,
                    WidthFactor = model.Num("width_factor") ?? o.WidthFactor,
                    LayerScaleInit = model.Num("layer_scale_init") ?? o.LayerScaleInit,
                    DropPathRate = model.Num("drop_path") ?? o.DropPathRate,
                    Bn = model.Bool("bn") ?? o.Bn,
                },
            };
            r.Check(cfg.Model.InChans == 1, "model.in_chans",
                $"{cfg.Model.InChans}: Fashion-MNIST images have 1 channel");
            r.Check(cfg.Model.NumClasses == 10, "model.num_classes",
                $"{cfg.Model.NumClasses}: Fashion-MNIST has 10 classes");
            r.Check(size == 28, "model.image_size", $"{size}: Fashion-MNIST images are 28x28");
            try
            {
                cfg.Model.Validate();
            }
            catch (IrException e)
            {
                throw new IrException($"{file}: model: {e.Message}");
            }
            r.Check(cfg.Std > 0, "data.std", $"{cfg.Std} must be > 0");
            r.Check(cfg.Shift is >= 0 and <= 8, "data.shift", $"{cfg.Shift} must be in [0, 8] pixels");
            r.Check(cfg.Erase is >= 0 and <= 1, "data.erase", $"{cfg.Erase} must be a probability in [0, 1]");
            r.Check(cfg.LimitTrain >= 0 && cfg.LimitTest >= 0, "data.limit_train", "limits must be >= 0");
            r.Check(cfg.Epochs >= 1, "train.epochs", $"{cfg.Epochs} must be >= 1");
            r.Check(cfg.Batch >= 2, "train.batch", $"{cfg.Batch} must be >= 2 (batch-statistics BatchNorm)");
            r.Check(cfg.Accumulate >= 1, "train.accumulate", $"{cfg.Accumulate} must be >= 1");
            r.Check(cfg.Optimizer is "adamw" or "sgd", "train.optimizer", $"'{cfg.Optimizer}' is adamw or sgd");
            r.Check(cfg.Lr > 0 && cfg.MinLr >= 0 && cfg.MinLr <= cfg.Lr, "train.lr",
                $"lr {cfg.Lr} and min_lr {cfg.MinLr} need 0 <= min_lr <= lr, lr > 0");
            r.Check(cfg.WeightDecay >= 0, "train.weight_decay", $"{cfg.WeightDecay} must be >= 0");
            r.Check(cfg.Momentum is >= 0 and < 1, "train.momentum", $"{cfg.Momentum} must be in [0, 1)");
            r.Check(cfg.WarmupEpochs >= 0 && cfg.WarmupEpochs <= cfg.Epochs, "train.warmup_epochs",
                $"{cfg.WarmupEpochs} must be in [0, epochs]");
            r.Check(cfg.LabelSmoothing is >= 0 and <= 1, "train.label_smoothing",
                $"{cfg.LabelSmoothing} must be in [0, 1]");
            r.Check(cfg.EvalBatch >= 1, "train.eval_batch", $"{cfg.EvalBatch} must be >= 1");
            r.Check(cfg.Device is "cpu" or "cuda", "train.device", $"'{cfg.Device}' is cpu or cuda");
            r.Check(cfg.Out.Length > 0, "out", "must name a directory");
            return cfg;
        }
    }

    /// <summary>Typed, path-aware access to one JSON object of the config.</summary>
    private sealed class Reader(string file)
    {
        public IrException Error(string key, string what) => new($"{file}: {key}: {what}");

        public void Check(bool ok, string key, string what)
        {
            if (!ok) throw Error(key, what);
        }

        public Obj Object(JsonElement? e, string path, string[] known)
        {
            if (e is null) return new Obj(this, path, null);
            if (e.Value.ValueKind != JsonValueKind.Object)
            {
                throw Error(path.Length == 0 ? "the file" : path, "must be a JSON object");
            }
            foreach (var p in e.Value.EnumerateObject())
            {
                if (!known.Contains(p.Name))
                {
                    throw Error(path.Length == 0 ? p.Name : $"{path}.{p.Name}",
                        $"unknown key (known: {string.Join(", ", known)})");
                }
            }
            return new Obj(this, path, e);
        }
    }

    private sealed class Obj(Reader r, string path, JsonElement? e)
    {
        private string Key(string k) => path.Length == 0 ? k : $"{path}.{k}";

        public JsonElement? Get(string k) => e is { } o && o.TryGetProperty(k, out var v)
            && v.ValueKind != JsonValueKind.Null ? v : null;

        public string? Str(string k) => Get(k) is { } v
            ? v.ValueKind == JsonValueKind.String ? v.GetString() : throw r.Error(Key(k), "must be a string")
            : null;

        public double? Num(string k) => Get(k) is { } v
            ? v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out var d) && double.IsFinite(d) ? d
                : throw r.Error(Key(k), "must be a number")
            : null;

        public int? Int(string k) => Get(k) is { } v
            ? v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i) ? i
                : throw r.Error(Key(k), "must be an integer")
            : null;

        public bool? Bool(string k) => Get(k) is { } v
            ? v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean()
                : throw r.Error(Key(k), "must be true or false")
            : null;

        public int[]? Ints(string k) => Get(k) is { } v
            ? v.ValueKind == JsonValueKind.Array && v.EnumerateArray()
                .All(x => x.ValueKind == JsonValueKind.Number && x.TryGetInt32(out _))
                ? v.EnumerateArray().Select(x => x.GetInt32()).ToArray()
                : throw r.Error(Key(k), "must be a list of integers")
            : null;
    }
}
