using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>
/// The one table from ops to managed CPU kernels (no reflection). gemm and linear share <see cref="GemmKernel"/>;
/// SW layers get the factorised fallback here, and the executor prefers the generated cross kernel where it applies.
/// Kernels keep their scratch and per-run state in the instance: one <see cref="CpuKernel.Run"/> at a time each.
/// </summary>
public static class KernelTable
{
    /// <summary>
    /// A kernel bound to the request's node. Throws an <see cref="IrException"/> naming the node for an op without
    /// a CPU kernel, and for what a kernel refuses (non-f32 types).
    /// </summary>
    public static CpuKernel Create(KernelRequest r) => r.Node.Op switch
    {
        Conv2d => new Conv2dKernel(r),
        ShiftAdd => new ShiftAddKernel(r),
        BatchNorm => new BatchNormKernel(r),
        LayerNorm => new LayerNormKernel(r),
        Grn => new GrnKernel(r),
        Linear => new GemmKernel(r),
        Gemm => new GemmKernel(r),
        GemmGrnFold => new GemmGrnFoldKernel(r),
        Unary => new UnaryKernel(r),
        Binary => new BinaryKernel(r),
        Mean => new MeanKernel(r),
        Softmax => new SoftmaxKernel(r),
        CrossEntropy => new CrossEntropyKernel(r),
        DropPath => new DropPathKernel(r),
        ChannelSelect => new ChannelSelectKernel(r),
        Concat => new ConcatKernel(r),
        Permute => new PermuteKernel(r),
        Reshape => new ReshapeKernel(r),
        ScaleBias => new ScaleBiasKernel(r),
        SwCross => new GenericSwLayerKernel(r),
        FusedShiftWise => new GenericFusedShiftWiseKernel(r),
        Grad => GradKernels.Create(r),
        Cast => throw new IrException($"{r.Node.Describe()}: the CPU target has no kernel for op 'cast': it computes "
            + "in float32 only (16-bit storage, --precision bf16 or fp16, runs on --device cuda)"),
        _ => throw new IrException($"{r.Node.Describe()}: the CPU target has no kernel for op '{r.Node.Op.Name}'"),
    };
}
