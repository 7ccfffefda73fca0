using ShiftWise.IR.Ops;

namespace ShiftWise.IR.Reference;

/// <summary>Backward rules (see <see cref="Backward"/>).</summary>
internal static class ElementBackward
{
    /// <summary>One gradient per input (null: not differentiable); <paramref name="gys"/> null where an output does not reach the loss.</summary>
    public static double[]?[] Vjp(Op op, Arr[] xs, Arr[] ys, double[]?[] gys) =>
        throw new IrException($"no backward rule for op '{op.Name}' yet");
}
