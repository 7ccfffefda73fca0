using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using ShiftWise.Frontend;
using ShiftWise.Frontend.IO;
using ShiftWise.Frontend.Tables;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Reference;
using ShiftWise.Runtime;

namespace ShiftWise.Cli.Commands;

/// <summary>swc run MODEL: one forward pass; prints the top classes, optionally writes the output.</summary>
public static class RunCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(CommandContext ctx)
    {
        var model = new ModelOptions();
        var weights = new Option<string?>("--weights") { Description = "A .pth or .safetensors checkpoint." };
        var input = new Option<string?>("--input")
        {
            Description = "Input .npy (N, C, H, W); default: a seeded random image.",
        };
        var output = new Option<string?>("--output") { Description = "Write the output as .npy." };
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
        var cmd = new Command("run", "Run a model once and print the top-5 classes.");
        model.AddTo(cmd);
        foreach (var o in new Option[] { weights, input, output, device, init, seed, tf32, checkFinite })
        {
            cmd.Options.Add(o);
        }
        cmd.SetAction(r =>
        {
            var dev = r.GetValue(device)!;
            if (dev is not ("reference" or "cpu" or "cuda"))
            {
                throw new IrException($"option --device: '{dev}' is not available; this build runs on: cpu, cuda, "
                    + $"reference");
            }
            if (dev == "cuda" && !ShiftWise.Runtime.Cuda.CudaDevice.Available)
            {
                throw new IrException(ShiftWise.Runtime.Cuda.CudaDevice.MissingReason!);
            }
            uint s = (uint)(ModelOptions.Int(r, seed) ?? 0);
            Tensor? x = r.GetValue(input) is { } path ? Npy.Read(path) : null;
            var args = model.Read(r) with
            {
                Weights = r.GetValue(weights),
                Init = ParseInit(r.GetValue(init)!),
                Seed = s,
                InputShape = x?.Shape,
            };
            var m = ModelSource.Load(r.GetValue(model.Model)!, args, withWeights: true);
            var decl = m.Graph.Inputs.Count == 1
                ? m.Graph.Inputs[0]
                : throw new IrException($"the model has {m.Graph.Inputs.Count} inputs; run takes models with one");
            x ??= RandomInput(decl.Type, s);
            if (!x.Shape.Equals(decl.Type.Shape))
            {
                throw new IrException($"{r.GetValue(input)}: input shape {x.Shape} does not match the model's "
                    + $"{decl.Type.Shape}");
            }
            Tensor y;
            var sw = Stopwatch.StartNew();
            if (dev == "reference" && r.GetValue(checkFinite))
            {
                throw new IrException("option --check-finite: checks the float32 kernels of --device cpu or cuda; the "
                    + "reference executor computes in float64");
            }
            if (dev == "reference")
            {
                ctx.Err.WriteLine(
                    $"running {m.Description} on the reference executor ({m.Graph.Nodes.Count} nodes)...");
                y = ReferenceExecutor.Run(m.Graph, m.Weights,
                    new Dictionary<string, Tensor> { [decl.Name] = x })[m.Graph.Outputs[0]];
                ctx.Out.WriteLine($"{m.Description}: input {x.Type}, output {y.Type}, {sw.Elapsed.TotalSeconds:F2} s "
                    + $"on reference");
            }
            else if (dev == "cuda")
            {
                using var gm = ShiftWise.Runtime.Cuda.CudaModel.Compile(m, CudaRunOptionsOf(r),
                    log: ctx.Err.WriteLine, tuning: Runtime.Tune.CudaTuning.FromCache(ctx.Err.WriteLine));
                var compile = sw.Elapsed;
                sw.Restart();
                gm.Executor.CheckFinite = r.GetValue(checkFinite);
                y = gm.Run(x);
                ctx.Out.WriteLine($"{m.Description}: input {x.Type}, output {y.Type}, compiled for "
                    + $"{ShiftWise.Runtime.Cuda.CudaDevice.Info.Name} "
                    + $"({ShiftWise.Runtime.Cuda.CudaDevice.Info.Arch}) in {compile.TotalSeconds:F2} s "
                    + $"({gm.Plan.Kernels.Count} kernels, "
                    + $"{gm.Plan.Steps.Count} steps), ran in {sw.Elapsed.TotalMilliseconds:F1} ms");
                ctx.Out.WriteLine(gm.Tuning!.Summary);
            }
            else
            {
                var cm = CompiledModel.ForCpu(m, warn: ctx.Err.WriteLine,
                    tuning: Runtime.Tune.CpuTuning.FromCache(ctx.Err.WriteLine));
                var compile = sw.Elapsed;
                sw.Restart();
                cm.Executor.CheckFinite = r.GetValue(checkFinite);
                y = cm.Run(x);
                ctx.Out.WriteLine($"{m.Description}: input {x.Type}, output {y.Type}, compiled for cpu in "
                    + $"{compile.TotalSeconds:F2} s ({cm.Graph.Nodes.Count} nodes), ran in "
                    + $"{sw.Elapsed.TotalMilliseconds:F1} ms");
                ctx.Out.WriteLine(cm.Tuning!.Summary);
            }
            PrintTop(ctx.Out, y, 5);
            if (r.GetValue(output) is { } outPath)
            {
                Npy.Write(outPath, y);
                ctx.Out.WriteLine($"wrote {outPath}");
            }
            return ExitCodes.Ok;
        });
        return cmd;
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
        _ => throw new IrException($"option --init: '{v}' is not lively or original"),
    };

    /// <summary>N(0, 1) values from MT19937 seeded with <paramref name="seed"/>.</summary>
    public static Tensor RandomInput(TensorType t, uint seed)
    {
        var rng = new Mt19937(seed ^ 0x5EED5EEDu);
        var v = new double[t.Shape.Elements];
        for (int i = 0; i < v.Length; i++) v[i] = WeightInit.Normal(rng);
        return Tensor.FromDoubles(t, v);
    }

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
