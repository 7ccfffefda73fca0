using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.Runtime.Native;

namespace ShiftWise.Runtime.Cuda;

// Access to the executor's values (reads and writes for step-by-step checks and checkpoints) and what the GPU trainer
// (CudaTrainer) does on the executor's stream besides the plan's steps: addresses of values, launches of the
// optimizer kernels, device-to-device copies and zero fills.
public sealed unsafe partial class CudaExecutor
{
    /// <summary>
    /// Copies any value of the graph out as float32 (16-bit values widened exactly; after <see cref="Synchronize"/>;
    /// arena slots are reused, so only a value still live holds its data).
    /// </summary>
    public Tensor ReadValue(string v)
    {
        var t = Tensor.Zeros(_types[v]);
        var bytes = t.Bytes();
        var (buf, off) = Value(v);
        CudaDevice.MakeCurrent();
        fixed (byte* p = bytes)
        {
            CudaDevice.Check(CudaDriver.MemcpyDtoH(p, buf + (ulong)off, (nuint)bytes.Length), "cuMemcpyDtoH of " + v);
        }
        return t.Cast(DType.F32);
    }

    /// <summary>
    /// Overwrites a value of the graph on the device, converted to its type (a step-by-step check feeds each step
    /// exact inputs).
    /// </summary>
    public void WriteValue(string v, Tensor t)
    {
        if (!t.Shape.Equals(_types[v].Shape))
        {
            throw new IrException($"value %{v} has shape {_types[v].Shape}, got {t.Shape}");
        }
        var bytes = t.Cast(_types[v].DType).Bytes();
        var (buf, off) = Value(v);
        CudaDevice.MakeCurrent();
        fixed (byte* p = bytes)
        {
            CudaDevice.Check(CudaDriver.MemcpyHtoD(buf + (ulong)off, p, (nuint)bytes.Length), "cuMemcpyHtoD of " + v);
        }
    }

    /// <summary>The stream every step runs on.</summary>
    public IntPtr Stream => _stream;

    /// <summary>The device address of a value of the graph (an input, a parameter or an arena slot).</summary>
    public ulong Address(string v)
    {
        var (b, off) = Value(v);
        return b + (ulong)off;
    }

    /// <summary>
    /// Launches an entry of one of the plan's kernels on the stream with pointer arguments (the trainer's optimizer).
    /// </summary>
    public void Launch(string entry, Dim3 grid, Dim3 block, params ulong[] args)
    {
        if (!_functions.TryGetValue(entry, out var f)) throw new IrException($"the plan has no kernel entry {entry}");
        CudaDevice.MakeCurrent();
        var vals = stackalloc ulong[Math.Max(1, args.Length)];
        var ptrs = stackalloc IntPtr[Math.Max(1, args.Length)];
        for (int i = 0; i < args.Length; i++)
        {
            vals[i] = args[i];
            ptrs[i] = (IntPtr)(vals + i);
        }
        CudaDevice.Check(CudaDriver.LaunchKernel(f, (uint)grid.X, (uint)grid.Y, (uint)grid.Z, (uint)block.X,
            (uint)block.Y, (uint)block.Z, 0, _stream, ptrs, null), "launch of " + entry);
    }

    /// <summary>Copies <paramref name="floats"/> floats from one device address to another on the stream.</summary>
    public void Copy(ulong dst, ulong src, long floats)
    {
        if (floats == 0) return;
        CudaDevice.MakeCurrent();
        CudaDevice.Check(CudaDriver.MemcpyDtoDAsync(dst, src, (nuint)(floats * 4), _stream), "cuMemcpyDtoDAsync");
    }

    /// <summary>Sets <paramref name="floats"/> floats at a device address to zero on the stream.</summary>
    public void Zero(ulong dst, long floats)
    {
        if (floats == 0) return;
        CudaDevice.MakeCurrent();
        CudaDevice.Check(CudaDriver.MemsetD32Async(dst, 0, (nuint)floats, _stream), "cuMemsetD32Async");
    }
}
