using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using ShiftWise.Frontend;
using ShiftWise.Frontend.IO;
using ShiftWise.Frontend.Tables;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.Runtime.Compile;

namespace ShiftWise.Cli.Commands;

/// <summary>swc run MODEL: one forward pass; prints the top classes, optionally writes the output.</summary>
public static partial class RunCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(CommandContext ctx)
    {
        var model = new ModelOptions();
        var weights = new Option<string?>("--weights") { Description = "A .pth or .safetensors checkpoint." };
        var input = new Option<string[]>("--input")
        {
            Description = "Input: an .npy (N, C, H, W), or images: a PNG or JPEG file, a folder of them, or a glob "
                + "(dir/*.jpg), classified --batch at a time; default: a seeded random image. Give --input again for "
                + "more .npy inputs, each of its own batch and size, run in one process (each new shape planned once, "
                + "kernels compiled once).",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var output = new Option<string?>("--output")
        {
            Description = "Write the output as .npy; for images, the predictions as .csv or .json.",
        };
        var image = new ImageOptions();
        var device = new Option<string>("--device")
        {
            Description =
                "Where to run: cpu (compiled, the default), cuda (compiled for GPU 0) or reference (the float64 "
                + "oracle, slow).",
            DefaultValueFactory = _ => "cpu",
        };
        var init = new Option<string>("--init")
        {
            Description = "Weights when none are given: lively (all random, O(1)) or original (the paper's init).",
            DefaultValueFactory = _ => "lively",
        };
        var seed = new Option<string?>("--seed") { Description = "Seed of the random weights and input (0)." };
        var checkFinite = new Option<bool>("--check-finite")
        {
            Description = "Check every node's output for NaN or Inf and stop at the first (cpu, cuda).",
        };
        var tf32 = new Option<bool>("--tf32")
        {
            Description = "cuda: let cuBLAS use TF32 tensor cores for the GEMMs (off: fp32).",
        };
        var precision = PrecisionOption.Create();
        var cmd = new Command("run", "Run a model once and print the top-5 classes.");
        model.AddTo(cmd);
        foreach (var o in new Option[] { weights, input, output, device, init, seed, tf32, checkFinite,
            precision })
        {
            cmd.Options.Add(o);
        }
        image.AddTo(cmd);
        cmd.SetAction(r =>
        {
            var dev = r.GetValue(device)!;
            if (!Driver.TargetNames.Contains(dev))
            {
                throw new OptionException($"option --device: '{dev}' is not available; this build runs on: cpu, cuda, "
                    + $"reference");
            }
            var target = Driver.Target(dev, CudaRunOptionsOf(r), precision: PrecisionOption.Read(r, precision));
            target.Require();
            uint s = (uint)(ModelOptions.Int(r, seed) ?? 0);
            var given = r.GetValue(input) ?? [];
            var args = model.Read(r) with
            {
                Weights = r.GetValue(weights),
                Init = ParseInit(r.GetValue(init)!),
                Seed = s,
            };
            if (given.Any(g => !g.EndsWith(".npy", StringComparison.OrdinalIgnoreCase)))
            {
                if (given.Length > 1)
                {
                    throw new OptionException("option --input: images are given as one --input (a file, a folder or a "
                        + "glob); several --input are .npy arrays");
                }
                return Images(ctx, r, target, r.GetValue(model.Model)!, args, given[0], image, r.GetValue(output),
                    r.GetValue(checkFinite));
            }
            return Arrays(ctx, r.GetValue(model.Model)!, args, target, given, r.GetValue(output),
                r.GetValue(checkFinite), s);
        });
        return cmd;
    }

    /// <summary>
    /// --output: one output as .npy (or .npz); several (a backbone's features) as one .npz with an entry per output,
    /// or, for any other path, a folder holding NAME.npy per output.
    /// </summary>
    private static void WriteOutputs(CommandContext ctx, string path, IReadOnlyList<(string Name, Tensor Value)> ys)
    {
        if (path.EndsWith(".npz", StringComparison.OrdinalIgnoreCase))
        {
            Npz.Write(path, ys);
            ctx.Out.WriteLine($"wrote {path} ({string.Join(", ", ys.Select(y => y.Name))})");
        }
        else if (ys.Count == 1)
        {
            Npy.Write(path, ys[0].Value);
            ctx.Out.WriteLine($"wrote {path}");
        }
        else
        {
            if (File.Exists(path))
            {
                throw new OptionException($"option --output: {path} is a file; {ys.Count} outputs go to an .npz or a "
                    + "folder");
            }
            Directory.CreateDirectory(path);
            foreach (var (name, v) in ys)
            {
                var file = Path.Combine(path, name + ".npy");
                Npy.Write(file, v);
                ctx.Out.WriteLine($"wrote {file}");
            }
        }
    }

    /// <summary>How a parsed <c>swc run</c> runs on the GPU (the executor's options): --tf32.</summary>
    public static ShiftWise.Runtime.Cuda.CudaRunOptions CudaRunOptionsOf(ParseResult r) => new()
    {
        Tf32 = r.GetValue<bool>("--tf32"),
    };

    /// <summary>The --init value.</summary>
    public static InitScheme ParseInit(string v) => v switch
    {
        "lively" => InitScheme.Lively,
        "original" => InitScheme.Original,
        _ => throw new OptionException($"option --init: '{v}' is not lively or original"),
    };

    /// <summary>Prints the top-k classes of each row of a (N, K) output (the first 8 rows).</summary>
    public static void PrintTop(TextWriter o, Tensor y, int k)
    {
        if (y.Shape.Rank != 2)
        {
            var d = y.ToDoubles();
            o.WriteLine($"output {y.Type}: mean {d.Average().ToString("G6", CultureInfo.InvariantCulture)}, "
                + $"min {d.Min().ToString("G6", CultureInfo.InvariantCulture)}, max "
                + $"{d.Max().ToString("G6", CultureInfo.InvariantCulture)}");
            return;
        }
        var v = y.ToDoubles();
        int n = y.Shape[0], c = y.Shape[1];
        for (int b = 0; b < Math.Min(n, 8); b++)
        {
            var row = v.AsSpan(b * c, c).ToArray();
            double mx = row.Max();
            double z = row.Sum(t => Math.Exp(t - mx));
            var top = Enumerable.Range(0, c).OrderByDescending(i => row[i]).ThenBy(i => i).Take(k);
            o.WriteLine($"sample {b} top-{Math.Min(k, c)}: " + string.Join(", ", top.Select(i =>
                $"class {i} (logit {row[i].ToString("F4", CultureInfo.InvariantCulture)}, "
                + $"p {(Math.Exp(row[i] - mx) / z).ToString("F4", CultureInfo.InvariantCulture)})")));
        }
        if (n > 8) o.WriteLine($"... {n - 8} more samples");
    }
}
