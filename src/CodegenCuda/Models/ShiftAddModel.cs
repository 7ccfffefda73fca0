using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// The forward of the SW shift-add (<see cref="ShiftAdd"/>, SPEC 1.5) as the gather of its equivalent formula: one
/// thread per output position (b, o, y, x) writes Y_h, Y_v and Y_i there, each the sum over the replicas g (outer)
/// and the n sub-channels j of rep channel o (inner) of the input elements its shifts select, clipped along the
/// shifted axis only. No atomics and no element written twice: the sums run in a fixed order. The adjoint of
/// <see cref="ShiftAddGradModel"/>. The tables (block indices and identity sub-channels, constant or global memory)
/// are <see cref="ShiftAddKernelModel"/>'s, all three read.
/// </summary>
public sealed class ShiftAddModel : ShiftAddKernelModel
{
    /// <summary>Builds the model for X <paramref name="x"/> (N, R·n, H+2e, W+2e), parameters yh, yv, yi, x.</summary>
    public ShiftAddModel(string name, int threads, ShiftAdd op, Shape x, KernelSignature signature)
        : base(name, "shift_add", threads, op, x, signature, true, true, true)
    {
    }

    /// <summary>Threads in all: one per output position.</summary>
    public long Work => (long)Batch * Rep * Height * Width;
}
