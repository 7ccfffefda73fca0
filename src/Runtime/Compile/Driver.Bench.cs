using ShiftWise.CodegenCuda;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.Runtime.Cuda;

namespace ShiftWise.Runtime.Compile;

/// <summary>What swc bench measures.</summary>
public sealed record BenchOptions
{
    /// <summary>Minimum measuring time.</summary>
    public double Seconds { get; init; } = 3;

    /// <summary>Ignore the tuning cache (cost-model defaults).</summary>
    public bool Untuned { get; init; }

    /// <summary>Also write the result as JSON to this file.</summary>
    public string? Json { get; init; }
}

/// <summary>The time of one node's kernel (CPU) or one plan step (CUDA) in ms per run.</summary>
/// <param name="Node">The node.</param>
/// <param name="Group">What the per-kind table groups by: the op (CPU) or the step's kind (CUDA).</param>
/// <param name="Kernel">The kernel's name.</param>
/// <param name="Ms">ms per run.</param>
/// <param name="MinMs">The fastest run (CPU; 0 on CUDA, one profiled run).</param>
public sealed record KernelRow(string Node, string Group, string Kernel, double Ms, double MinMs);

/// <summary>
/// The outcome of a benchmark: the compiled model, ms per batch (median, min, max over <see cref="Samples"/>), FLOPs
/// and the per-kernel profile.
/// </summary>
public sealed record BenchReport(CompiledModel Model, int Batch, double MedianMs, double MinMs, double MaxMs,
    string Samples, long FlopsPerImage, IReadOnlyList<KernelRow> Kernels)
{
    /// <summary>GPU 0 when the target is CUDA.</summary>
    public CudaDeviceInfo? Gpu { get; init; }
}

public static partial class Driver
{
    /// <summary>
    /// Compiles and times a model on its batch of seeded random images. CPU: runs until the time budget is met
    /// (median), then a profiled pass with per-node stopwatches. CUDA: device-resident input, warm-up, rounds of
    /// back-to-back runs timed with CUDA events (median of 5 rounds), then one profiled run (events around every step).
    /// </summary>
    public static BenchReport Bench(LoadedModel m, ITarget target, BenchOptions o, Action<string>? log = null) =>
        Bench(Compile(m, target, new CompileOptions { TuningCache = !o.Untuned, GraphCache = true }, log), o);

    /// <summary>
    /// Times a compiled model as <see cref="Bench(LoadedModel, ITarget, BenchOptions, Action{string})"/> does (its
    /// <see cref="BenchOptions.Untuned"/> is the compile's business); the report holds <paramref name="cm"/>.
    /// </summary>
    public static BenchReport Bench(CompiledModel cm, BenchOptions o)
    {
        var x = ModelSource.RandomInput(cm.Graph.Inputs[0].Type, 0);
        int batch = x.Shape[0];
        BenchReport report;
        if (cm.Executor is CudaExecutor ex)
        {
            ex.SetInputs(new Dictionary<string, Tensor> { [cm.Graph.Inputs[0].Name] = x });
            ex.TimeRuns(3); // warm-up (and, with --cuda-graph, the capture)
            double one = ex.TimeRuns(1);
            int per = (int)Math.Clamp(o.Seconds * 1000 / 5 / Math.Max(one, 1e-3), 1, 100_000);
            var rounds = Enumerable.Range(0, 5).Select(_ => ex.TimeRuns(per)).Order().ToArray();
            var rows = ex.Profile().Select(t => new KernelRow(t.Step.Node, t.Kind,
                t.Step is KernelLaunch l ? l.Kernel : "cublasSgemmStridedBatched", t.Ms, 0)).ToArray();
            report = new BenchReport(cm, batch, rounds[rounds.Length / 2], rounds[0], rounds[^1],
                $"median of 5 rounds of {per}", FlopsPerImage(cm.Graph, batch), rows) { Gpu = CudaDevice.Info };
        }
        else
        {
            var res = BenchResult.Measure(() => cm.Run(x), minSeconds: o.Seconds);
            var cpu = cm.Cpu;
            cpu.Profile = true;
            BenchResult.Measure(() => cm.Run(x), warmup: 0, minRuns: 3, minSeconds: Math.Min(o.Seconds, 2));
            var rows = cpu.Times().Select(t => new KernelRow(t.Node, t.Op, t.Kernel,
                t.Total.TotalMilliseconds / Math.Max(1, t.Runs), t.Min.TotalMilliseconds)).ToArray();
            report = new BenchReport(cm, batch, res.MedianMs, res.MinMs, res.MaxMs,
                $"median of {res.Runs}", FlopsPerImage(cm.Graph, batch), rows);
        }
        if (o.Json is { } path) WriteJson(path, report);
        return report;
    }

    private static void WriteJson(string path, BenchReport r)
    {
        var cuda = (r.Model.Target as CudaTarget)?.Run ?? (r.Gpu is null ? null : new CudaRunOptions());
        double peak = r.Gpu?.Fp32Peak ?? 0;
        var o = new Dictionary<string, object?>
        {
            ["model"] = r.Model.Source.Description,
            ["batch"] = r.Batch,
            ["device"] = r.Gpu is { } g ? $"cuda ({g.Name}, {g.Arch})" : "cpu",
            ["images_per_s"] = r.Batch * 1000 / r.MedianMs,
            ["ms_per_batch"] = r.MedianMs,
            ["flops_per_image"] = r.FlopsPerImage,
            ["tflops"] = r.FlopsPerImage * r.Batch / (r.MedianMs * 1e-3) / 1e12,
            ["fp32_peak_tflops"] = peak / 1e12,
            ["cuda_graph"] = cuda?.Graphs,
            ["tf32"] = cuda is null ? null : cuda.Tf32 || r.Model.Target.Precision == Precision.Tf32,
            ["precision"] = r.Model.Target.Precision.Name(),
            ["ms_by_kind"] = r.Gpu is null ? null
                : r.Kernels.GroupBy(t => t.Group).ToDictionary(g => g.Key, g => g.Sum(t => t.Ms)),
        };
        var text = System.Text.Json.JsonSerializer.Serialize(o,
            new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
        AtomicFile.WriteText(path, text + "\n");
    }
}
