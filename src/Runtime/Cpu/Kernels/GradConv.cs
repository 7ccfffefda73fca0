using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>Grad kernels of conv2d, shift_add and linear.</summary>
internal static class ConvGradKernels
{
    /// <summary>A kernel for a grad node of one of these ops.</summary>
    public static CpuKernel Create(KernelRequest r, Grad g) => g.Of switch
    {
        _ => new ReferenceGradKernel(r),
    };
}
