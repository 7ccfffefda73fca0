using ShiftWise.Frontend.Zoo;
using System.CommandLine;
using System.Globalization;
using ShiftWise.IR;
using ShiftWise.Runtime.Compile;
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
        var train = new Option<bool>("--train")
        {
            Description = "Time a training step instead (forward with batch statistics, label-smoothed loss, backward, "
                + "AdamW update), split by kernel kind, with the device memory it holds.",
        };
        var batches = new Option<string?>("--batches")
        {
            Description = "Measure these batch sizes one after another in one process (e.g. 1,8): each planned when it "
                + "comes, the kernels compiled once; a table of all at the end.",
        };
        var precision = PrecisionOption.Create();
        var cmd = new Command("bench", "Measure images/s of the compiled model and time each kernel.");
        model.AddTo(cmd);
        foreach (var o in new Option[] { weights, device, seconds, top, graphs, tf32, json, untuned, train,
            precision, batches })
        {
            cmd.Options.Add(o);
        }
        cmd.SetAction(r =>
        {
            var dev = r.GetValue(device);
            if (dev is not ("cpu" or "cuda"))
            {
                throw new OptionException(
                    $"option --device: '{dev}' is not available; this build benchmarks: cpu, cuda");
            }
            var target = Driver.Target(dev, CudaRunOptionsOf(r), precision: PrecisionOption.Read(r, precision));
            target.Require();
            if (r.GetValue(train))
            {
                if (r.GetValue(graphs) || r.GetValue(tf32) || r.GetValue(untuned))
                {
                    throw new OptionException("options --cuda-graph, --tf32 and --untuned time inference; --train runs "
                        + "its steps eagerly with the tuning cache (--precision: mixed precision)");
                }
                var tm = Driver.Load(r.GetValue(model.Model)!, model.Read(r) with
                {
                    Weights = r.GetValue(weights),
                    Training = new TrainingForm(0.1),
                });
                PrintTrain(ctx.Out, Driver.BenchTraining(tm, dev, ModelOptions.Dbl(r, seconds) ?? 3, r.GetValue(json),
                    ctx.Err.WriteLine, target.Precision));
                return ExitCodes.Ok;
            }
            if (ModelOptions.Ints(r, batches) is { } bs)
            {
                if (r.GetValue(train) || r.GetValue(json) is not null || model.Read(r).Batch is not null)
                {
                    throw new OptionException("option --batches: measures inference at each batch (not with --train, "
                        + "--json or --batch; run swc bench once per batch for JSON)");
                }
                return Batches(ctx, r, model, target, bs, new BenchOptions
                {
                    Seconds = ModelOptions.Dbl(r, seconds) ?? 3,
                    Untuned = r.GetValue(untuned),
                }, ModelOptions.Int(r, top) ?? 15);
            }
            var m = Driver.Load(r.GetValue(model.Model)!, model.Read(r) with { Weights = r.GetValue(weights) });
            var report = Driver.Bench(m, target, new BenchOptions
            {
                Seconds = ModelOptions.Dbl(r, seconds) ?? 3,
                Untuned = r.GetValue(untuned),
                Json = r.GetValue(json),
            }, ctx.Err.WriteLine);
            using var cm = report.Model;
            int rows = ModelOptions.Int(r, top) ?? 15;
            if (report.Gpu is not null) PrintCuda(ctx.Out, report, CudaRunOptionsOf(r), rows);
            else PrintCpu(ctx.Out, report, rows);
            return ExitCodes.Ok;
        });
        return cmd;
    }

    /// <summary>
    /// How a parsed <c>swc bench</c> runs on the GPU (the executor's options): --cuda-graph and --tf32.
    /// </summary>
    public static CudaRunOptions CudaRunOptionsOf(ParseResult r) =>
        new() { Graphs = r.GetValue<bool>("--cuda-graph"), Tf32 = r.GetValue<bool>("--tf32") };

    // --batches: one AnyShapeModel measured at each batch in turn, each batch's report, then a table of all
    private static int Batches(CommandContext ctx, ParseResult r, ModelOptions model, ITarget target, int[] batches,
        BenchOptions o, int top)
    {
        if (batches.Any(b => b < 1 || b > 1 << 16))
        {
            throw new OptionException($"option --batches: {string.Join(",", batches)}: each must be 1 to {1 << 16}");
        }
        var args = model.Read(r) with { Weights = r.GetValue<string?>("--weights") };
        using var any = new AnyShapeModel(r.GetValue(model.Model)!, args, target,
            new CompileOptions { TuningCache = !o.Untuned, GraphCache = true }, ctx.Err.WriteLine, capacity: 1);
        var shape = any.FirstShape;
        var rows = new List<string[]> { new[] { "batch", "ms/batch", "images/s", "planned in s", "kernels compiled" } };
        foreach (int b in batches)
        {
            var cm = any.Prepare(shape.With(0, b));
            var planned = any.History[^1];
            var report = Driver.Bench(cm, o);
            if (report.Gpu is not null) PrintCuda(ctx.Out, report, CudaRunOptionsOf(r), top);
            else PrintCpu(ctx.Out, report, top);
            ctx.Out.WriteLine();
            rows.Add([b.ToString(CultureInfo.InvariantCulture), F3(report.MedianMs),
                F(b * 1000 / report.MedianMs), F(planned.Time.TotalSeconds),
                planned.Reused ? "reused"
                    : $"{planned.Compiled} of {planned.Compiled + planned.Disk + planned.Memory}"]);
        }
        ctx.Out.WriteLine($"{batches.Length} batches in one process on {target.Device}:");
        TextTable.Write(ctx.Out, rows, rightAligned: [0, 1, 2, 3, 4], totalRow: false);
        return ExitCodes.Ok;
    }

    private static void PrintCpu(TextWriter o, BenchReport b, int top)
    {
        var cm = b.Model;
        o.WriteLine($"{cm.Source.Description}: batch {b.Batch}, {cm.Graph.Nodes.Count} nodes; passes "
            + $"{cm.PassTime.TotalSeconds:F1} s{(cm.GraphFromCache ? " (optimised graph from the cache)" : "")}, "
            + $"kernels bound in {cm.BindTime.TotalSeconds:F1} s");
        o.WriteLine(cm.Tuning!.Summary);
        o.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{b.MedianMs:F2} ms per batch ({b.Samples}; min {b.MinMs:F2}, max {b.MaxMs:F2}) = "
            + $"{b.Batch * 1000 / b.MedianMs:F1} images/s on {Environment.ProcessorCount} threads"));
        double total = b.Kernels.Sum(t => t.Ms);
        var rows = new List<string[]> { new[] { "op", "nodes", "ms/run", "share" } };
        foreach (var g in b.Kernels.GroupBy(t => t.Group).OrderByDescending(g => g.Sum(t => t.Ms)))
        {
            double ms = g.Sum(t => t.Ms);
            rows.Add([g.Key, g.Count().ToString(CultureInfo.InvariantCulture), F(ms), F(100 * ms / total) + "%"]);
        }
        rows.Add(["total", b.Kernels.Count.ToString(CultureInfo.InvariantCulture), F(total), "100%"]);
        TextTable.Write(o, rows, rightAligned: [1, 2, 3]);
        o.WriteLine();
        var k = new List<string[]> { new[] { "node", "kernel", "ms/run", "min ms" } };
        foreach (var t in b.Kernels.OrderByDescending(t => t.Ms).Take(top))
        {
            k.Add([t.Node, t.Kernel, F3(t.Ms), F3(t.MinMs)]);
        }
        TextTable.Write(o, k, rightAligned: [2, 3], totalRow: false);
    }

    private static void PrintCuda(TextWriter o, BenchReport b, CudaRunOptions opts, int top)
    {
        var cm = b.Model;
        var info = b.Gpu!;
        double ms = b.MedianMs;
        o.WriteLine($"{cm.Source.Description}: batch {b.Batch} on {info.Name} ({info.Arch}, {info.Multiprocessors} "
            + $"SMs), {cm.Plan.Summary}; passes {cm.PassTime.TotalSeconds:F1} s, compiled and bound in "
            + $"{cm.BindTime.TotalSeconds:F1} s" + (opts.Graphs ? "; CUDA graph replay" : "")
            + (opts.Tf32 ? "; TF32 GEMMs" : ""));
        o.WriteLine(cm.Tuning!.Summary);
        double achieved = b.FlopsPerImage * b.Batch / (ms * 1e-3);
        o.WriteLine(FormattableString.Invariant(
            $"{ms:F3} ms per batch ({b.Samples}; min {b.MinMs:F3}, max {b.MaxMs:F3}) = ")
            + FormattableString.Invariant($"{b.Batch * 1000 / ms:F1} images/s, ")
            + FormattableString.Invariant($"{achieved / 1e12:F2} TFLOP/s")
            + (info.Fp32Peak > 0
                ? FormattableString.Invariant($" = {100 * achieved / info.Fp32Peak:F1}% of the FP32 peak ")
                    + FormattableString.Invariant($"({info.Fp32Peak / 1e12:F1} TFLOP/s)")
                : ""));
        double total = b.Kernels.Sum(t => t.Ms);
        var rows = new List<string[]> { new[] { "kind", "steps", "ms/run", "share" } };
        foreach (var g in b.Kernels.GroupBy(t => t.Group).OrderByDescending(g => g.Sum(t => t.Ms)))
        {
            rows.Add([g.Key, g.Count().ToString(CultureInfo.InvariantCulture), F3(g.Sum(t => t.Ms)),
                F(100 * g.Sum(t => t.Ms) / total) + "%"]);
        }
        rows.Add(["total (one profiled run, events around each step)",
            b.Kernels.Count.ToString(CultureInfo.InvariantCulture), F3(total), "100%"]);
        TextTable.Write(o, rows, rightAligned: [1, 2, 3]);
        o.WriteLine();
        var k = new List<string[]> { new[] { "node", "kernel", "ms" } };
        foreach (var t in b.Kernels.OrderByDescending(t => t.Ms).Take(top)) k.Add([t.Node, t.Kernel, F3(t.Ms)]);
        TextTable.Write(o, k, rightAligned: [2], totalRow: false);
    }

    private static void PrintTrain(TextWriter o, TrainBenchReport r)
    {
        o.WriteLine($"{r.Model}: training step at batch {r.Batch} on {r.Device}, {r.Nodes} nodes");
        o.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{r.MedianMs:F2} ms per step (median of {r.Steps}; min {r.MinMs:F2}, max {r.MaxMs:F2}) = "
            + $"{r.Batch * 1000 / r.MedianMs:F1} images/s")
            + (r.PeakBytes is { } b ? string.Create(CultureInfo.InvariantCulture,
                $"; device memory held {b / 1048576.0:F0} MiB") : ""));
        double total = r.MsByKind.Values.Sum();
        var rows = new List<string[]> { new[] { "kind", "ms/step", "share" } };
        foreach (var (k, ms) in r.MsByKind.OrderByDescending(kv => kv.Value))
        {
            rows.Add([k, F3(ms), F(100 * ms / total) + "%"]);
        }
        rows.Add(["total (one profiled step)", F3(total), "100%"]);
        TextTable.Write(o, rows, rightAligned: [1, 2]);
    }

    private static string F3(double v) => v.ToString("F3", CultureInfo.InvariantCulture);

    private static string F(double v) => v.ToString("F2", CultureInfo.InvariantCulture);
}
