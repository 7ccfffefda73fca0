using System.Text.RegularExpressions;
using ShiftWise.Frontend.IO;
using ShiftWise.IR;

namespace ShiftWise.Frontend;

/// <summary>
/// A state_dict read from a .pth or .safetensors file, with what it reveals about the model: input channels,
/// classes, and whether the N_path convs were merged (merge_branches stores one `LoRA.weight` per SW layer).
/// </summary>
public sealed partial record Checkpoint(IReadOnlyDictionary<string, Tensor> Tensors, int? InChans, int? NumClasses,
    int? NPath)
{
    /// <summary>The prefix DistributedDataParallel puts on every key of the state_dict of the model it wraps.</summary>
    public const string DdpPrefix = "module.";

    /// <summary>
    /// Reads the weights file <paramref name="path"/> when one is given (null otherwise): see <see cref="Read"/>.
    /// A <paramref name="key"/> without a file is an error, not ignored.
    /// </summary>
    public static Checkpoint? ReadIfGiven(string? path, string? key) => path is not null ? Read(path, key)
        : key is null ? null
        : throw new OptionException($"option --checkpoint-key '{key}' chooses an entry of a --weights file, and "
            + "none is given");

    /// <summary>
    /// Reads a checkpoint; from a .pth, the state_dict under <paramref name="key"/> (null: 'model', 'state_dict' or
    /// 'model_ema', else a bare state_dict; see <see cref="Pth.Read(string, string?)"/>). A `module.` prefix (DDP)
    /// on every key is removed, `num_batches_tracked` entries are dropped, merged `LoRA.weight` become
    /// `LoRAs.0.weight`.
    /// </summary>
    public static Checkpoint Read(string path, string? key = null)
    {
        if (!File.Exists(path)) throw new IrException($"{path}: no such file");
        IReadOnlyDictionary<string, Tensor> raw = Path.GetExtension(path).ToLowerInvariant() switch
        {
            ".safetensors" when key is not null => throw new OptionException($"option --checkpoint-key '{key}': "
                + $"{path} is a .safetensors file, which holds one set of tensors and no entries to choose from"),
            ".safetensors" => SafeTensors.Read(path),
            ".pth" or ".pt" or ".bin" or ".ckpt" => Pth.Read(path, key),
            var e => throw new IrException($"{path}: unknown weights format '{e}' (expected .pth or .safetensors)"),
        };
        bool ddp = raw.Count > 0 && raw.Keys.All(k => k.StartsWith(DdpPrefix, StringComparison.Ordinal));
        var t = new SortedDictionary<string, Tensor>(StringComparer.Ordinal);
        bool merged = false;
        foreach (var (key0, v) in raw)
        {
            var k = ddp ? key0[DdpPrefix.Length..] : key0;
            if (k.EndsWith(".num_batches_tracked", StringComparison.Ordinal)) continue;
            var name = MergedLora().Replace(k, ".LoRAs.0.weight");
            merged |= name != k;
            t[name] = v;
        }
        int paths = t.Keys.Select(k => LoraIndex().Match(k)).Where(m => m.Success)
            .Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) + 1)
            .DefaultIfEmpty(0).Max();
        int? nPath = merged ? 1 : paths > 0 ? paths : null;
        int? inChans = t.TryGetValue("downsample_layers.0.0.weight", out var stem) && stem.Shape.Rank == 4
            ? stem.Shape[1] : null;
        int? classes = t.TryGetValue("head.weight", out var head) && head.Shape.Rank == 2 ? head.Shape[0] : null;
        return new Checkpoint(t, inChans, classes, nPath);
    }

    [GeneratedRegex(@"\.LoRA\.weight$")]
    private static partial Regex MergedLora();

    [GeneratedRegex(@"\.LoRAs\.(\d+)\.weight$")]
    private static partial Regex LoraIndex();
}
