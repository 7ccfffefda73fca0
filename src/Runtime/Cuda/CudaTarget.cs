using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.Passes.Lowering;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Tune;

namespace ShiftWise.Runtime.Cuda;

/// <summary>The CUDA target: a <see cref="CudaPlan"/> of generated kernels and cuBLAS calls, run on GPU 0.</summary>
/// <param name="Run">How the executor runs (TF32 GEMMs, CUDA graph replay).</param>
/// <param name="Codegen">Code generation options (explicit tunables per node, test mutations).</param>
/// <param name="Arch">The arch lowered for (null: GPU 0's).</param>
/// <param name="Precision">Storage and GEMM arithmetic: bf16 / fp16 storage (the pipeline's 16-bit pass), tf32
/// GEMMs (the executor's TF32 math mode), fp32.</param>
public sealed record CudaTarget(CudaRunOptions? Run = null, CudaOptions? Codegen = null, string? Arch = null,
    Precision Precision = Precision.Fp32) : ITarget
{
    /// <inheritdoc/>
    public string Name => "cuda";

    /// <inheritdoc/>
    public string Device => $"{CudaDevice.Info.Name} ({CudaDevice.Info.Arch})";

    /// <inheritdoc/>
    public string Pipeline => "inference";

    /// <inheritdoc/>
    public ISwTunables Tunables => SwCudaTunables.Instance;

    /// <inheritdoc/>
    public void Require()
    {
        if (!CudaDevice.Available) throw new IrException(CudaDevice.MissingReason!);
        if (!NvrtcCompiler.Available) throw new IrException(NvrtcCompiler.MissingReason);
    }

    /// <inheritdoc/>
    public KernelTuning Tuning(bool cache, Action<string>? log) =>
        cache ? CudaTuning.FromCache(log) : CudaTuning.Off;

    /// <inheritdoc/>
    public ITuner Tuner(double seconds, bool force, Action<string>? log, Action<TuneStatus>? progress) =>
        new CudaTuner(seconds, log, progress) { Force = force };

    /// <inheritdoc/>
    public TargetPlan Lower(Graph graph, IReadOnlyDictionary<string, Tensor> weights, KernelTuning? tuning) =>
        new CudaTargetPlan(graph, weights, CudaCodegen.Lower(graph, (Codegen ?? new CudaOptions()) with
        {
            Arch = Arch ?? CudaDevice.Info.Arch,
            Tuned = tuning is null ? null : tuning.For,
        }));

    /// <inheritdoc/>
    public IExecutor Bind(TargetPlan plan, Action<string>? log)
    {
        var p = (CudaTargetPlan)plan;
        var run = Run ?? new CudaRunOptions();
        return new CudaExecutor(p.Plan, p.Graph, p.Weights, run with { Tf32 = run.Tf32 || Precision == Precision.Tf32 },
            log);
    }
}

/// <summary>The CUDA target's plan: the graph, its weights and the lowered <see cref="CudaPlan"/>.</summary>
public sealed record CudaTargetPlan(Graph Graph, IReadOnlyDictionary<string, Tensor> Weights, CudaPlan Plan)
    : TargetPlan(Graph, Weights)
{
    /// <inheritdoc/>
    public override string Summary => $"{Plan.Kernels.Count} kernels, {Plan.Steps.Count} steps";
}
