using System.Diagnostics;
using ShiftWise.CodegenCuda;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.Passes;

namespace ShiftWise.Runtime.Cuda;

/// <summary>A model compiled for the GPU: the optimised graph, its CUDA plan and the executor that runs it.</summary>
public sealed class CudaModel : IDisposable
{
    private CudaModel(LoadedModel source, Graph graph, CudaPlan plan, CudaExecutor executor, TimeSpan passTime,
        TimeSpan bindTime)
    {
        Source = source;
        Graph = graph;
        Plan = plan;
        Executor = executor;
        PassTime = passTime;
        BindTime = bindTime;
    }

    /// <summary>The parameters of <see cref="Graph"/> (after folding).</summary>
    public IReadOnlyDictionary<string, Tensor> Weights { get; private init; } = new Dictionary<string, Tensor>();

    /// <summary>The tuned configurations the plan was lowered with (null: defaults).</summary>
    public Tune.CudaTuning? Tuning { get; private init; }

    /// <summary>The model as loaded.</summary>
    public LoadedModel Source { get; }

    /// <summary>The optimised graph.</summary>
    public Graph Graph { get; }

    /// <summary>The plan.</summary>
    public CudaPlan Plan { get; }

    /// <summary>The executor.</summary>
    public CudaExecutor Executor { get; }

    /// <summary>Time of the pass pipeline.</summary>
    public TimeSpan PassTime { get; }

    /// <summary>Time to lower, compile (NVRTC or the cache), load and upload.</summary>
    public TimeSpan BindTime { get; }

    /// <summary>
    /// Runs the inference pipeline, lowers for CUDA and binds on device 0. Without a GPU: one sentence
    /// (<see cref="CudaDevice.MissingReason"/>) as an <see cref="IrException"/>, before any work.
    /// </summary>
    public static CudaModel Compile(LoadedModel m, CudaRunOptions? options = null, CudaOptions? codegen = null,
        Action<string>? log = null, Tune.CudaTuning? tuning = null)
    {
        if (!CudaDevice.Available) throw new IrException(CudaDevice.MissingReason!);
        if (!NvrtcCompiler.Available) throw new IrException(NvrtcCompiler.MissingReason);
        var sw = Stopwatch.StartNew();
        var ctx = new PassContext(m.Graph, m.Weights);
        new PassManager(Pipelines.Get("inference")).Run(ctx);
        var passes = sw.Elapsed;
        sw.Restart();
        codegen ??= new CudaOptions();
        if (tuning is not null) codegen = codegen with { Tunables = tuning.Tunables(ctx.Graph) };
        var plan = CudaCodegen.Lower(ctx.Graph, codegen with { Arch = CudaDevice.Info.Arch });
        var exec = new CudaExecutor(plan, ctx.Graph, ctx.Weights, options, log);
        return new CudaModel(m, ctx.Graph, plan, exec, passes, sw.Elapsed) { Weights = ctx.Weights, Tuning = tuning };
    }

    /// <summary>Runs one input through the model; the output is a fresh host tensor.</summary>
    public Tensor Run(Tensor x) =>
        Executor.Run(new Dictionary<string, Tensor> { [Graph.Inputs[0].Name] = x })[Graph.Outputs[0]];

    /// <inheritdoc/>
    public void Dispose() => Executor.Dispose();
}
