using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>Grad kernels of the norms, element-wise, reduction and layout ops.</summary>
internal static class ElementGradKernels
{
    /// <summary>A kernel for a grad node of one of these ops.</summary>
    public static CpuKernel Create(KernelRequest r, Grad g) => g.Of switch
    {
        _ => new ReferenceGradKernel(r),
    };
}
