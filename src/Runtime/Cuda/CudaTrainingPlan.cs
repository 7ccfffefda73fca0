using ShiftWise.CodegenCuda;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Train;
using ShiftWise.Runtime.Tune;

namespace ShiftWise.Runtime.Cuda;

/// <summary>
/// Everything a training step on the GPU runs, as data (built without a GPU, so the emulator runs the same thing):
/// the training graph lowered to a <see cref="CudaPlan"/> (forward with batch statistics, loss, backward), the flat
/// layout of the trainable parameters (decaying first, <see cref="FlatParameters"/>), where each parameter's gradient
/// and each BatchNorm's updated running statistic come out, and the fused optimizer and accumulation kernels (part of
/// <see cref="Plan"/>'s kernels). After the plan's steps a step copies the running statistics into their buffers and
/// the gradients into one flat buffer; an update runs <see cref="Update"/> over the flat parameters, the (accumulated)
/// gradients and the state buffers with <see cref="Hyper"/>'s scalars.
/// </summary>
public sealed record CudaTrainingPlan(Graph Graph, IReadOnlyDictionary<string, Tensor> Weights, CudaPlan Plan,
    TrainingRoles Roles, OptimizerSettings Settings, FlatParameters Flat,
    IReadOnlyList<(string Param, string Grad)> Gradients, IReadOnlyList<(string Param, string Value)> Running,
    CudaKernelSource Update, CudaKernelSource? Accumulate)
{
    /// <summary>
    /// --precision: bf16 and fp16 train mixed (<see cref="MixedPrecision"/>: float32 master weights, optimizer state,
    /// batch norm and loss; 16-bit activations), tf32 lets the GEMMs use TF32.
    /// </summary>
    public Precision Precision { get; init; } = Precision.Fp32;

    /// <summary>
    /// fp16's unscale-and-check kernel over the flat gradients (null without loss scaling); the graph then has the
    /// input <see cref="MixedPrecision.ScaleInput"/>.
    /// </summary>
    public CudaKernelSource? Unscale { get; init; }

    /// <summary>AdamW's β₁, β₂ and ε: the CPU trainer's (torch's defaults, the recipe's).</summary>
    public const double Beta1 = 0.9, Beta2 = 0.999, Eps = 1e-8;

    /// <summary>
    /// The optimizer's state buffers in the CPU optimizer's names (exp_avg, exp_avg_sq / momentum_buffer).
    /// </summary>
    public IReadOnlyList<string> StateBuffers => Settings.Kind == "sgd"
        ? Settings.Momentum != 0 ? ["momentum_buffer"] : []
        : ["exp_avg", "exp_avg_sq"];

    /// <summary>
    /// The update kernel's scalars for optimizer step <paramref name="step"/> (1 for the first) at learning rate
    /// <paramref name="lr"/>, computed as the CPU optimizer computes them.
    /// </summary>
    public float[] Hyper(double lr, long step) => Settings.Kind == "sgd"
        ? [(float)lr, step == 1 ? 1f : 0f]
        : AdamWHyper(lr, step);

    private float[] AdamWHyper(double lr, long step)
    {
        var (decay, size, bc2) = Train.AdamW.Scalars(lr, (float)Settings.WeightDecay, Beta1, Beta2, step);
        return [decay, size, bc2];
    }

    /// <summary>
    /// Builds the plan of a model's training form: the training pipeline (autodiff of the model's loss), the CUDA
    /// lowering for <paramref name="arch"/> with <paramref name="tuning"/> (null: the cost-model defaults), and the
    /// optimizer kernels of <paramref name="settings"/>. Needs no GPU.
    /// </summary>
    public static CudaTrainingPlan Build(LoadedModel m, OptimizerSettings settings, string arch,
        KernelTuning? tuning = null, Action<string>? warn = null, Precision precision = Precision.Fp32)
    {
        var roles = m.Training ?? throw new IrException($"graph '{m.Graph.Name}' is not a training form (its model "
            + "names no loss and labels)");
        var opt = Driver.Optimize(m.Graph, m.Weights, "training", loss: roles.Loss, precision: precision);
        var g = opt.Graph;
        var values = g.ValueTypes();
        var grads = new List<(string, string)>();
        var unreached = new List<string>();
        foreach (var p in g.Params.Where(p => !p.Buffer && p.Type.DType.IsFloat()))
        {
            var gv = AutodiffBuilder.GradName(p.Name);
            if (values.ContainsKey(gv)) grads.Add((p.Name, gv));
            else unreached.Add(p.Name);
        }
        if (unreached.Count > 0)
        {
            warn?.Invoke($"warning: the loss does not depend on {string.Join(", ", unreached)}; they stay as they are");
        }
        var shapes = grads.ToDictionary(t => t.Item1, t => values[t.Item1].Shape.ToArray(), StringComparer.Ordinal);
        var decays = settings.Create(shapes);
        var flat = FlatParameters.Of(shapes.ToDictionary(kv => kv.Key, kv => kv.Value.Aggregate(1, (a, b) => a * b)),
            n => decays.WeightDecayOf(n) != 0);
        var running = g.Nodes.Where(n => n.Op is BatchNorm { Mode: Mode.Train })
            .SelectMany(n => new[] { (n.Inputs[3], n.Outputs[1]), (n.Inputs[4], n.Outputs[2]) }).ToArray();
        var update = settings.Kind == "sgd"
            ? OptimizerKernels.Sgd(flat, settings.WeightDecay, settings.Momentum)
            : OptimizerKernels.AdamW(flat, Beta1, Beta2, Eps);
        var accumulate = settings.Accumulate > 1 ? OptimizerKernels.Accumulate(flat) : null;
        var unscale = g.Inputs.Any(i => i.Name == MixedPrecision.ScaleInput) ? OptimizerKernels.Unscale(flat) : null;
        var plan = ((CudaTargetPlan)new CudaTarget(Arch: arch).Lower(g, opt.Weights, tuning)).Plan;
        var kernels = plan.Kernels.Append(update).Concat(accumulate is null ? [] : [accumulate])
            .Concat(unscale is null ? [] : [unscale]).OrderBy(k => k.Name, StringComparer.Ordinal).ToArray();
        return new CudaTrainingPlan(g, opt.Weights, plan with { Kernels = kernels }, roles, settings, flat, grads,
            running, update, accumulate) { Precision = precision, Unscale = unscale };
    }
}
