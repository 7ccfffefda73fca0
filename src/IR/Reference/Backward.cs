using ShiftWise.IR.Ops;

namespace ShiftWise.IR.Reference;

/// <summary>
/// The backward rule of every op, in float64: given the op's inputs, its outputs and the gradients of a scalar loss
/// with respect to the outputs (null: that output does not reach the loss), the gradients with respect to each input
/// (null for inputs that are not differentiable: integer labels, running statistics). This defines what a backward
/// graph and every target's backward kernels compute; tests check each rule against central finite differences.
/// Training-mode semantics are the ops' own (BatchNorm in Train mode uses batch statistics; DropPath in Train mode
/// applies its seeded mask).
/// </summary>
public static class Backward
{
    /// <summary>The input gradients of <paramref name="op"/>.</summary>
    public static Tensor?[] Vjp(Op op, IReadOnlyList<Tensor> inputs, IReadOnlyList<Tensor> outputs,
        IReadOnlyList<Tensor?> gradOutputs)
    {
        if (gradOutputs.Count != outputs.Count)
        {
            throw new IrException($"{op.Name}: {gradOutputs.Count} output gradients for {outputs.Count} outputs");
        }
        var xs = inputs.Select(t => new Arr(t.Shape, t.ToDoubles())).ToArray();
        var ys = outputs.Select(t => new Arr(t.Shape, t.ToDoubles())).ToArray();
        var gs = gradOutputs.Select((t, i) => t is null ? null : t.Shape.Equals(outputs[i].Shape)
            ? t.ToDoubles()
            : throw new IrException($"{op.Name}: gradient of output {i} has shape {t.Shape}, the output "
                + $"{outputs[i].Shape}")).ToArray();
        double[]?[] g = op switch
        {
            Conv2d or ShiftAdd or SwCross or FusedShiftWise or Gemm or Linear => ConvBackward.Vjp(op, xs, ys, gs),
            BatchNorm or LayerNorm or Grn or Unary or Binary or Mean or Softmax or CrossEntropy or DropPath
                or ChannelSelect or Concat or Permute or Reshape or Cast or ScaleBias
                => ElementBackward.Vjp(op, xs, ys, gs),
            GemmGrnFold => throw new IrException($"no backward rule for op '{op.Name}': it is an inference-only fusion "
                + "(the fold-grn-apply pass); differentiate the graph before the inference pipeline, where it is a "
                + "gemm with GRN and the gemm that consumes it"),
            _ => throw new IrException($"no backward rule for op '{op.Name}'"),
        };
        if (g.Length != inputs.Count)
        {
            throw new IrException($"{op.Name}: backward gave {g.Length} gradients for {inputs.Count} inputs");
        }
        return g.Select((d, i) => d is null ? null : Tensor.FromDoubles(new TensorType(DType.F64, inputs[i].Shape), d))
            .ToArray();
    }
}
