using System.Globalization;
using System.Text.Json;
using CsvHelper;
using ShiftWise.Frontend.IO.Images;
using ShiftWise.IR;

namespace ShiftWise.Runtime.Compile;

/// <summary>
/// One image's prediction: its top classes and their probabilities (softmax over the logits), or why it was
/// skipped.
/// </summary>
/// <param name="File">The image file.</param>
/// <param name="Top">The top classes, most probable first.</param>
/// <param name="Probabilities">Their probabilities.</param>
/// <param name="Logits">The model's output for the image (empty when skipped).</param>
/// <param name="Error">Why the file was skipped (null: it was classified).</param>
public sealed record Prediction(string File, int[] Top, double[] Probabilities, float[] Logits, string? Error = null);

/// <summary>How <see cref="Driver.Predict"/> classifies a list of images.</summary>
public sealed record PredictOptions
{
    /// <summary>How each image becomes the model's input.</summary>
    public required ImageTransform Transform { get; init; }

    /// <summary>Classes kept per image.</summary>
    public int TopK { get; init; } = 5;

    /// <summary>Stop at the first file that is not a readable image (false: skip it, with the reason).</summary>
    public bool Strict { get; init; }
}

public static partial class Driver
{
    /// <summary>
    /// Classifies image files with a compiled model, a batch (the model's batch size) at a time: each file decoded and
    /// preprocessed (<see cref="ImageInput.Load"/>, in parallel), the last batch padded with zeros. A file that is not
    /// a readable image is skipped and reported (or, with <see cref="PredictOptions.Strict"/>, stops the run with
    /// its <see cref="ImageException"/>). <paramref name="progress"/> gets (images done, images in all).
    /// </summary>
    public static IReadOnlyList<Prediction> Predict(CompiledModel cm, IReadOnlyList<string> files, PredictOptions o,
        Action<int, int>? progress = null)
    {
        var input = cm.Graph.Inputs[0];
        var shape = input.Type.Shape;
        if (shape.Rank != 4 || shape[1] != 3 || shape[2] != o.Transform.Size || shape[3] != o.Transform.Size)
        {
            throw new IrException($"the model takes {input.Type}; images become (N, 3, {o.Transform.Size}, "
                + $"{o.Transform.Size}): give --image-size {o.Transform.Size} or a model with 3 input channels");
        }
        int batch = shape[0], per = 3 * shape[2] * shape[3];
        var results = new Prediction?[files.Count];
        var x = new float[batch * per];
        var slots = new List<int>(batch); // which file fills each batch slot
        int next = 0, done = 0;
        while (next < files.Count)
        {
            // decode up to a batch of files in parallel; failures are skipped, and more files fill their slots
            slots.Clear();
            Array.Clear(x);
            while (slots.Count < batch && next < files.Count)
            {
                var take = Enumerable.Range(next, Math.Min(batch - slots.Count, files.Count - next)).ToArray();
                next += take.Length;
                var images = new float[take.Length][];
                var errors = new ImageException?[take.Length];
                Parallel.For(0, take.Length, i =>
                {
                    try
                    {
                        images[i] = ImageInput.Load(files[take[i]], o.Transform);
                    }
                    catch (ImageException e)
                    {
                        errors[i] = e;
                    }
                });
                for (int i = 0; i < take.Length; i++)
                {
                    if (errors[i] is { } e)
                    {
                        if (o.Strict) throw e; // the first unreadable file in file order, whichever thread met it
                        results[take[i]] = new Prediction(files[take[i]], [], [], [], e.Message);
                        continue;
                    }
                    images[i].CopyTo(x, slots.Count * per);
                    slots.Add(take[i]);
                }
            }
            if (slots.Count > 0)
            {
                var logits = cm.Run(Tensor.Wrap(input.Type, x)).ToDoubles();
                var f32 = Array.ConvertAll(logits, v => (float)v); // a float32 output: exact
                int classes = logits.Length / batch;
                for (int s = 0; s < slots.Count; s++)
                {
                    var (top, p) = TopK(logits.AsSpan(s * classes, classes), o.TopK);
                    var row = f32[(s * classes)..((s + 1) * classes)];
                    results[slots[s]] = new Prediction(files[slots[s]], top, p, row);
                }
            }
            done = next;
            progress?.Invoke(done, files.Count);
        }
        return results.Select(r => r!).ToArray();
    }

    /// <summary>The k most probable classes of one row of logits (softmax in float64), ties by lower index.</summary>
    public static (int[] Top, double[] Probabilities) TopK(ReadOnlySpan<double> logits, int k)
    {
        var row = logits.ToArray();
        double max = row.Max();
        double z = row.Sum(v => Math.Exp(v - max));
        var top = Enumerable.Range(0, row.Length).OrderByDescending(i => row[i]).ThenBy(i => i)
            .Take(Math.Min(k, row.Length)).ToArray();
        return (top, top.Select(i => Math.Exp(row[i] - max) / z).ToArray());
    }

    /// <summary>
    /// Writes predictions as .csv (one row per image: the file, then class, name and probability of each of the top
    /// classes, then the error of a skipped file) or .json (the same as a list of objects), atomically.
    /// </summary>
    public static void WritePredictions(string path, IReadOnlyList<Prediction> predictions,
        IReadOnlyList<string>? names)
    {
        string Name(int c) => names is null ? "" : names[c];
        int k = predictions.Select(p => p.Top.Length).DefaultIfEmpty(0).Max();
        string text;
        switch (Path.GetExtension(path).ToLowerInvariant())
        {
            case ".csv":
                var sw = new StringWriter();
                using (var csv = CsvWriter.Create(sw, null, true))
                {
                    csv.WriteField("file");
                    for (int i = 1; i <= k; i++)
                    {
                        foreach (var f in new[] { "class", "name", "probability" }) csv.WriteField($"{f}{i}");
                    }
                    csv.WriteField("error");
                    csv.EndRecord();
                    foreach (var p in predictions)
                    {
                        csv.WriteField(p.File);
                        for (int i = 0; i < k; i++)
                        {
                            bool has = i < p.Top.Length;
                            csv.WriteField(has ? p.Top[i].ToString(CultureInfo.InvariantCulture) : "");
                            csv.WriteField(has ? Name(p.Top[i]) : "");
                            csv.WriteField(has ? p.Probabilities[i].ToString("G6", CultureInfo.InvariantCulture) : "");
                        }
                        csv.WriteField(p.Error ?? "");
                        csv.EndRecord();
                    }
                    csv.Flush();
                }
                text = sw.ToString();
                break;
            case ".json":
                text = JsonSerializer.Serialize(predictions.Select(p => new Dictionary<string, object?>
                {
                    ["file"] = p.File,
                    ["top"] = p.Top.Select((c, i) => new Dictionary<string, object?>
                    {
                        ["class"] = c,
                        ["name"] = names is null ? null : names[c],
                        ["probability"] = p.Probabilities[i],
                    }).ToArray(),
                    ["error"] = p.Error,
                }).ToArray(), new JsonSerializerOptions { WriteIndented = true }) + "\n";
                break;
            default:
                throw new OptionException($"option --output: {path}: predictions are written as .csv or .json");
        }
        AtomicFile.WriteText(path, text);
    }
}
