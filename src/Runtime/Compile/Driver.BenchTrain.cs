using System.Diagnostics;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Runtime.Train;

namespace ShiftWise.Runtime.Compile;

/// <summary>
/// A training step's benchmark: ms per step (forward, loss, backward, running statistics and the AdamW update,
/// synchronised), the share of each kernel kind (one profiled step) and, on a GPU, the device memory the trainer holds
/// (what cuMemGetInfo reports in use after a step, less before the trainer was built: every buffer is allocated up
/// front, so this is the peak).
/// </summary>
public sealed record TrainBenchReport(string Model, string Device, int Batch, double MedianMs, double MinMs,
    double MaxMs, int Steps, IReadOnlyDictionary<string, double> MsByKind, long? PeakBytes, int Nodes);

public static partial class Driver
{
    /// <summary>
    /// Times training steps of a model's training form on seeded random images and labels (AdamW, the recipe's
    /// settings): warm-up, then steps until <paramref name="seconds"/> have passed (at least 5), the median; then one
    /// profiled step split by kernel kind. Writes JSON to <paramref name="json"/> when given.
    /// </summary>
    public static TrainBenchReport BenchTraining(LoadedModel m, string device, double seconds, string? json,
        Action<string>? log = null, Precision precision = Precision.Fp32)
    {
        long before = device == "cuda" ? UsedDeviceBytes() : 0;
        using var t = CompileTraining(m, new OptimizerSettings("adamw", 4e-3, 0.05), device, log, precision);
        var x = ModelSource.RandomInput(m.Graph.Inputs.Single(i => i.Name == m.Training!.Input).Type, 0);
        var xf = x.ToDoubles().Select(v => (float)v).ToArray();
        int batch = x.Shape[0];
        int classes = m.Graph.ValueTypes()[m.Training!.Logits].Shape[1];
        var labels = Enumerable.Range(0, batch).Select(i => (int)((i * 7919L) % classes)).ToArray();
        xf.CopyTo(t.InputSlot(0));
        xf.CopyTo(t.InputSlot(1));
        long step = 0;
        double One()
        {
            var sw = Stopwatch.StartNew();
            int slot = (int)(step % 2);
            t.Submit(slot, labels, step);
            t.Step(slot);
            t.Update(1e-4);
            step++;
            return sw.Elapsed.TotalMilliseconds;
        }
        for (int i = 0; i < 3; i++) One();
        var times = new List<double>();
        var clock = Stopwatch.StartNew();
        while (times.Count < 5 || clock.Elapsed.TotalSeconds < seconds) times.Add(One());
        long? peak = device == "cuda" ? UsedDeviceBytes() - before : null;
        t.Profile = true;
        var profiled = Stopwatch.StartNew();
        int slot0 = (int)(step % 2);
        t.Submit(slot0, labels, step);
        t.Step(slot0);
        double stepMs = profiled.Elapsed.TotalMilliseconds;
        var upd = Stopwatch.StartNew();
        t.Update(1e-4);
        double updateMs = upd.Elapsed.TotalMilliseconds;
        var kinds = t.Times().GroupBy(k => device == "cuda" ? k.Kernel : k.Op)
            .ToDictionary(g => g.Key, g => g.Sum(k => k.Total.TotalMilliseconds), StringComparer.Ordinal);
        kinds["(update: optimizer kernel and sync)"] = updateMs;
        kinds["(outside the kernels: copies, syncs, launches)"] =
            Math.Max(0, stepMs - kinds.Where(kv => !kv.Key.StartsWith('(')).Sum(kv => kv.Value));
        times.Sort();
        var r = new TrainBenchReport(m.Description, t.Device, batch, times[times.Count / 2], times[0], times[^1],
            times.Count, kinds, peak, t.Graph.Nodes.Count);
        if (json is not null)
        {
            var o = new Dictionary<string, object?>
            {
                ["model"] = r.Model,
                ["device"] = r.Device,
                ["precision"] = precision.Name(),
                ["batch"] = r.Batch,
                ["ms_per_step"] = r.MedianMs,
                ["min_ms"] = r.MinMs,
                ["max_ms"] = r.MaxMs,
                ["steps"] = r.Steps,
                ["images_per_s"] = r.Batch * 1000 / r.MedianMs,
                ["peak_bytes"] = r.PeakBytes,
                ["ms_by_kind"] = r.MsByKind,
                ["nodes"] = r.Nodes,
            };
            AtomicFile.WriteText(json, System.Text.Json.JsonSerializer.Serialize(o,
                new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
        }
        return r;
    }

    private static long UsedDeviceBytes()
    {
        new CudaTarget().Require();
        return CudaDevice.UsedBytes();
    }
}
