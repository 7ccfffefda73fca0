using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using ShiftWise.Frontend;
using ShiftWise.Frontend.IO;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.Runtime.Compile;

namespace ShiftWise.Cli.Commands;

/// <summary>
/// swc grad MODEL: the mean cross-entropy of a batch and the gradient of every parameter, BatchNorm with batch
/// statistics and drop path off, named by the PyTorch state_dict keys, to compare with PyTorch autograd.
/// </summary>
public static class GradCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(CommandContext ctx)
    {
        var model = new ModelOptions();
        var weights = new Option<string?>("--weights")
        {
            Description = "A .pth or .safetensors checkpoint (default: seeded random weights).",
        };
        var input = new Option<string>("--input") { Description = "The batch, an (N, C, H, W) .npy.", Required = true };
        var labels = new Option<string>("--labels")
        {
            Description = "One integer class per image, an (N) .npy.",
            Required = true,
        };
        var output = new Option<string>("--output")
        {
            Description = "Write the loss and the gradients as .safetensors.",
            Required = true,
        };
        var device = new Option<string>("--device")
        {
            Description = "cpu (the compiled training graph, the default), cuda (the same on GPU 0) or reference "
                + "(the float64 oracle, slow).",
            DefaultValueFactory = _ => "cpu",
        };
        var smoothing = new Option<string?>("--label-smoothing")
        {
            Description = "Label smoothing of the cross-entropy (0).",
        };
        var seed = new Option<string?>("--seed")
        {
            Description = "Seed of the random weights when none are given (0).",
        };
        var checkFinite = new Option<bool>("--check-finite")
        {
            Description =
                "Check every node of the forward and backward pass for NaN or Inf and stop at the first (cpu, cuda).",
        };
        var precision = PrecisionOption.Create("grad: bf16 and fp16 differentiate the mixed-precision training graph "
            + "(cuda).");
        var cmd = new Command("grad",
            "The loss and the gradient of every parameter for one batch (BatchNorm in batch-statistics mode, drop path "
            + "off).");
        model.AddTo(cmd);
        foreach (var o in new Option[] { weights, input, labels, output, device, smoothing, seed, checkFinite,
            precision })
        {
            cmd.Options.Add(o);
        }
        cmd.SetAction(r =>
        {
            var dev = r.GetValue(device)!;
            if (dev is not ("cpu" or "cuda" or "reference"))
            {
                throw new OptionException(
                    $"option --device: '{dev}' is not available for grad; it runs on: cpu, cuda, reference");
            }
            double ls = ModelOptions.Dbl(r, smoothing) ?? 0;
            if (ls is < 0 or > 1) throw new OptionException($"option --label-smoothing: {ls} must be in [0, 1]");
            var xPath = r.GetValue(input)!;
            var x = Npy.Read(xPath);
            var args = model.Read(r) with
            {
                Weights = r.GetValue(weights),
                Seed = (uint)(ModelOptions.Int(r, seed) ?? 0),
                InputShape = x.Shape,
                Training = new TrainingForm(ls, DropPath: false),
            };
            var m = Driver.Load(r.GetValue(model.Model)!, args);
            var lPath = r.GetValue(labels)!;
            var y = ReadLabels(lPath, x.Shape[0], m.Graph.ValueTypes()[m.Training!.Logits].Shape[1]);
            var sw = Stopwatch.StartNew();
            var (loss, result) = Driver.Grad(m, x, y, dev, r.GetValue(checkFinite), ctx.Err.WriteLine,
                PrecisionOption.Read(r, precision));
            SafeTensors.Write(r.GetValue(output)!, result);
            ctx.Out.WriteLine($"{m.Description}: batch {x.Shape[0]}, loss "
                + $"{loss.ToString("G9", CultureInfo.InvariantCulture)}, "
                + $"{result.Count - 1} parameter gradients on {dev} in {sw.Elapsed.TotalSeconds:F2} s; wrote "
                + $"{r.GetValue(output)}");
            return ExitCodes.Ok;
        });
        return cmd;
    }

    /// <summary>
    /// Reads an (N) integer .npy of class indices in [0, classes), naming the file and the first bad entry.
    /// </summary>
    public static int[] ReadLabels(string path, int n, int classes)
    {
        var t = Npy.Read(path);
        if (t.DType is not (DType.I64 or DType.I32) || t.Shape.Rank != 1)
        {
            throw new IrException($"{path}: labels must be a 1-D integer array, got {t.Type}");
        }
        if (t.Shape[0] != n) throw new IrException($"{path}: {t.Shape[0]} labels for a batch of {n} images");
        var d = t.ToDoubles();
        for (int i = 0; i < d.Length; i++)
        {
            if (d[i] < 0 || d[i] >= classes)
            {
                throw new IrException($"{path}: label {d[i]} of image {i} is not a class 0..{classes - 1}");
            }
        }
        return d.Select(v => (int)v).ToArray();
    }
}
