using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;
using ShiftWise.CodegenCuda;

namespace ShiftWise.CudaEmu;

/// <summary>
/// One compiled kernel source: its entry points can be launched with pointer arguments. Launches of one module run
/// one at a time (a C++ static is the shared memory of the block being run).
/// </summary>
public sealed unsafe class EmuModule : IDisposable
{
    private const int ErrBytes = 4096;
    private readonly object _gate = new();
    private readonly ConcurrentDictionary<string, (IntPtr Launch, int Arity)> _entries = new(StringComparer.Ordinal);
    private readonly delegate* unmanaged<uint, void> _setWatchdog;
    private readonly bool _shared;
    private IntPtr _handle;

    private EmuModule(CudaKernelSource kernel, string key, string path, EmuCacheOutcome outcome, bool shared,
        IntPtr handle)
    {
        Kernel = kernel;
        Key = key;
        LibraryPath = path;
        Outcome = outcome;
        _shared = shared;
        _handle = handle;
        _setWatchdog = (delegate* unmanaged<uint, void>)NativeLibrary.GetExport(handle, "swc_emu_set_watchdog_ms");
        foreach (var e in kernel.Entries) Entry(e);  // a library without every export is not this module
    }

    /// <summary>The kernel source it was compiled from.</summary>
    public CudaKernelSource Kernel { get; }

    /// <summary>Its cache key.</summary>
    public string Key { get; }

    /// <summary>The shared library file.</summary>
    public string LibraryPath { get; }

    /// <summary>How it was obtained when first loaded (disk cache or g++).</summary>
    public EmuCacheOutcome Outcome { get; }

    /// <summary>
    /// How long a block may make no progress (no barrier or warp operation completes, no thread finishes) before the
    /// launch fails as deadlocked.
    /// </summary>
    public TimeSpan Watchdog { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How many launches ran (tests and logs read it).</summary>
    public int Launches { get; private set; }

    internal static EmuModule Load(CudaKernelSource kernel, string key, string path, EmuCacheOutcome outcome,
        bool shared)
    {
        var h = NativeLibrary.Load(path);
        try
        {
            return new EmuModule(kernel, key, path, outcome, shared, h);
        }
        catch
        {
            NativeLibrary.Free(h);
            throw;
        }
    }

    /// <summary>
    /// Launches <paramref name="entry"/> and waits for it. <paramref name="pointerArgs"/> are the kernel's arguments
    /// in order (each passed as cuLaunchKernel passes it: a pointer to the value). Throws <see cref="EmuException"/>
    /// with the emulator's message when the launch fails (bad dimensions, a deadlock, a trap).
    /// </summary>
    public void Launch(string entry, Dim3 grid, Dim3 block, int dynamicSharedBytes, params IntPtr[] pointerArgs)
    {
        ArgumentNullException.ThrowIfNull(pointerArgs);
        ObjectDisposedException.ThrowIf(_handle == IntPtr.Zero, this);
        if (dynamicSharedBytes < 0)
        {
            throw new EmuException($"kernel {Kernel.Name}: negative shared memory size {dynamicSharedBytes}");
        }
        var (fn, arity) = Entry(entry);
        if (arity != pointerArgs.Length)
        {
            throw new EmuException(
                $"kernel {Kernel.Name} entry {entry} takes {arity} arguments, got {pointerArgs.Length}");
        }
        var launch = (delegate* unmanaged<uint*, uint*, ulong, void**, byte*, int, int>)fn;
        uint* g = stackalloc uint[3] { (uint)grid.X, (uint)grid.Y, (uint)grid.Z };
        uint* b = stackalloc uint[3] { (uint)block.X, (uint)block.Y, (uint)block.Z };
        int n = pointerArgs.Length;
        var values = stackalloc IntPtr[Math.Max(n, 1)];
        var ptrs = stackalloc void*[Math.Max(n, 1)];
        for (int i = 0; i < n; i++)
        {
            values[i] = pointerArgs[i];
            ptrs[i] = &values[i];
        }
        var err = stackalloc byte[ErrBytes];
        err[0] = 0;
        int rc;
        lock (_gate)
        {
            _setWatchdog((uint)Math.Clamp(Watchdog.TotalMilliseconds, 1, uint.MaxValue));
            rc = launch(g, b, (ulong)dynamicSharedBytes, ptrs, err, ErrBytes);
            Launches++;
        }
        if (rc != 0)
        {
            int len = new ReadOnlySpan<byte>(err, ErrBytes).IndexOf((byte)0);
            var msg = Encoding.UTF8.GetString(err, len >= 0 ? len : ErrBytes);
            throw new EmuException($"kernel {Kernel.Name}: {msg}");
        }
    }

    /// <summary>The number of parameters of <paramref name="entry"/>.</summary>
    public int Arity(string entry) => Entry(entry).Arity;

    private (IntPtr Launch, int Arity) Entry(string entry) => _entries.GetOrAdd(entry, e =>
    {
        if (!Kernel.Entries.Contains(e))
        {
            throw new EmuException(
                $"kernel {Kernel.Name} has no entry point '{e}' (it has {string.Join(", ", Kernel.Entries)})");
        }
        var launch = NativeLibrary.GetExport(_handle, "swc_emu_launch_" + e);
        var arity = ((delegate* unmanaged<int>)NativeLibrary.GetExport(_handle, "swc_emu_arity_" + e))();
        return (launch, arity);
    });

    /// <summary>
    /// Unloads a module that the caller owns. Modules from <see cref="CudaEmulator.Compile(CudaKernelSource)"/> are
    /// shared by everyone who compiles the same source and stay loaded for the process: for them this does nothing.
    /// </summary>
    public void Dispose()
    {
        if (_shared) return;
        lock (_gate)
        {
            if (_handle != IntPtr.Zero) NativeLibrary.Free(_handle);
            _handle = IntPtr.Zero;
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"EmuModule {Kernel.FileName} ({Outcome})";
}
