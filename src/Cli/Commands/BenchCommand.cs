using System.CommandLine;
using System.Globalization;
using ShiftWise.CodegenCuda;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Ops;
using ShiftWise.Runtime;
using ShiftWise.Runtime.Cuda;

namespace ShiftWise.Cli.Commands;

/// <summary>swc bench MODEL: images/s of the compiled model and a per-kernel time table.</summary>
public static class BenchCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(CommandContext ctx)
    {
        var model = new ModelOptions();
        var weights = new Option<string?>("--weights") { Description = "A .pth or .safetensors checkpoint." };
        var device = new Option<string>("--device")
        {
            Description = "cpu or cuda (GPU 0).",
            DefaultValueFactory = _ => "cpu",
        };
        var graphs = new Option<bool>("--cuda-graph")
        {
            Description = "cuda: capture the plan once as a CUDA graph and replay it.",
        };
        var tf32 = new Option<bool>("--tf32")
        {
            Description = "cuda: let cuBLAS use TF32 tensor cores for the GEMMs (off: fp32).",
        };
        var json = new Option<string?>("--json") { Description = "Also write the result as JSON to this file." };
        var seconds = new Option<string?>("--seconds") { Description = "Minimum measuring time (3)." };
        var top = new Option<string?>("--top") { Description = "Rows of the per-kernel table (15)." };
        var untuned = new Option<bool>("--untuned") { Description = "Ignore the tuning cache (cost-model defaults)." };
        var cmd = new Command("bench", "Measure images/s of the compiled model and time each kernel.");
        model.AddTo(cmd);
        foreach (var o in new Option[] { weights, device, seconds, top, graphs, tf32, json, untuned })
        {
            cmd.Options.Add(o);
        }
        cmd.SetAction(r =>
        {
            var dev = r.GetValue(device);
            if (dev is not ("cpu" or "cuda"))
            {
                throw new IrException($"option --device: '{dev}' is not available; this build benchmarks: cpu, cuda");
            }
            if (dev == "cuda" && !CudaDevice.Available) throw new IrException(CudaDevice.MissingReason!);
            var m = ModelSource.Load(r.GetValue(model.Model)!, model.Read(r) with { Weights = r.GetValue(weights) },
                withWeights: true);
            if (dev == "cuda")
            {
                BenchCuda(ctx, m, CudaRunOptionsOf(r),
                    ModelOptions.Dbl(r, seconds) ?? 3, ModelOptions.Int(r, top) ?? 15, r.GetValue(json),
                    r.GetValue(untuned) ? Runtime.Tune.CudaTuning.Off
                    : Runtime.Tune.CudaTuning.FromCache(ctx.Err.WriteLine));
                return ExitCodes.Ok;
            }
            var cm = CompiledModel.ForCpu(m, warn: ctx.Err.WriteLine,
                tuning: r.GetValue(untuned) ? Runtime.Tune.CpuTuning.Off
                : Runtime.Tune.CpuTuning.FromCache(ctx.Err.WriteLine));
            var x = RunCommand.RandomInput(m.Graph.Inputs[0].Type, 0);
            int batch = x.Shape[0];
            double secs = ModelOptions.Dbl(r, seconds) ?? 3;
            var res = BenchResult.Measure(() => cm.Run(x), minSeconds: secs);
            ctx.Out.WriteLine($"{m.Description}: batch {batch}, {cm.Graph.Nodes.Count} nodes; passes "
                + $"{cm.PassTime.TotalSeconds:F1} s, "
                + $"kernels bound in {cm.BindTime.TotalSeconds:F1} s");
            ctx.Out.WriteLine(cm.Tuning!.Summary);
            ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{res.MedianMs:F2} ms per batch (median of {res.Runs}; min {res.MinMs:F2}, max {res.MaxMs:F2}) = "
                + $"{batch * 1000 / res.MedianMs:F1} images/s on {Environment.ProcessorCount} threads"));
            cm.Executor.Profile = true;
            BenchResult.Measure(() => cm.Run(x), warmup: 0, minRuns: 3, minSeconds: Math.Min(secs, 2));
            PrintKernels(ctx.Out, cm, ModelOptions.Int(r, top) ?? 15);
            if (r.GetValue(json) is { } jp)
            {
                WriteJson(jp, m, batch, "cpu", res.MedianMs, FlopsPerImage(cm.Graph, batch), null);
            }
            return ExitCodes.Ok;
        });
        return cmd;
    }

    /// <summary>
    /// How a parsed <c>swc bench</c> runs on the GPU (the executor's options): --cuda-graph and --tf32.
    /// </summary>
    public static CudaRunOptions CudaRunOptionsOf(ParseResult r) =>
        new() { Graphs = r.GetValue<bool>("--cuda-graph"), Tf32 = r.GetValue<bool>("--tf32") };

    /// <summary>Per-op totals and the slowest kernels, in ms per run.</summary>
    public static void PrintKernels(TextWriter o, CompiledModel cm, int top)
    {
        var times = cm.Executor.Times();
        double total = times.Sum(t => t.Total.TotalMilliseconds / Math.Max(1, t.Runs));
        var rows = new List<string[]> { new[] { "op", "nodes", "ms/run", "share" } };
        foreach (var g in times.GroupBy(t => t.Op).OrderByDescending(g => g.Sum(t => t.Total.TotalMilliseconds)))
        {
            double ms = g.Sum(t => t.Total.TotalMilliseconds / Math.Max(1, t.Runs));
            rows.Add([g.Key, g.Count().ToString(CultureInfo.InvariantCulture), F(ms), F(100 * ms / total) + "%"]);
        }
        rows.Add(["total", times.Count.ToString(CultureInfo.InvariantCulture), F(total), "100%"]);
        TextTable.Write(o, rows, rightAligned: [1, 2, 3]);
        o.WriteLine();
        var k = new List<string[]> { new[] { "node", "kernel", "ms/run", "min ms" } };
        foreach (var t in times.OrderByDescending(t => t.Total).Take(top))
        {
            k.Add([t.Node, t.Kernel, F3(t.Total.TotalMilliseconds / Math.Max(1, t.Runs)), F3(t.Min.TotalMilliseconds)]);
        }
        TextTable.Write(o, k, rightAligned: [2, 3], totalRow: false);
    }

    /// <summary>
    /// The GPU benchmark: device-resident input, warm-up, then rounds of back-to-back runs timed with CUDA events
    /// (median of rounds), then one profiled run (events around every step) for the per-kernel table.
    /// </summary>
    private static void BenchCuda(CommandContext ctx, LoadedModel m, CudaRunOptions opts, double secs, int top,
        string? json, Runtime.Tune.CudaTuning tuning)
    {
        using var gm = CudaModel.Compile(m, opts, log: ctx.Err.WriteLine, tuning: tuning);
        var info = CudaDevice.Info;
        var x = RunCommand.RandomInput(m.Graph.Inputs[0].Type, 0);
        int batch = x.Shape[0];
        var ex = gm.Executor;
        ex.SetInputs(new Dictionary<string, Tensor> { [gm.Graph.Inputs[0].Name] = x });
        ex.TimeRuns(3); // warm-up (and, with --cuda-graph, the capture)
        double one = ex.TimeRuns(1);
        int per = (int)Math.Clamp(secs * 1000 / 5 / Math.Max(one, 1e-3), 1, 100_000);
        var rounds = Enumerable.Range(0, 5).Select(_ => ex.TimeRuns(per)).Order().ToArray();
        double ms = rounds[rounds.Length / 2];
        long flops = FlopsPerImage(gm.Graph, batch);
        ctx.Out.WriteLine($"{m.Description}: batch {batch} on {info.Name} ({info.Arch}, {info.Multiprocessors} SMs), "
            + $"{gm.Plan.Kernels.Count} kernels, {gm.Plan.Steps.Count} steps; passes {gm.PassTime.TotalSeconds:F1} s, "
            + $"compiled and bound in {gm.BindTime.TotalSeconds:F1} s" + (opts.Graphs ? "; CUDA graph replay" : "")
            + (opts.Tf32 ? "; TF32 GEMMs" : ""));
        ctx.Out.WriteLine(tuning.Summary);
        double achieved = flops * batch / (ms * 1e-3);
        ctx.Out.WriteLine(FormattableString.Invariant(
            $"{ms:F3} ms per batch (median of 5 rounds of {per}; min {rounds[0]:F3}, max {rounds[^1]:F3}) = ")
            + FormattableString.Invariant($"{batch * 1000 / ms:F1} images/s, ")
            + FormattableString.Invariant($"{achieved / 1e12:F2} TFLOP/s")
            + (info.Fp32Peak > 0
                ? FormattableString.Invariant($" = {100 * achieved / info.Fp32Peak:F1}% of the FP32 peak ")
                    + FormattableString.Invariant($"({info.Fp32Peak / 1e12:F1} TFLOP/s)")
                : ""));
        var times = ex.Profile();
        double total = times.Sum(t => t.Ms);
        var rows = new List<string[]> { new[] { "kind", "steps", "ms/run", "share" } };
        foreach (var g in times.GroupBy(t => t.Kind).OrderByDescending(g => g.Sum(t => t.Ms)))
        {
            rows.Add([g.Key, g.Count().ToString(CultureInfo.InvariantCulture), F3(g.Sum(t => t.Ms)),
                F(100 * g.Sum(t => t.Ms) / total) + "%"]);
        }
        rows.Add(["total (one profiled run, events around each step)",
            times.Count.ToString(CultureInfo.InvariantCulture), F3(total), "100%"]);
        TextTable.Write(ctx.Out, rows, rightAligned: [1, 2, 3]);
        ctx.Out.WriteLine();
        var k = new List<string[]> { new[] { "node", "kernel", "ms" } };
        foreach (var t in times.OrderByDescending(t => t.Ms).Take(top))
        {
            k.Add([t.Step.Node, t.Step is KernelLaunch l ? l.Kernel : "cublasSgemmStridedBatched", F3(t.Ms)]);
        }
        TextTable.Write(ctx.Out, k, rightAligned: [2], totalRow: false);
        if (json is not null)
        {
            WriteJson(json, m, batch, $"cuda ({info.Name}, {info.Arch})", ms, flops,
                times.GroupBy(t => t.Kind).ToDictionary(g => g.Key, g => g.Sum(t => t.Ms)), opts, info.Fp32Peak);
        }
    }

    /// <summary>
    /// FLOPs of one image: the SW layers counted in the lowering that runs by default (the collapsed cross).
    /// </summary>
    public static long FlopsPerImage(Graph g, int batch)
    {
        var types = g.ValueTypes();
        long total = 0;
        foreach (var c in Cost.Of(g))
        {
            total += c.Node.Op is FusedShiftWise f ? Cost.SwLowerings(f, types[c.Node.Inputs[0]].Shape)[0].Flops
                : c.Flops;
        }
        return total / Math.Max(1, batch);
    }

    private static void WriteJson(string path, LoadedModel m, int batch, string device, double ms, long flops,
        Dictionary<string, double>? kinds, CudaRunOptions? opts = null, double peak = 0)
    {
        var o = new Dictionary<string, object?>
        {
            ["model"] = m.Description,
            ["batch"] = batch,
            ["device"] = device,
            ["images_per_s"] = batch * 1000 / ms,
            ["ms_per_batch"] = ms,
            ["flops_per_image"] = flops,
            ["tflops"] = flops * batch / (ms * 1e-3) / 1e12,
            ["fp32_peak_tflops"] = peak / 1e12,
            ["cuda_graph"] = opts?.Graphs,
            ["tf32"] = opts?.Tf32,
            ["ms_by_kind"] = kinds,
        };
        var text = System.Text.Json.JsonSerializer.Serialize(o,
            new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
        ShiftWise.IR.AtomicFile.WriteText(path, text + "\n");
    }

    private static string F3(double v) => v.ToString("F3", CultureInfo.InvariantCulture);

    private static string F(double v) => v.ToString("F2", CultureInfo.InvariantCulture);
}
