using System.Diagnostics;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.Passes;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Cpu;
using ShiftWise.Runtime.Tune;

namespace ShiftWise.Runtime;

/// <summary>
/// A model compiled for a target (<see cref="Driver.Compile"/>): the pipeline's records, the optimised graph, the
/// target's plan and the executor bound to it.
/// </summary>
public sealed class CompiledModel : IDisposable
{
    internal CompiledModel(LoadedModel source, ITarget target, OptimizedGraph optimized, TargetPlan plan,
        IExecutor exec, KernelTuning? tuning, TimeSpan bindTime)
    {
        Source = source;
        Target = target;
        Graph = optimized.Graph;
        Weights = optimized.Weights;
        Records = optimized.Records;
        PassTime = optimized.Time;
        GraphFromCache = optimized.FromCache;
        Plan = plan;
        Executor = exec;
        Tuning = tuning;
        BindTime = bindTime;
    }

    /// <summary>The model as loaded.</summary>
    public LoadedModel Source { get; }

    /// <summary>The target it runs on.</summary>
    public ITarget Target { get; }

    /// <summary>The graph after the pipeline.</summary>
    public Graph Graph { get; }

    /// <summary>The parameters of <see cref="Graph"/> (after folding).</summary>
    public IReadOnlyDictionary<string, Tensor> Weights { get; }

    /// <summary>What each pass did.</summary>
    public IReadOnlyList<PassRecord> Records { get; }

    /// <summary>The target's plan.</summary>
    public TargetPlan Plan { get; }

    /// <summary>The executor bound to the plan.</summary>
    public IExecutor Executor { get; }

    /// <summary>The tuned configurations the SW kernels were lowered with (null: the target has none).</summary>
    public KernelTuning? Tuning { get; }

    /// <summary>Time in the pass pipeline (or reading its result from the optimised-graph cache).</summary>
    public TimeSpan PassTime { get; }

    /// <summary>Whether the optimised graph and its weights came from the optimised-graph cache.</summary>
    public bool GraphFromCache { get; }

    /// <summary>Time to lower and bind (rendering, compiling or the cache, weight preparation or upload).</summary>
    public TimeSpan BindTime { get; }

    /// <summary>The CPU executor (the model must be compiled for the CPU).</summary>
    public CpuExecutor Cpu => Executor as CpuExecutor
        ?? throw new InvalidOperationException($"the model is compiled for {Target.Name}, not cpu");

    /// <summary>Runs the model on one input tensor (the graph's single input).</summary>
    public Tensor Run(Tensor x) =>
        Executor.Run(new Dictionary<string, Tensor> { [Graph.Inputs[0].Name] = x })[Graph.Outputs[0]];

    /// <summary>
    /// Runs the model on one input tensor; every graph output in the graph's order (a backbone's stage features).
    /// </summary>
    public IReadOnlyList<(string Name, Tensor Value)> RunAll(Tensor x)
    {
        var all = Executor.Run(new Dictionary<string, Tensor> { [Graph.Inputs[0].Name] = x });
        return Graph.Outputs.Select(o => (o, all[o])).ToList();
    }

    /// <inheritdoc/>
    public void Dispose() => Executor.Dispose();
}

/// <summary>Timing of repeated runs: median and spread.</summary>
public sealed record BenchResult(int Runs, double MedianMs, double MinMs, double MaxMs)
{
    /// <summary>
    /// Measures <paramref name="run"/> after warm-up, until both the run count and the time budget are met.
    /// </summary>
    public static BenchResult Measure(Action run, int warmup = 2, int minRuns = 5, double minSeconds = 2)
    {
        for (int i = 0; i < warmup; i++) run();
        var times = new List<double>();
        var total = Stopwatch.StartNew();
        while (times.Count < minRuns || total.Elapsed.TotalSeconds < minSeconds)
        {
            var sw = Stopwatch.StartNew();
            run();
            times.Add(sw.Elapsed.TotalMilliseconds);
            if (times.Count >= 1000) break;
        }
        times.Sort();
        return new BenchResult(times.Count, times[times.Count / 2], times[0], times[^1]);
    }
}
