using System.Diagnostics;
using System.Globalization;
using System.Text;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.Runtime;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Cpu;

namespace ShiftWise.Bench;

/// <summary>
/// sw-tiny end to end on the CPU: the compiled model against our unoptimised graph, batch 1 and 8, interleaved
/// rounds, medians (images/s and ms per batch). Writes bench/results/sw_tiny.md.
/// </summary>
internal static class EndToEnd
{
    public static int Run(IReadOnlyList<int> batches, int rounds, string outDir)
    {
        Console.WriteLine(MachineInfo.Describe());
        var sb = new StringBuilder("# sw-tiny end to end, CPU\n\n");
        sb.Append($"{MachineInfo.Describe()}; load average at start {MachineInfo.LoadAverage()}\n\n");
        sb.Append("| batch | model | median ms per batch | images/s | runs |\n|---|---|---|---|---|\n");
        foreach (int batch in batches)
        {
            var m = Driver.Load("sw-tiny", new ModelArgs { Batch = batch, Seed = 0 });
            var x = Tensor.FromDoubles(m.Graph.Inputs[0].Type,
                Enumerable.Range(0, (int)m.Graph.Inputs[0].Type.Shape.Elements).Select(i => Math.Sin(i * 0.1)).ToArray());
            var fast = Driver.Compile(m, new CpuTarget());
            var slow = Driver.Compile(m, new CpuTarget(Generated: false), new CompileOptions { Pipeline = "none" });
            var candidates = new List<(string Name, Action Run)>
            {
                ("compiled (inference pipeline, generated kernels)", () => fast.Run(x)),
                ("unoptimised graph (managed kernels)", () => slow.Run(x)),
            };
            var times = candidates.ToDictionary(c => c.Name, _ => new List<double>());
            foreach (var c in candidates) c.Run(); // warm-up
            for (int r = 0; r < rounds; r++)
            {
                foreach (var c in r % 2 == 0 ? candidates : Enumerable.Reverse(candidates))
                {
                    var sw = Stopwatch.StartNew();
                    c.Run();
                    times[c.Name].Add(sw.Elapsed.TotalMilliseconds);
                }
            }
            foreach (var c in candidates)
            {
                double med = Bench.Median(times[c.Name]);
                var line = string.Create(CultureInfo.InvariantCulture,
                    $"| {batch} | {c.Name} | {med:F1} | {batch * 1000 / med:F1} | {times[c.Name].Count} |");
                Console.WriteLine(line);
                sb.Append(line).Append('\n');
            }
        }
        Directory.CreateDirectory(outDir);
        var path = Path.Combine(outDir, "sw_tiny.md");
        File.WriteAllText(path + ".tmp", sb.ToString());
        File.Move(path + ".tmp", path, overwrite: true);
        Console.WriteLine($"wrote {path}");
        return 0;
    }
}
