using ShiftWise.IR;
using ShiftWise.Passes.Lowering;
using ShiftWise.Runtime.Tune;

namespace ShiftWise.Runtime.Compile;

/// <summary>
/// Where a compiled model runs. Adding a target means filling these slots (and one line of
/// <see cref="Driver.Target"/>):
/// the pipeline it compiles with, its SW kernels' tunables, defaults and search space, the tuned configurations it
/// reads, how it lowers an optimised graph to its plan, and how it binds a plan to an executor.
/// </summary>
public interface ITarget
{
    /// <summary>The name on the command line: cpu, cuda, reference.</summary>
    string Name { get; }

    /// <summary>Where it runs, for reports: "cpu", or the GPU's name and arch.</summary>
    string Device { get; }

    /// <summary>The pass pipeline a model is compiled with for this target.</summary>
    string Pipeline { get; }

    /// <summary>
    /// How it stores and multiplies tensors (--precision): bf16 and fp16 add the 16-bit storage pass to the pipeline,
    /// tf32 lets the GEMMs use TF32 tensor cores. Float32 unless the target says otherwise.
    /// </summary>
    Precision Precision => Precision.Fp32;

    /// <summary>The tunables, defaults and search space of its SW layer kernels (null: it has none).</summary>
    ISwTunables? Tunables { get; }

    /// <summary>
    /// Throws the one-sentence reason (an <see cref="IrException"/>) when this machine cannot run the target, before
    /// any work.
    /// </summary>
    void Require();

    /// <summary>
    /// This device's tuned configurations (<paramref name="cache"/> false: the defaults, no cache read).
    /// </summary>
    KernelTuning? Tuning(bool cache, Action<string>? log);

    /// <summary>
    /// This device's tuner with a budget of <paramref name="seconds"/> (null: the target has nothing to tune);
    /// <paramref name="force"/> measures again what the cache has.
    /// </summary>
    ITuner? Tuner(double seconds, bool force, Action<string>? log, Action<TuneStatus>? progress);

    /// <summary>Lowers an optimised graph: which kernel runs each node, in which configuration.</summary>
    TargetPlan Lower(Graph graph, IReadOnlyDictionary<string, Tensor> weights, KernelTuning? tuning);

    /// <summary>Binds a plan of this target: compiles or loads its kernels and places its weights.</summary>
    IExecutor Bind(TargetPlan plan, Action<string>? log);
}

/// <summary>A target's plan for an optimised graph and its weights.</summary>
/// <param name="Graph">The optimised graph.</param>
/// <param name="Weights">Its parameters.</param>
public abstract record TargetPlan(Graph Graph, IReadOnlyDictionary<string, Tensor> Weights)
{
    /// <summary>What the plan holds, for reports ("N nodes", "N kernels, M steps").</summary>
    public abstract string Summary { get; }
}

/// <summary>A bound plan that runs.</summary>
public interface IExecutor : IDisposable
{
    /// <summary>The graph it runs.</summary>
    Graph Graph { get; }

    /// <summary>
    /// Checks every node's outputs and stops at the first NaN or infinity with a <see cref="NonFiniteException"/>
    /// naming the node (targets that compute in float32).
    /// </summary>
    bool CheckFinite { get; set; }

    /// <summary>Runs once; returns the graph outputs as new host tensors.</summary>
    Dictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs);

    /// <summary>
    /// Where each kernel this executor generated came from when it was bound (the process's memory, the disk cache, or
    /// compiled now); empty for an executor that generates none (the reference).
    /// </summary>
    IReadOnlyList<CacheOutcome> KernelOutcomes => [];
}
