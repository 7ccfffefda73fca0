namespace ShiftWise.CodegenCuda;

/// <summary>CUDA lowering of elementwise nodes.</summary>
internal static class ElementwiseLowering
{
    /// <summary>Adds the node's kernels and steps.</summary>
    public static void Lower(NodeLowering ctx) =>
        throw new ShiftWise.IR.IrException($"{ctx.Node.Describe()}: not yet lowered for CUDA");
}
