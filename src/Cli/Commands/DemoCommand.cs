using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.Runtime;
using ShiftWise.Runtime.Compile;

namespace ShiftWise.Cli.Commands;

/// <summary>
/// swc demo: the main job on an embedded default. Builds sw-tiny with seeded random weights, shows the pass
/// pipeline, compiles for the CPU, runs one image, checks it against the reference executor, and compares the speed
/// of the compiled model with the unoptimised graph on the same device.
/// </summary>
public static class DemoCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(CommandContext ctx)
    {
        var image = new Option<string?>("--image-size") { Description = "Input height and width (224)." };
        var cmd = new Command(
            "demo", "Compile sw-tiny for the CPU, check it against the reference, and compare speeds.");
        cmd.Options.Add(image);
        cmd.SetAction(r =>
        {
            var o = ctx.Out;
            int size = ModelOptions.Int(r, image) ?? 224;
            var total = Stopwatch.StartNew();
            var m = Driver.Load("sw-tiny", new ModelArgs { ImageSize = size, Seed = 0 });
            o.WriteLine($"1. model: {m.Description}: {m.Graph.Nodes.Count} nodes, input {m.Graph.Inputs[0].Type}");
            var cm = Driver.Compile(m, Driver.Target("cpu"), new CompileOptions { TuningCache = true },
                ctx.Err.WriteLine);
            o.WriteLine($"2. pass pipeline 'inference' ({cm.PassTime.TotalSeconds:F1} s): {m.Graph.Nodes.Count} -> "
                + $"{cm.Graph.Nodes.Count} nodes");
            foreach (var p in cm.Records)
            {
                o.WriteLine($"   {p.Name,-24} {(p.Changed ? "changed" : "unchanged"),-9} {p.NodesAfter,4} nodes");
            }
            o.WriteLine($"   fused SW layers: {cm.Graph.Nodes.Count(n => n.Op is IR.Ops.FusedShiftWise)}, GEMMs: "
                + $"{cm.Graph.Nodes.Count(n => n.Op is IR.Ops.Gemm)}, batch norms left: "
                + $"{cm.Graph.Nodes.Count(n => n.Op is IR.Ops.BatchNorm)}");
            o.WriteLine($"3. compiled for the CPU in {cm.BindTime.TotalSeconds:F1} s (generated SW kernels via Roslyn, "
                + $"cached); {cm.Tuning!.Summary}");
            var x = ModelSource.RandomInput(m.Graph.Inputs[0].Type, 1);
            var y = cm.Run(x);
            o.WriteLine("4. one image:");
            RunCommand.PrintTop(o, y, 5);
            var sw = Stopwatch.StartNew();
            var reference = Driver.Compile(m, Driver.Target("reference")).Run(x);
            double err = IR.Analysis.Error.RelL2(y, reference);
            bool ok = err <= 1e-4;
            o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"5. check against the reference executor ({sw.Elapsed.TotalSeconds:F1} s): relative L2 {err:E2} "
                + $"(bound 1e-4 for float32 through 27 blocks) {(ok ? "OK" : "FAILED")}"));
            var fast = BenchResult.Measure(() => cm.Run(x), warmup: 1, minRuns: 7, minSeconds: 1.5);
            var slow = Driver.Compile(m, Driver.Target("cpu", generated: false),
                new CompileOptions { Pipeline = "none" });
            var baseline = BenchResult.Measure(() => slow.Run(x), warmup: 1, minRuns: 3, minSeconds: 1);
            o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"6. speed on this CPU ({Environment.ProcessorCount} threads): compiled {1000 / fast.MedianMs:F1} "
                + $"images/s ({fast.MedianMs:F1} ms), unoptimised graph {1000 / baseline.MedianMs:F2} images/s "
                + $"({baseline.MedianMs:F0} ms): {baseline.MedianMs / fast.MedianMs:F1}x faster"));
            o.WriteLine($"done in {total.Elapsed.TotalSeconds:F0} s");
            return ok ? ExitCodes.Ok : ExitCodes.Internal;
        });
        return cmd;
    }
}
