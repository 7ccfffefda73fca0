using ShiftWise.CodegenCpu;
using ShiftWise.IR;
using ShiftWise.Passes.Lowering;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Tune;

namespace ShiftWise.Runtime.Cpu;

/// <summary>The CPU target: generated SW kernels (Roslyn), managed kernels for the rest, one arena.</summary>
/// <param name="Generated">False runs SW layers on the managed fallback too (the demo's unoptimised baseline).</param>
public sealed record CpuTarget(bool Generated = true) : ITarget
{
    /// <inheritdoc/>
    public string Name => "cpu";

    /// <inheritdoc/>
    public string Device => "cpu";

    /// <inheritdoc/>
    public string Pipeline => "inference";

    /// <inheritdoc/>
    public ISwTunables Tunables => SwCpuTunables.Instance;

    /// <inheritdoc/>
    public void Require()
    {
    }

    /// <inheritdoc/>
    public KernelTuning Tuning(bool cache, Action<string>? log) => cache ? CpuTuning.FromCache(log) : CpuTuning.Off;

    /// <inheritdoc/>
    public ITuner Tuner(double seconds, bool force, Action<string>? log, Action<TuneStatus>? progress) =>
        new CpuTuner(seconds, log, progress) { Force = force };

    /// <inheritdoc/>
    public TargetPlan Lower(Graph graph, IReadOnlyDictionary<string, Tensor> weights, KernelTuning? tuning) =>
        CpuLowering.Lower(graph, weights, Generated, tuning is null ? null : tuning.For);

    /// <inheritdoc/>
    public IExecutor Bind(TargetPlan plan, Action<string>? log) => new CpuExecutor((CpuPlan)plan, log);
}
