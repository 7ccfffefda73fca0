using System.CommandLine;
using System.Globalization;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.Runtime;

namespace ShiftWise.Cli.Commands;

/// <summary>swc bench MODEL: images/s of the compiled model and a per-kernel time table.</summary>
public static class BenchCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(CommandContext ctx)
    {
        var model = new ModelOptions();
        var weights = new Option<string?>("--weights") { Description = "A .pth or .safetensors checkpoint." };
        var device = new Option<string>("--device") { Description = "cpu.", DefaultValueFactory = _ => "cpu" };
        var seconds = new Option<string?>("--seconds") { Description = "Minimum measuring time (3)." };
        var top = new Option<string?>("--top") { Description = "Rows of the per-kernel table (15)." };
        var cmd = new Command("bench", "Measure images/s of the compiled model and time each kernel.");
        model.AddTo(cmd);
        foreach (var o in new Option[] { weights, device, seconds, top }) cmd.Options.Add(o);
        cmd.SetAction(r =>
        {
            if (r.GetValue(device) != "cpu")
            {
                throw new IrException($"option --device: '{r.GetValue(device)}' is not available; this build benchmarks: cpu");
            }
            var m = ModelSource.Load(r.GetValue(model.Model)!, model.Read(r) with { Weights = r.GetValue(weights) }, withWeights: true);
            var cm = CompiledModel.ForCpu(m, warn: ctx.Err.WriteLine);
            var x = RunCommand.RandomInput(m.Graph.Inputs[0].Type, 0);
            int batch = x.Shape[0];
            double secs = ModelOptions.Dbl(r, seconds) ?? 3;
            var res = BenchResult.Measure(() => cm.Run(x), minSeconds: secs);
            ctx.Out.WriteLine($"{m.Description}: batch {batch}, {cm.Graph.Nodes.Count} nodes; passes {cm.PassTime.TotalSeconds:F1} s, "
                + $"kernels bound in {cm.BindTime.TotalSeconds:F1} s");
            ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{res.MedianMs:F2} ms per batch (median of {res.Runs}; min {res.MinMs:F2}, max {res.MaxMs:F2}) = "
                + $"{batch * 1000 / res.MedianMs:F1} images/s on {Environment.ProcessorCount} threads"));
            cm.Executor.Profile = true;
            BenchResult.Measure(() => cm.Run(x), warmup: 0, minRuns: 3, minSeconds: Math.Min(secs, 2));
            PrintKernels(ctx.Out, cm, ModelOptions.Int(r, top) ?? 15);
            return ExitCodes.Ok;
        });
        return cmd;
    }

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
        var k = new List<string[]> { new[] { "node", "kernel", "ms/run" } };
        foreach (var t in times.OrderByDescending(t => t.Total).Take(top))
        {
            k.Add([t.Node, t.Kernel, F(t.Total.TotalMilliseconds / Math.Max(1, t.Runs))]);
        }
        TextTable.Write(o, k, rightAligned: [2], totalRow: false);
    }

    private static string F(double v) => v.ToString("F2", CultureInfo.InvariantCulture);
}
