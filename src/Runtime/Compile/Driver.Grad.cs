using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.IR.Reference;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Runtime.Train;

namespace ShiftWise.Runtime.Compile;

/// <summary>The loss of one batch and the gradient of every trainable parameter.</summary>
/// <param name="Loss">The loss.</param>
/// <param name="Tensors">The gradients by parameter name, and "loss" (float32 on cpu, float64 on reference).</param>
public sealed record GradResult(double Loss, Dictionary<string, Tensor> Tensors);

public static partial class Driver
{
    /// <summary>
    /// The loss and gradients of a model's training form on one batch: on "cpu" and "cuda" the training pipeline's
    /// graph on that target (one step of its <see cref="Train.ITrainer"/>), on "reference" the float64 oracle's own
    /// backward.
    /// </summary>
    public static GradResult Grad(LoadedModel m, Tensor x, int[] labels, string device, bool checkFinite = false,
        Action<string>? log = null, Precision precision = Precision.Fp32)
    {
        var roles = m.Training ?? throw new IrException($"graph '{m.Graph.Name}' is not a training form (its model "
            + "names no loss and labels)");
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        if (device == "reference")
        {
            if (precision != Precision.Fp32)
            {
                throw new OptionException($"option --precision: {precision.Name()} gradients come from --device cuda; "
                    + "the reference executor differentiates in float64");
            }
            if (checkFinite)
            {
                throw new OptionException("option --check-finite: checks the float32 kernels of --device cpu or cuda; "
                    + "the "
                    + "reference executor computes in float64");
            }
            log?.Invoke($"differentiating {m.Description} on the reference executor ({m.Graph.Nodes.Count} nodes)...");
            var inputs = new Dictionary<string, Tensor>
            {
                [roles.Input] = x.Cast(DType.F32),
                [roles.Labels] = Tensor.FromDoubles(TensorType.Of(DType.I64, labels.Length),
                    labels.Select(v => (double)v).ToArray()),
            };
            var (grads, values) = ReferenceGradients.Run(m.Graph, m.Weights, inputs, roles.Loss);
            foreach (var p in m.Graph.Params.Where(p => !p.Buffer)) result[p.Name] = grads[p.Name];
            double loss = values[roles.Loss].ToDoubles()[0];
            result["loss"] = Tensor.FromDoubles(TensorType.Of(DType.F64), [loss]);
            return new GradResult(loss, result);
        }
        if (device is not ("cpu" or "cuda"))
        {
            throw new OptionException($"option --device: '{device}' is not available for grad; it runs on: cpu, cuda, "
                + "reference");
        }
        // one step of the trainer of that target, without an update (the optimizer settings do not matter)
        using var t = CompileTraining(m, new Train.OptimizerSettings("adamw", 0, 0), device, log, precision);
        t.CheckFinite = checkFinite;
        var xf = x.ToDoubles().Select(v => (float)v).ToArray();
        double l = t.Step(xf, labels, 0);
        // fp16: the loss scale halves until no gradient overflows, as training's first steps would
        while (t is CudaTrainer { Scaler: { } scaler, Overflowed: true } ct)
        {
            scaler.Record(false);
            log?.Invoke($"fp16 gradients overflowed; loss scale now 2^{Math.ILogB(scaler.Scale)}");
            l = ct.Step(xf, labels, 0);
        }
        var types = m.Graph.ValueTypes();
        foreach (var (p, g) in t.Gradients()) result[p] = Tensor.Wrap(types[p], g);
        result["loss"] = Tensor.Wrap(TensorType.Of(DType.F32), new[] { (float)l });
        return new GradResult(l, result);
    }
}
