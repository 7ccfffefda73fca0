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
/// sw-tiny end to end on the CPU: the compiled model against our unoptimised graph and against ONNX Runtime running
/// the same weights exported by swc export-onnx (issue 23), batch 1 and 8, interleaved rounds, medians (images/s and
/// ms per batch). Writes bench/results/sw_tiny.md.
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
            // the layer scales calmed (÷10): with lively weights sw-tiny is chaotic, float32 and float64 runs of the
            // same graph already differ by 0.9 (relative L2), which would hide a wrong ORT or swc result; timing is
            // the same either way
            m = m with
            {
                Weights = m.Weights.ToDictionary(kv => kv.Key, kv => kv.Key.EndsWith(".gamma", StringComparison.Ordinal)
                    ? Tensor.FromDoubles(kv.Value.Type, kv.Value.ToDoubles().Select(v => v / 10).ToArray())
                    : kv.Value),
            };
            var x = Tensor.FromDoubles(m.Graph.Inputs[0].Type,
                Enumerable.Range(0, (int)m.Graph.Inputs[0].Type.Shape.Elements).Select(i => Math.Sin(i * 0.1)).ToArray());
            var fast = Driver.Compile(m, new CpuTarget());
            var slow = Driver.Compile(m, new CpuTarget(Generated: false), new CompileOptions { Pipeline = "none" });
            using var ort = OrtModel.Export(m, x);
            double diff = IR.Analysis.Error.RelL2(ort.Run(), fast.Run(x).ToDoubles());
            Console.WriteLine($"batch {batch}: ONNX Runtime vs swc logits, relative L2 {diff:E2}");
            if (!(diff <= 1e-4)) throw new InvalidOperationException($"ORT and swc disagree: relative L2 {diff:E2}");
            var candidates = new List<(string Name, Action Run)>
            {
                ("compiled (inference pipeline, generated kernels)", () => fast.Run(x)),
                ("unoptimised graph (managed kernels)", () => slow.Run(x)),
                ($"ONNX Runtime {ort.Version} on swc export-onnx ({ort.Threads} threads)", () => ort.Run()),
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
            double ratio = Bench.Median(times[candidates[2].Name]) / Bench.Median(times[candidates[0].Name]);
            var summary = string.Create(CultureInfo.InvariantCulture,
                $"| {batch} | **swc is {ratio:F2}× as fast as ONNX Runtime** (medians, same run) | | | |");
            Console.WriteLine(summary);
            sb.Append(summary).Append('\n');
        }
        Directory.CreateDirectory(outDir);
        var path = Path.Combine(outDir, "sw_tiny.md");
        File.WriteAllText(path + ".tmp", sb.ToString());
        File.Move(path + ".tmp", path, overwrite: true);
        Console.WriteLine($"wrote {path}");
        return 0;
    }
}
