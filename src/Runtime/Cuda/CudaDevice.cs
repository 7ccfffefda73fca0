using System.Runtime.InteropServices;
using System.Text;
using ShiftWise.IR;
using ShiftWise.Runtime.Native;

namespace ShiftWise.Runtime.Cuda;

/// <summary>
/// A failed CUDA call: the operation and the driver's (or cuBLAS's) error name. It is not a rejected input but a fault
/// of the device or of swc's kernels (exit 70), except running out of device memory
/// (<see cref="DeviceMemoryException"/>).
/// </summary>
public sealed class CudaException(string operation, string error) : Exception($"CUDA: {operation} failed: {error}")
{
    /// <summary>What was being done.</summary>
    public string Operation { get; } = operation;

    /// <summary>The error's name, e.g. CUDA_ERROR_OUT_OF_MEMORY.</summary>
    public string Error { get; } = error;
}

/// <summary>
/// The model does not fit in the GPU's memory at this batch and image size: an input the device cannot take (exit 2),
/// with what would fit less.
/// </summary>
public sealed class DeviceMemoryException(string message) : IrException(message);

/// <summary>What the device is.</summary>
public sealed record CudaDeviceInfo(string Name, int Major, int Minor, int Multiprocessors, int MaxSharedPerBlock,
    int ClockKhz, int MemoryClockKhz, int BusWidthBits, long TotalMemory, int DriverVersion)
{
    /// <summary>The real arch to compile for, e.g. sm_90.</summary>
    public string Arch => $"sm_{Major}{Minor}";

    /// <summary>
    /// FP32 peak in FLOP/s: SMs × 128 FP32 lanes × 2 (an FMA is two FLOPs) × the SM clock. 128 lanes per SM holds
    /// for compute capability 8.6, 8.9, 9.0 and 10.x / 12.x; sm_80 (A100) has 64, which this accounts for.
    /// </summary>
    public double Fp32Peak => Multiprocessors * (Major == 8 && Minor == 0 ? 64 : 128) * 2.0 * ClockKhz * 1e3;

    /// <summary>DRAM bandwidth in bytes/s (double data rate).</summary>
    public double MemoryBandwidth => 2.0 * MemoryClockKhz * 1e3 * BusWidthBits / 8;
}

/// <summary>
/// Device 0 and its primary context, made current on the calling thread by every entry point that needs it. Absence
/// of the driver or of a device is one sentence (<see cref="MissingReason"/>), never an exception at load.
/// </summary>
public static unsafe class CudaDevice
{
    private static readonly Lazy<(CudaDeviceInfo? Info, IntPtr Ctx, string? Missing)> State = new(Open);

    /// <summary>Whether a CUDA device can be used.</summary>
    public static bool Available => State.Value.Info is not null;

    /// <summary>Why not, in one sentence (null when available).</summary>
    public static string? MissingReason => State.Value.Missing;

    /// <summary>The device (throws with <see cref="MissingReason"/> when there is none).</summary>
    public static CudaDeviceInfo Info => State.Value.Info ?? throw new IrException(MissingReason!);

    /// <summary>Makes the primary context current on this thread.</summary>
    public static void MakeCurrent()
    {
        var s = State.Value;
        if (s.Info is null) throw new IrException(s.Missing!);
        Check(CudaDriver.CtxSetCurrent(s.Ctx), "cuCtxSetCurrent");
    }

    /// <summary>Bytes of device memory in use now (the device's total less cuMemGetInfo's free).</summary>
    public static long UsedBytes()
    {
        MakeCurrent();
        Check(CudaDriver.MemGetInfo(out var free, out var total), "cuMemGetInfo");
        return (long)total - (long)free;
    }

    /// <summary>
    /// Throws a <see cref="CudaException"/> naming the error when <paramref name="result"/> is not success.
    /// </summary>
    public static void Check(int result, string operation)
    {
        if (result != 0) throw new CudaException(operation, ErrorName(result));
    }

    /// <summary>The driver's name of an error code.</summary>
    public static string ErrorName(int result) =>
        CudaDriver.GetErrorName(result, out var p) == 0 && Marshal.PtrToStringUTF8(p) is { } s ? s
            : $"CUDA error {result}";

    private static (CudaDeviceInfo?, IntPtr, string?) Open()
    {
        if (!CudaDriver.Library.Found)
        {
            return (null, IntPtr.Zero, CudaDriver.Library.Missing("There is no GPU to run on here."));
        }
        int r = CudaDriver.Init(0);
        if (r != 0)
        {
            return (null, IntPtr.Zero,
                $"The CUDA driver is installed but cuInit failed ({ErrorName(r)}): no usable GPU here.");
        }
        if (CudaDriver.DeviceGetCount(out int count) != 0 || count == 0)
        {
            return (null, IntPtr.Zero, "The CUDA driver is installed but reports no GPU.");
        }
        Check(CudaDriver.DeviceGet(out int dev, 0), "cuDeviceGet");
        var name = new byte[256];
        fixed (byte* p = name) Check(CudaDriver.DeviceGetName(p, name.Length, dev), "cuDeviceGetName");
        int Attr(int a)
        {
            Check(CudaDriver.DeviceGetAttribute(out int v, a, dev), $"cuDeviceGetAttribute({a})");
            return v;
        }
        // clocks and bus width: deprecated attributes that newer drivers may refuse; 0 means unknown
        int Optional(int a) => CudaDriver.DeviceGetAttribute(out int v, a, dev) == 0 ? v : 0;
        Check(CudaDriver.DeviceTotalMem(out nuint mem, dev), "cuDeviceTotalMem");
        Check(CudaDriver.DriverGetVersion(out int ver), "cuDriverGetVersion");
        var info = new CudaDeviceInfo(Encoding.UTF8.GetString(name).TrimEnd('\0'), Attr(CudaDriver.AttrCcMajor),
            Attr(CudaDriver.AttrCcMinor), Attr(CudaDriver.AttrMultiprocessors), Attr(CudaDriver.AttrMaxSharedPerBlock),
            Optional(CudaDriver.AttrClockRateKhz), Optional(CudaDriver.AttrMemoryClockKhz),
            Optional(CudaDriver.AttrBusWidthBits), (long)mem, ver);
        Check(CudaDriver.DevicePrimaryCtxRetain(out var ctx, dev), "cuDevicePrimaryCtxRetain");
        return (info, ctx, null);
    }
}

/// <summary>Device memory owned by a SafeHandle (freed with the primary context made current).</summary>
public sealed class DeviceBuffer : SafeHandle
{
    private DeviceBuffer() : base(IntPtr.Zero, ownsHandle: true)
    {
    }

    /// <summary>
    /// Allocates <paramref name="bytes"/> bytes (at least 4) for <paramref name="what"/> (named in errors).
    /// </summary>
    public static DeviceBuffer Alloc(long bytes, string what)
    {
        CudaDevice.MakeCurrent();
        var b = new DeviceBuffer { Bytes = Math.Max(4, bytes) };
        int r = CudaDriver.MemAlloc(out ulong p, (nuint)b.Bytes);
        if (r == 2)  // CUDA_ERROR_OUT_OF_MEMORY
        {
            var info = CudaDevice.Info;
            throw new DeviceMemoryException($"CUDA: cuMemAlloc of {b.Bytes} bytes ({b.Bytes / 1048576.0:F0} MiB) "
                + $"for {what} failed: CUDA_ERROR_OUT_OF_MEMORY: out of device memory on {info.Name} "
                + $"({info.TotalMemory / 1048576.0:F0} MiB in all); a smaller --batch (or --image-size) needs less");
        }
        CudaDevice.Check(r, $"cuMemAlloc of {b.Bytes} bytes for {what}");
        b.SetHandle((IntPtr)(long)p);
        return b;
    }

    /// <summary>Size in bytes.</summary>
    public long Bytes { get; private init; }

    /// <summary>The device address.</summary>
    public ulong Ptr => (ulong)(long)handle;

    /// <inheritdoc/>
    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>Copies host floats in (synchronous).</summary>
    public unsafe void Upload(ReadOnlySpan<float> data, long offsetFloats = 0)
    {
        if ((offsetFloats + data.Length) * 4 > Bytes) throw new ArgumentOutOfRangeException(nameof(data));
        CudaDevice.MakeCurrent();
        fixed (float* p = data) CudaDevice.Check(CudaDriver.MemcpyHtoD(Ptr + (ulong)(offsetFloats * 4), p,
            (nuint)(data.Length * 4)), "cuMemcpyHtoD");
    }

    /// <summary>Copies floats out (synchronous).</summary>
    public unsafe void Download(Span<float> data, long offsetFloats = 0)
    {
        if ((offsetFloats + data.Length) * 4 > Bytes) throw new ArgumentOutOfRangeException(nameof(data));
        CudaDevice.MakeCurrent();
        fixed (float* p = data) CudaDevice.Check(CudaDriver.MemcpyDtoH(p, Ptr + (ulong)(offsetFloats * 4),
            (nuint)(data.Length * 4)), "cuMemcpyDtoH");
    }

    /// <summary>Copies host bytes in at a byte offset (synchronous): tensors of any element type.</summary>
    public unsafe void UploadBytes(ReadOnlySpan<byte> data, long offsetBytes = 0)
    {
        if (offsetBytes + data.Length > Bytes) throw new ArgumentOutOfRangeException(nameof(data));
        CudaDevice.MakeCurrent();
        fixed (byte* p = data) CudaDevice.Check(CudaDriver.MemcpyHtoD(Ptr + (ulong)offsetBytes, p,
            (nuint)data.Length), "cuMemcpyHtoD");
    }

    /// <summary>Sets every 32-bit word to <paramref name="bits"/> (0x7FC00000 fills with NaN).</summary>
    public void Fill(uint bits)
    {
        CudaDevice.MakeCurrent();
        CudaDevice.Check(CudaDriver.MemsetD32(Ptr, bits, (nuint)(Bytes / 4)), "cuMemsetD32");
    }

    /// <inheritdoc/>
    protected override bool ReleaseHandle()
    {
        CudaDevice.MakeCurrent();
        return CudaDriver.MemFree(Ptr) == 0;
    }
}

/// <summary>
/// A CUDA driver or cuBLAS handle (module, stream, event, graph, graph instance, cuBLAS context) owned by a SafeHandle:
/// released exactly once, with the primary context made current, even when its owner is never disposed.
/// </summary>
public sealed class CudaHandle : SafeHandle
{
    private readonly Func<IntPtr, int> _release;

    private CudaHandle(IntPtr h, string kind, Func<IntPtr, int> release) : base(IntPtr.Zero, ownsHandle: true)
    {
        Kind = kind;
        _release = release;
        SetHandle(h);
    }

    /// <summary>What it is ("stream", "module ..."), for messages.</summary>
    public string Kind { get; }

    /// <summary>The raw handle for driver calls.</summary>
    public IntPtr Raw => handle;

    /// <inheritdoc/>
    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>
    /// A new stream (blocking with respect to the legacy default stream, so synchronous copies stay ordered).
    /// </summary>
    public static CudaHandle Stream()
    {
        CudaDevice.MakeCurrent();
        CudaDevice.Check(CudaDriver.StreamCreate(out var s, 0), "cuStreamCreate");
        return new CudaHandle(s, "stream", CudaDriver.StreamDestroy);
    }

    /// <summary>A new timing event.</summary>
    public static CudaHandle Event()
    {
        CudaDevice.MakeCurrent();
        CudaDevice.Check(CudaDriver.EventCreate(out var e, 0), "cuEventCreate");
        return new CudaHandle(e, "event", CudaDriver.EventDestroy);
    }

    /// <summary>A module loaded from a CUBIN or PTX image (<paramref name="name"/> in errors).</summary>
    public static unsafe CudaHandle Module(byte[] image, string name)
    {
        CudaDevice.MakeCurrent();
        IntPtr m;
        fixed (byte* p = image) CudaDevice.Check(CudaDriver.ModuleLoadData(out m, p), $"cuModuleLoadData of {name}");
        return new CudaHandle(m, "module " + name, CudaDriver.ModuleUnload);
    }

    /// <summary>
    /// Page-locked host memory of <paramref name="bytes"/> bytes for <paramref name="what"/> (asynchronous copies read
    /// it while the host goes on).
    /// </summary>
    public static CudaHandle PinnedHost(long bytes, string what)
    {
        CudaDevice.MakeCurrent();
        CudaDevice.Check(CudaDriver.MemAllocHost(out var h, (nuint)Math.Max(4, bytes)),
            $"cuMemAllocHost of {bytes} bytes for {what}");
        return new CudaHandle(h, "pinned " + what, CudaDriver.MemFreeHost);
    }

    /// <summary>A stream that does not synchronise with the legacy default stream (input copies).</summary>
    public static CudaHandle NonBlockingStream()
    {
        CudaDevice.MakeCurrent();
        CudaDevice.Check(CudaDriver.StreamCreate(out var s, 1), "cuStreamCreate (non-blocking)");
        return new CudaHandle(s, "stream", CudaDriver.StreamDestroy);
    }

    /// <summary>A cuBLAS context.</summary>
    public static CudaHandle Cublas()
    {
        CudaDevice.MakeCurrent();
        int r = CublasApi.Create(out var h);
        if (r != 0) throw new CudaException("cublasCreate", $"cuBLAS status {r}");
        return new CudaHandle(h, "cuBLAS context", CublasApi.Destroy);
    }

    /// <summary>A captured graph (owned).</summary>
    public static CudaHandle Graph(IntPtr g) => new(g, "graph", CudaDriver.GraphDestroy);

    /// <summary>An instantiated graph of <paramref name="graph"/>.</summary>
    public static CudaHandle GraphExec(CudaHandle graph)
    {
        CudaDevice.MakeCurrent();
        CudaDevice.Check(CudaDriver.GraphInstantiateWithFlags(out var e, graph.Raw, 0), "cuGraphInstantiate");
        return new CudaHandle(e, "graph instance", CudaDriver.GraphExecDestroy);
    }

    /// <inheritdoc/>
    protected override bool ReleaseHandle()
    {
        CudaDevice.MakeCurrent();
        return _release(handle) == 0;
    }
}
