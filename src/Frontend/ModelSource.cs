using ShiftWise.Frontend.IO;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;

namespace ShiftWise.Frontend;

/// <summary>
/// What the command line says about a model: preset options (null = the preset's value), the single-layer preset's
/// sizes, a weights file, and how to initialise without one.
/// </summary>
public sealed record ModelArgs
{
    /// <summary>--in-chans.</summary>
    public int? InChans { get; init; }
    /// <summary>--num-classes.</summary>
    public int? NumClasses { get; init; }
    /// <summary>--depths.</summary>
    public int[]? Depths { get; init; }
    /// <summary>--dims.</summary>
    public int[]? Dims { get; init; }
    /// <summary>--kernel-size: four big kernels then the small one.</summary>
    public int[]? KernelSize { get; init; }
    /// <summary>--ghost-ratio.</summary>
    public double? GhostRatio { get; init; }
    /// <summary>--n-path.</summary>
    public int? NPath { get; init; }
    /// <summary>--n-rep.</summary>
    public int? NRep { get; init; }
    /// <summary>--width-factor.</summary>
    public double? WidthFactor { get; init; }
    /// <summary>--layer-scale-init.</summary>
    public double? LayerScaleInit { get; init; }
    /// <summary>--no-bn: SW layers without their three BNs.</summary>
    public bool NoBn { get; init; }
    /// <summary>--stem-stride (4 or 2).</summary>
    public int? StemStride { get; init; }
    /// <summary>--drop-path: the maximum stochastic-depth rate.</summary>
    public double? DropPath { get; init; }
    /// <summary>Build the training form (batch-statistics BN, loss) instead of the eval graph.</summary>
    public TrainingForm? Training { get; init; }
    /// <summary>--batch.</summary>
    public int? Batch { get; init; }
    /// <summary>--image-size (height and width).</summary>
    public int? ImageSize { get; init; }

    /// <summary>Input width when it differs from the height (--image-size HxW); null: square.</summary>
    public int? ImageWidth { get; init; }

    /// <summary>Backbone mode: the stages whose normalised outputs the network returns (--features 0,1,2,3).</summary>
    public int[]? Features { get; init; }
    /// <summary>sw-layer: --channels.</summary>
    public int? Channels { get; init; }
    /// <summary>sw-layer: --height.</summary>
    public int? Height { get; init; }
    /// <summary>sw-layer: --width.</summary>
    public int? Width { get; init; }
    /// <summary>sw-layer: --big.</summary>
    public int? Big { get; init; }
    /// <summary>sw-layer: --small.</summary>
    public int? Small { get; init; }
    /// <summary>--weights: a .pth or .safetensors file.</summary>
    public string? Weights { get; init; }
    /// <summary>--checkpoint-key: the entry of a .pth checkpoint that holds the state_dict (null: 'model',
    /// 'state_dict' or 'model_ema', else a bare state_dict).</summary>
    public string? CheckpointKey { get; init; }
    /// <summary>--init, for runs without weights.</summary>
    public InitScheme Init { get; init; } = InitScheme.Lively;
    /// <summary>--seed of the initialisation.</summary>
    public uint Seed { get; init; }
    /// <summary>The shape of a given input (N, C, H, W), which fixes batch, channels and size.</summary>
    public Shape? InputShape { get; init; }
}

/// <summary>
/// A model ready to run: its graph, its weights (empty when not requested) and a one-line description.
/// </summary>
public sealed record LoadedModel(Graph Graph, IReadOnlyDictionary<string, Tensor> Weights, string Description)
{
    /// <summary>What the graph's training values are, when it is a training form (null: an inference graph).</summary>
    public TrainingRoles? Training { get; init; }

    /// <summary>
    /// Warnings of the load for the user (a backbone's norms missing from a classifier checkpoint, initialised); the
    /// driver writes them to its log when it compiles, emits or exports the model.
    /// </summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];
}

/// <summary>
/// The values a training graph is driven by: the model names them, so that a trainer needs no model's names.
/// </summary>
/// <param name="Loss">The scalar loss output that the training pipeline differentiates.</param>
/// <param name="Logits">The logits output (accuracy).</param>
/// <param name="Input">The image input.</param>
/// <param name="Labels">The integer class input, one per image.</param>
/// <param name="Step">The training-step input that seeds per-step randomness (null: the graph has none).</param>
public sealed record TrainingRoles(string Loss, string Logits, string Input, string Labels, string? Step);

/// <summary>
/// Resolves a MODEL argument (a preset name or a .swir file) and its options into a graph and weights.
/// </summary>
public static class ModelSource
{
    /// <summary>Every MODEL name besides .swir files.</summary>
    public static IReadOnlyList<string> Names => [.. ShiftWiseV2Options.PresetNames, "sw-layer"];

    /// <summary>Loads the model; draws or reads weights only when <paramref name="withWeights"/>.</summary>
    public static LoadedModel Load(string model, ModelArgs a, bool withWeights)
    {
        if (a.Training is not null && (model == "sw-layer" || model.EndsWith(".swir",
            StringComparison.OrdinalIgnoreCase)))
        {
            throw new IrException($"'{model}': training graphs are built for the ShiftWise_v2 presets "
                + $"({string.Join(", ", ShiftWiseV2Options.PresetNames)})");
        }
        if (model.EndsWith(".swir", StringComparison.OrdinalIgnoreCase))
        {
            var g = ModelLoader.LoadGraph(model);
            var w = withWeights ? ModelLoader.LoadWeights(g, model) : new Dictionary<string, Tensor>();
            return new LoadedModel(g, w, $"{model} (graph {g.Name})");
        }
        AgreeWithInput(model, a);
        var ckpt = Checkpoint.ReadIfGiven(a.Weights, a.CheckpointKey);
        Model m;
        if (model == "sw-layer")
        {
            m = Layer(a, ckpt);
        }
        else
        {
            var preset = ShiftWiseV2Options.Preset(model)
                ?? throw new IrException($"unknown model '{model}': expected a .swir file or one of "
                + $"{string.Join(", ", Names)}");
            m = ShiftWiseV2.Build(Apply(preset, a, ckpt), model.Replace('-', '_'), training: a.Training);
        }
        IReadOnlyDictionary<string, Tensor> weights = new Dictionary<string, Tensor>();
        string source = "no weights";
        var warnings = new List<string>();
        if (ckpt is not null)
        {
            weights = a.Features is { Length: > 0 } ? BackboneWeights(m.Graph, ckpt.Tensors, a.Weights!, warnings)
                : ckpt.Tensors;
            ModelLoader.CheckWeights(m.Graph, weights, a.Weights!);
            source = $"weights {a.Weights}";
        }
        else if (withWeights)
        {
            weights = WeightInit.Draw(m, a.Init, a.Seed, a.LayerScaleInit ?? 1e-6);
            source = $"random weights (--init {a.Init.ToString().ToLowerInvariant()}, --seed {a.Seed})";
        }
        return new LoadedModel(m.Graph, weights, $"{model}, {source}") { Training = m.Training, Warnings = warnings };
    }

    /// <summary>
    /// A classifier's checkpoint as a backbone's weights, as the original's downstream backbones load it (not
    /// strictly): the head and the final norm, which a backbone lacks, are left out, and each per-feature norm{i}
    /// the checkpoint lacks starts as a new LayerNorm does (weight 1, bias 0), with a warning; anything else must
    /// match as always.
    /// </summary>
    public static IReadOnlyDictionary<string, Tensor> BackboneWeights(Graph g, IReadOnlyDictionary<string, Tensor> w,
        string file, List<string> warnings)
    {
        var declared = g.Params.ToDictionary(p => p.Name, StringComparer.Ordinal);
        var classifier = new[] { "head.weight", "head.bias", "norm.weight", "norm.bias" };
        var result = w.Where(kv => declared.ContainsKey(kv.Key) || !classifier.Contains(kv.Key))
            .ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        var fresh = new List<string>();
        foreach (var p in g.Params.Where(p => !w.ContainsKey(p.Name)
            && System.Text.RegularExpressions.Regex.IsMatch(p.Name, @"^norm[0-3]\.(weight|bias)$")))
        {
            result[p.Name] = Tensor.FromDoubles(p.Type, Enumerable.Repeat(p.Name.EndsWith(".weight",
                StringComparison.Ordinal) ? 1.0 : 0.0, (int)p.Type.Shape.Elements).ToArray());
            fresh.Add(p.Name);
        }
        if (fresh.Count > 0)
        {
            warnings.Add($"warning: {file} has no {string.Join(", ", fresh)} (a classifier's checkpoint): these "
                + "backbone norms start as new LayerNorms do (weight 1, bias 0), as the original's downstream "
                + "backbones start them (the features are each stage's output normalised, with no learned scale)");
        }
        return result;
    }

    /// <summary>A random input: N(0, 1) values from MT19937 seeded with <paramref name="seed"/>.</summary>
    public static Tensor RandomInput(TensorType t, uint seed)
    {
        var rng = new Tables.Mt19937(seed ^ 0x5EED5EEDu);
        var v = new double[t.Shape.Elements];
        for (int i = 0; i < v.Length; i++) v[i] = WeightInit.Normal(rng);
        return Tensor.FromDoubles(t, v);
    }

    /// <summary>
    /// A ShiftWise_v2 network built from its options (a training recipe's), its weights drawn with
    /// <paramref name="init"/> from <paramref name="seed"/>; with <paramref name="training"/> its training form.
    /// </summary>
    public static LoadedModel Network(ShiftWiseV2Options o, string name, TrainingForm? training, InitScheme init,
        uint seed)
    {
        var m = ShiftWiseV2.Build(o, name, training: training);
        return new LoadedModel(m.Graph, WeightInit.Draw(m, init, seed, o.LayerScaleInit), name)
        {
            Training = m.Training,
        };
    }

    /// <summary>A ShiftWise_v2 network's inference form from its options, with the given weights.</summary>
    public static LoadedModel Network(ShiftWiseV2Options o, string name, IReadOnlyDictionary<string, Tensor> weights) =>
        new(ShiftWiseV2.Build(o, name).Graph, weights, name);

    /// <summary>
    /// An input file decides the shape; an option that says otherwise is an error, not silently overridden.
    /// </summary>
    private static void AgreeWithInput(string model, ModelArgs a)
    {
        var s = a.InputShape;
        if (s is null || s.Rank != 4) return;
        void Agree(int? given, long actual, string option)
        {
            if (given is int g && g != actual)
            {
                throw new OptionException(
                    $"option {option} {g} disagrees with the --input array of shape {s} ({actual})");
            }
        }
        Agree(a.Batch, s[0], "--batch");
        if (model == "sw-layer")
        {
            Agree(a.Channels, s[1], "--channels");
            Agree(a.Height, s[2], "--height");
            Agree(a.Width, s[3], "--width");
        }
        else
        {
            Agree(a.InChans, s[1], "--in-chans");
            Agree(a.ImageSize, s[2], "--image-size");
            Agree(a.ImageWidth ?? a.ImageSize, s[3], "--image-size");
        }
    }

    private static ShiftWiseV2Options Apply(ShiftWiseV2Options o, ModelArgs a, Checkpoint? ckpt)
    {
        var s = a.InputShape;
        if (s is not null && s.Rank != 4)
        {
            throw new IrException($"the input must be (batch, channels, height, width), got {s}");
        }
        return o with
        {
            InChans = s?[1] ?? a.InChans ?? ckpt?.InChans ?? o.InChans,
            NumClasses = a.NumClasses ?? ckpt?.NumClasses ?? o.NumClasses,
            Depths = a.Depths ?? o.Depths,
            Dims = a.Dims ?? o.Dims,
            KernelSize = a.KernelSize ?? o.KernelSize,
            GhostRatio = a.GhostRatio ?? o.GhostRatio,
            NPath = a.NPath ?? ckpt?.NPath ?? o.NPath,
            NRep = a.NRep ?? o.NRep,
            WidthFactor = a.WidthFactor ?? o.WidthFactor,
            LayerScaleInit = a.LayerScaleInit ?? o.LayerScaleInit,
            Bn = !a.NoBn && o.Bn,
            StemStride = a.StemStride ?? o.StemStride,
            DropPathRate = a.DropPath ?? o.DropPathRate,
            Batch = s?[0] ?? a.Batch ?? o.Batch,
            Height = s?[2] ?? a.ImageSize ?? o.Height,
            Width = s?[3] ?? a.ImageWidth ?? a.ImageSize ?? o.Width,
            OutIndices = a.Features ?? o.OutIndices,
        };
    }

    private static Model Layer(ModelArgs a, Checkpoint? ckpt)
    {
        var s = a.InputShape;
        int c = s?[1] ?? a.Channels ?? 80;
        return ShiftWiseV2.BuildLayer(c, s?[2] ?? a.Height ?? 56, s?[3] ?? a.Width ?? 56, a.Big ?? 51, a.Small ?? 3,
            a.NRep ?? 4, a.GhostRatio ?? 0.23, s?[0] ?? a.Batch ?? 1, a.NPath ?? ckpt?.NPath ?? 2, !a.NoBn);
    }
}
