namespace ShiftWise.CodegenCuda;

/// <summary>CUDA lowering of reduce nodes.</summary>
internal static class ReduceLowering
{
    /// <summary>Adds the node's kernels and steps.</summary>
    public static void Lower(NodeLowering ctx) =>
        throw new ShiftWise.IR.IrException($"{ctx.Node.Describe()}: not yet lowered for CUDA");
}
