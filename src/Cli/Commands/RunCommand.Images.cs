using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using ShiftWise.Frontend;
using ShiftWise.Frontend.IO;
using ShiftWise.Frontend.IO.Images;
using ShiftWise.IR;
using ShiftWise.Runtime.Compile;

namespace ShiftWise.Cli.Commands;

/// <summary>
/// The options of <c>swc run</c> that say how images become the model's input and how they are reported.
/// </summary>
public sealed class ImageOptions
{
    /// <summary>--crop-pct.</summary>
    public Option<string?> CropPct { get; } = new("--crop-pct")
    {
        Description = "Images: the shorter side is resized to size / crop-pct, then centre-cropped (0.875; ignored at "
            + "--image-size 384 and over, which resize straight to the size).",
    };

    /// <summary>--mean.</summary>
    public Option<string?> Mean { get; } = new("--mean")
    {
        Description = "Images: per-channel mean subtracted after scaling to [0, 1] (ImageNet: 0.485,0.456,0.406).",
    };

    /// <summary>--std.</summary>
    public Option<string?> Std { get; } = new("--std")
    {
        Description = "Images: per-channel standard deviation divided by (ImageNet: 0.229,0.224,0.225).",
    };

    /// <summary>--labels.</summary>
    public Option<string?> Labels { get; } = new("--labels")
    {
        Description = "Images: class names, one per line (default: the ImageNet-1k names for 1000 classes).",
    };

    /// <summary>--strict.</summary>
    public Option<bool> Strict { get; } = new("--strict")
    {
        Description = "Images: stop at the first file that is not a readable image (default: report it and skip it).",
    };

    /// <summary>Adds the options to a command.</summary>
    public void AddTo(Command cmd)
    {
        foreach (var o in new Option[] { CropPct, Mean, Std, Labels, Strict }) cmd.Options.Add(o);
    }

    /// <summary>The transform for images of <paramref name="size"/> × <paramref name="size"/>.</summary>
    public ImageTransform Transform(ParseResult r, int size)
    {
        double crop = ModelOptions.Dbl(r, CropPct) ?? 0.875;
        if (!(crop is > 0 and <= 1)) throw new OptionException($"option --crop-pct: {crop} must be in (0, 1]");
        return new ImageTransform(size, crop, Triple(r, Mean, "--mean"), Triple(r, Std, "--std"));
    }

    private static double[]? Triple(ParseResult r, Option<string?> o, string name)
    {
        if (r.GetValue(o) is not { } text) return null;
        var parts = text.Split(',');
        var v = new double[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!double.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out v[i])
                || !double.IsFinite(v[i]))
            {
                throw new OptionException($"option {name}: '{parts[i]}' is not a number");
            }
        }
        if (v.Length != 3) throw new OptionException($"option {name}: give 3 values (R,G,B), got {v.Length}");
        if (name == "--std" && v.Any(x => x <= 0)) throw new OptionException($"option {name}: values must be > 0");
        return v;
    }
}

public static partial class RunCommand
{
    /// <summary>
    /// swc run on images: the files of <paramref name="input"/> classified --batch at a time with a progress bar, the
    /// top-5 printed per image, unreadable files named and skipped (or, with --strict, the run stopped), and the
    /// predictions written as .csv or .json.
    /// </summary>
    private static int Images(CommandContext ctx, ParseResult r, ITarget target, string modelName, ModelArgs args,
        string input, ImageOptions image, string? output, bool checkFinite)
    {
        var files = ImageInput.Expand(input);
        string? kind = output is null ? null : Path.GetExtension(output).ToLowerInvariant();
        if (kind is not (null or ".csv" or ".json" or ".npy"))
        {
            throw new OptionException($"option --output: {output}: images give predictions (.csv or .json) or logits "
                + "(.npy)");
        }
        var m = Driver.Load(modelName, args);
        var shape = m.Graph.Inputs[0].Type.Shape;
        var transform = image.Transform(r, shape[2]);
        int classes = m.Graph.ValueTypes()[m.Graph.Outputs[0]].Shape[^1];
        var names = ClassNames.For(classes, r.GetValue(image.Labels));
        // one file given by name: nothing to skip to, so an unreadable one stops the run as --strict does, and it is
        // read before the model is compiled, so a refusal costs neither the time nor the memory of compiling
        bool single = File.Exists(input);
        if (single) ImageInput.Load(input, transform);
        var sw = Stopwatch.StartNew();
        using var cm = Driver.Compile(m, target, new CompileOptions { TuningCache = true, GraphCache = true },
            ctx.Err.WriteLine);
        cm.Executor.CheckFinite = checkFinite;
        ctx.Out.WriteLine($"{m.Description}: {files.Count} images at {shape[2]}x{shape[3]}, batch {shape[0]}, on "
            + $"{cm.Target.Device} (compiled in {sw.Elapsed.TotalSeconds:F2} s)");
        sw.Restart();
        var bar = ProgressBar.For(ctx.Err);
        var options = new PredictOptions { Transform = transform, Strict = single || r.GetValue(image.Strict) };
        var preds = Driver.Predict(cm, files, options, (done, total) => bar.Update(done, total, "images ", ""));
        bar.Clear();
        string Name(int c) => names is null ? $"class {c}" : $"{names[c]} ({c})";
        foreach (var p in preds)
        {
            ctx.Out.WriteLine(p.Error is { } e
                ? $"skipped {e}"
                : $"{p.File}: " + string.Join(", ", p.Top.Select((c, i) =>
                    $"{Name(c)} {p.Probabilities[i].ToString("F4", CultureInfo.InvariantCulture)}")));
        }
        int skipped = preds.Count(p => p.Error is not null);
        ctx.Out.WriteLine($"{preds.Count - skipped} images classified, {skipped} skipped, in "
            + $"{sw.Elapsed.TotalSeconds:F2} s");
        if (output is not null && kind == ".npy")
        {
            var rows = preds.Where(p => p.Error is null).ToArray();
            Npy.Write(output, Tensor.Wrap(TensorType.Of(DType.F32, rows.Length, classes),
                rows.SelectMany(p => p.Logits).ToArray()));
            ctx.Out.WriteLine($"wrote {output}: the logits of the {rows.Length} images classified, in order");
        }
        else if (output is not null)
        {
            Driver.WritePredictions(output, preds, names);
            ctx.Out.WriteLine($"wrote {output}");
        }
        return ExitCodes.Ok;
    }
}
