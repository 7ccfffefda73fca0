using System.Diagnostics;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.Passes;
using ShiftWise.Passes.Lowering;
using ShiftWise.Runtime.Cpu;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Runtime.Reference;
using ShiftWise.Runtime.Tune;

namespace ShiftWise.Runtime.Compile;

/// <summary>How <see cref="Driver.Compile"/> compiles.</summary>
public sealed record CompileOptions
{
    /// <summary>The pass pipeline (null: the target's).</summary>
    public string? Pipeline { get; init; }

    /// <summary>Pass options (disabled passes, IR dumps).</summary>
    public PassOptions? Passes { get; init; }

    /// <summary>Read the device's tuning cache (false: the cost-model defaults, no cache read).</summary>
    public bool TuningCache { get; init; }

    /// <summary>Tuned configurations given outright (over <see cref="TuningCache"/>).</summary>
    public KernelTuning? Tuning { get; init; }

    /// <summary>The loss the training pipeline differentiates (null: output 0).</summary>
    public string? Loss { get; init; }

    /// <summary>
    /// Look up the pipeline's result in the optimised-graph cache (<see cref="Runtime.Compile.GraphCache"/>) and
    /// store it there after a miss; SWC_GRAPH_CACHE=0 overrides, and IR dumps (<see cref="PassOptions.DumpDir"/>)
    /// always run the pipeline. On for swc run and bench.
    /// </summary>
    public bool GraphCache { get; init; }
}

/// <summary>A graph after a pass pipeline: its weights (after folding), what each pass did, and the time.</summary>
public sealed record OptimizedGraph(Graph Graph, IReadOnlyDictionary<string, Tensor> Weights,
    IReadOnlyList<PassRecord> Records, TimeSpan Time)
{
    /// <summary>Read from the optimised-graph cache (the records are those of the run that stored it).</summary>
    public bool FromCache { get; init; }
}

/// <summary>
/// The one way from a model to something that runs: a model, its weights, a target, a pipeline and a tuning choice go
/// in; a <see cref="CompiledModel"/> with its report comes out. It is the only code that starts a pass pipeline;
/// every command (run, bench, tune, compile, emit, demo, grad, train) and the bench program come through here.
/// </summary>
public static partial class Driver
{
    // weights above which a compile collects the garbage of the load and the pipeline before binding
    private const long LargeModelBytes = 16L << 20;

    /// <summary>The targets by name, as --device takes them.</summary>
    public static IReadOnlyList<string> TargetNames { get; } = ["cpu", "cuda", "reference"];

    /// <summary>The pass pipelines by name.</summary>
    public static IReadOnlyList<string> PipelineNames => Pipelines.Names;

    /// <summary>
    /// A target by its --device name, with the CUDA executor's options; <paramref name="generated"/> false runs the
    /// CPU's SW layers on the managed kernels (the unoptimised baseline).
    /// </summary>
    public static ITarget Target(string name, CudaRunOptions? cuda = null, bool generated = true,
        Precision precision = Precision.Fp32) => name switch
    {
        "cpu" when precision != Precision.Fp32 => throw new OptionException($"option --precision: "
            + $"{precision.Name()} needs --device cuda (or reference, which rounds what it stores to 16 bits); the CPU "
            + "target computes in fp32 only"),
        "cpu" => new CpuTarget(generated),
        "cuda" => new CudaTarget(cuda, Precision: precision),
        "reference" => new ReferenceTarget(precision),
        _ => throw new IrException($"unknown target '{name}' ({string.Join(", ", TargetNames)})"),
    };

    /// <summary>Loads a model (a zoo name, a .swir file) with its weights (or without: inspect).</summary>
    public static LoadedModel Load(string model, ModelArgs args, bool withWeights = true)
    {
        PhaseTrace.Mark("load");
        var m = ModelSource.Load(model, args, withWeights);
        PhaseTrace.Mark("loaded");
        return m;
    }

    /// <summary>Runs a pass pipeline over a graph and its weights (the caller's weights are not changed).</summary>
    public static OptimizedGraph Optimize(Graph graph, IReadOnlyDictionary<string, Tensor> weights, string pipeline,
        PassOptions? options = null, Action<PassRecord>? progress = null, string? loss = null,
        Precision precision = Precision.Fp32)
    {
        var sw = Stopwatch.StartNew();
        var ctx = new PassContext(graph, weights) { Loss = loss };
        var records = new PassManager(Pipelines.Get(pipeline, precision), options).Run(ctx, progress);
        return new OptimizedGraph(ctx.Graph, ctx.Weights, records, sw.Elapsed);
    }

    /// <summary>
    /// Compiles a model for a target: checks the target can run here, runs the pipeline, reads the tuning, lowers and
    /// binds.
    /// </summary>
    public static CompiledModel Compile(LoadedModel m, ITarget target, CompileOptions? options = null,
        Action<string>? log = null)
    {
        options ??= new CompileOptions();
        PhaseTrace.Mark("compile start");
        target.Require();
        foreach (var w in m.Warnings) log?.Invoke(w);
        var pipeline = options.Pipeline ?? target.Pipeline;
        var opt = options.GraphCache && Runtime.Compile.GraphCache.Enabled && options.Passes?.DumpDir is null
            ? Runtime.Compile.GraphCache.GetOrOptimize(m, pipeline, options.Passes, options.Loss, target.Precision, log)
            : Optimize(m.Graph, m.Weights, pipeline, options.Passes, loss: options.Loss, precision: target.Precision);
        // the load and the pipeline (or the cache read) of a large model leave large temporaries behind: collect them
        // before the executor allocates, so that the peak is the model and its weights, not their garbage (issue 24)
        PhaseTrace.Mark("optimised graph");
        if (opt.Weights.Values.Sum(t => t.Length * t.DType.Size()) > LargeModelBytes) GC.Collect();
        PhaseTrace.Mark("gc");
        var sw = Stopwatch.StartNew();
        var tuning = options.Tuning ?? target.Tuning(options.TuningCache, log);
        PhaseTrace.Mark("tuning");
        var plan = target.Lower(opt.Graph, opt.Weights, tuning);
        PhaseTrace.Mark("lowered");
        var exec = target.Bind(plan, log);
        PhaseTrace.Mark("bound");
        return new CompiledModel(m, target, opt, plan, exec, tuning, sw.Elapsed);
    }

    /// <summary>
    /// Compiles a model's training form for the CPU with the training pipeline (its autodiff differentiates the loss
    /// the model names) and binds a trainer to it. SW layers run on the managed kernels, which have backward rules.
    /// </summary>
    public static Train.CpuTrainer CompileTraining(LoadedModel m, Action<string>? log = null)
    {
        var roles = m.Training ?? throw new IrException($"graph '{m.Graph.Name}' is not a training form (its model "
            + "names no loss and labels)");
        var cm = Compile(m, new CpuTarget(Generated: false), new CompileOptions { Pipeline = "training",
            Loss = roles.Loss }, log);
        return new Train.CpuTrainer(cm, roles, log);
    }

    /// <summary>
    /// A trainer of a model's training form with its optimizer on a target: on "cpu" the CPU trainer and optimizer, on
    /// "cuda" the training plan (<see cref="CudaTrainingPlan"/>) bound to GPU 0 with the optimizer on the device.
    /// </summary>
    public static Train.ITrainer CompileTraining(LoadedModel m, Train.OptimizerSettings settings, string device,
        Action<string>? log = null, Precision precision = Precision.Fp32)
    {
        switch (device)
        {
            case "cpu" when precision != Precision.Fp32:
                throw new OptionException($"option --precision: {precision.Name()} trains on --device cuda; the CPU "
                    + "target computes in fp32 only");
            case "cpu":
                return new Train.CpuTraining(CompileTraining(m, log), m.Graph, settings);
            case "cuda":
                var target = new CudaTarget();
                target.Require();
                var plan = CudaTrainingPlan.Build(m, settings, CudaDevice.Info.Arch, CudaTuning.FromCache(log), log,
                    precision);
                return new CudaTrainer(plan, new CudaRunOptions { Tf32 = precision == Precision.Tf32 }, log);
            default:
                throw new OptionException($"option --device: '{device}' cannot train; it trains on: cpu, cuda");
        }
    }

    /// <summary>
    /// The cost of every node, the SW layers in their cheapest lowering (<see cref="SwLoweringCost.Cheapest"/>).
    /// </summary>
    public static IReadOnlyList<NodeCost> Costs(Graph g) => Cost.Of(g, SwLoweringCost.Cheapest);

    /// <summary>
    /// FLOPs of one image: the SW layers counted in the lowering that runs by default (the collapsed cross).
    /// </summary>
    public static long FlopsPerImage(Graph g, int batch)
    {
        var types = g.ValueTypes();
        long total = 0;
        foreach (var c in Cost.Of(g))
        {
            total += c.Node.Op is IR.Ops.FusedShiftWise f
                ? SwLoweringCost.Of(f, types[c.Node.Inputs[0]].Shape)[0].Flops
                : c.Flops;
        }
        return total / Math.Max(1, batch);
    }
}
