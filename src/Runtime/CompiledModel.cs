using System.Diagnostics;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.Passes;
using ShiftWise.Runtime.Cpu;

namespace ShiftWise.Runtime;

/// <summary>A model compiled for the CPU: the pipeline's records, the optimised graph, and a bound executor.</summary>
public sealed class CompiledModel
{
    private CompiledModel(LoadedModel source, Graph graph, IReadOnlyList<PassRecord> records, CpuExecutor exec,
        TimeSpan passTime, TimeSpan bindTime)
    {
        Source = source;
        Graph = graph;
        Records = records;
        Executor = exec;
        PassTime = passTime;
        BindTime = bindTime;
    }

    /// <summary>The model as loaded.</summary>
    public LoadedModel Source { get; }

    /// <summary>The graph after the pipeline.</summary>
    public Graph Graph { get; }

    /// <summary>What each pass did.</summary>
    public IReadOnlyList<PassRecord> Records { get; }

    /// <summary>The executor bound to the graph.</summary>
    public CpuExecutor Executor { get; }

    /// <summary>The parameters of <see cref="Graph"/> (after folding).</summary>
    public IReadOnlyDictionary<string, Tensor> Weights { get; private init; } = new Dictionary<string, Tensor>();

    /// <summary>The tuned configurations the SW kernels were bound with (null: defaults, no cache read).</summary>
    public Tune.CpuTuning? Tuning { get; private init; }

    /// <summary>Time in the pass pipeline.</summary>
    public TimeSpan PassTime { get; }

    /// <summary>Time to bind kernels (rendering, Roslyn or the cache, weight preparation).</summary>
    public TimeSpan BindTime { get; }

    /// <summary>Runs the pipeline and binds a CPU executor.</summary>
    public static CompiledModel ForCpu(LoadedModel m, string pipeline = "inference", PassOptions? options = null,
        bool generated = true, Action<string>? warn = null, Tune.CpuTuning? tuning = null)
    {
        var sw = Stopwatch.StartNew();
        var ctx = new PassContext(m.Graph, m.Weights);
        var records = new PassManager(Pipelines.Get(pipeline), options).Run(ctx);
        var passTime = sw.Elapsed;
        sw.Restart();
        var exec = new CpuExecutor(ctx.Graph, ctx.Weights, generated, warn, tuning is null ? null : tuning.For);
        return new CompiledModel(m, ctx.Graph, records, exec, passTime, sw.Elapsed)
        {
            Weights = ctx.Weights,
            Tuning = tuning,
        };
    }

    /// <summary>Runs the model on one input tensor (the graph's single input).</summary>
    public Tensor Run(Tensor x) =>
        Executor.Run(new Dictionary<string, Tensor> { [Graph.Inputs[0].Name] = x })[Graph.Outputs[0]];
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
