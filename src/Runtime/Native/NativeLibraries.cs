using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.InteropServices;

namespace ShiftWise.Runtime.Native;

/// <summary>
/// A native library we bind: the logical name the <c>[LibraryImport]</c> declarations use, the file names to try
/// (the newest ABI first), and what a user who lacks it should install.
/// </summary>
/// <param name="Key">The name in <c>[LibraryImport(Key)]</c>; the resolver maps it to the first file that
/// loads.</param>
/// <param name="Display">How messages name the library ("OpenBLAS").</param>
/// <param name="Names">File names tried in order with the system loader's search path.</param>
/// <param name="Install">What to install, phrased to follow "install".</param>
public sealed record NativeLibrarySpec(string Key, string Display, IReadOnlyList<string> Names, string Install);

/// <summary>
/// The outcome of loading a <see cref="NativeLibrarySpec"/>: the handle and the file that loaded, or neither.
/// </summary>
/// <param name="Spec">What was looked for.</param>
/// <param name="Handle">The OS handle; <see cref="IntPtr.Zero"/> when no name loaded.</param>
/// <param name="LoadedName">The file name that loaded, or null.</param>
public sealed record NativeLoad(NativeLibrarySpec Spec, IntPtr Handle, string? LoadedName)
{
    /// <summary>Whether SWC_DISABLE named the library (it was not looked for).</summary>
    public bool Disabled { get; init; }

    /// <summary>Whether one of the names loaded.</summary>
    public bool Found => Handle != IntPtr.Zero;

    /// <summary>Whether the loaded library exports <paramref name="symbol"/> (optional entry points).</summary>
    public bool Exports(string symbol) => Found && NativeLibrary.TryGetExport(Handle, symbol, out _);

    /// <summary>
    /// The one sentence that tells a user what is missing and what happens instead, e.g. "OpenBLAS
    /// (libopenblas.so.0) was not found; install Debian's libopenblas0-pthread. Using the managed GEMM, which is
    /// slower."
    /// </summary>
    public string Missing(string consequence) => Disabled
        ? $"{Spec.Display} is disabled by SWC_DISABLE={Environment.GetEnvironmentVariable("SWC_DISABLE")}. "
            + $"{consequence}"
        : $"{Spec.Display} ({Spec.Names[0]}) was not found; install {Spec.Install}. {consequence}";
}

/// <summary>
/// The one table of native libraries and the one resolver for this assembly. Distributions ship versioned file
/// names only (libopenblas.so.0, libcuda.so.1) unless a -dev package is installed, so a bare
/// <c>[LibraryImport("openblas")]</c> would fail where the library is present; the resolver tries the table's names
/// instead. .NET allows one resolver per assembly, so every binding in <c>Native/</c> goes through this one.
/// </summary>
public static class NativeLibraries
{
    /// <summary>OpenBLAS (CPU GEMM).</summary>
    public static NativeLibrarySpec OpenBlas { get; } = new("openblas", "OpenBLAS",
        ["libopenblas.so.0", "libopenblas.so"], "Debian's libopenblas0-pthread");

    /// <summary>The CUDA driver API.</summary>
    public static NativeLibrarySpec Cuda { get; } = new("cuda", "The CUDA driver",
        ["libcuda.so.1"], "the NVIDIA driver (Debian's libcuda1, non-free)");

    /// <summary>NVRTC, the run-time CUDA compiler.</summary>
    public static NativeLibrarySpec Nvrtc { get; } = new("nvrtc", "NVRTC",
        ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"],
        "Debian's libnvrtc11.2 (non-free) or a CUDA toolkit");

    /// <summary>cuBLAS.</summary>
    public static NativeLibrarySpec Cublas { get; } = new("cublas", "cuBLAS",
        ["libcublas.so.13", "libcublas.so.12", "libcublas.so.11"], "Debian's libcublas11 (non-free) or a CUDA toolkit");

    /// <summary>cuBLASLt (the GEMM steps with gemm_api 1 or 2; shipped beside cuBLAS).</summary>
    public static NativeLibrarySpec CublasLt { get; } = new("cublaslt", "cuBLASLt",
        ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11"],
        "Debian's libcublaslt11 (non-free) or a CUDA toolkit");

    /// <summary>Every library in the table.</summary>
    public static IReadOnlyList<NativeLibrarySpec> All { get; } = [OpenBlas, Cuda, Nvrtc, Cublas, CublasLt];

    // Lazy so that two threads asking at once load once; a failed load is cached too, so absence costs one probe.
    private static readonly ConcurrentDictionary<string, Lazy<NativeLoad>> Loads = new(StringComparer.Ordinal);
    private static readonly Lock ResolverLock = new();
    private static bool _resolverSet;

    /// <summary>
    /// Loads <paramref name="spec"/> by trying each name in order; the result is cached for the process.
    /// </summary>
    public static NativeLoad Load(NativeLibrarySpec spec) =>
        Loads.GetOrAdd(spec.Key, _ => new Lazy<NativeLoad>(() => TryNames(spec))).Value;

    /// <summary>
    /// Installs the resolver that maps each table key to its loaded file. Bindings call this from their static
    /// constructor, before the first call into the library; calling it again does nothing.
    /// </summary>
    public static void EnsureResolver()
    {
        lock (ResolverLock)
        {
            if (_resolverSet) return;
            NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);
            _resolverSet = true;
        }
    }

    /// <summary>
    /// Library keys listed in SWC_DISABLE (comma-separated: openblas, cuda, nvrtc, cublas, cublaslt) are treated as
    /// absent, to reproduce a machine without them (CI without NVRTC, say).
    /// </summary>
    public static bool IsDisabled(NativeLibrarySpec spec) =>
        (Environment.GetEnvironmentVariable("SWC_DISABLE") ?? "").Split(',', StringSplitOptions.TrimEntries)
            .Contains(spec.Key, StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Whether OpenBLAS is loaded with one thread of its own, so that the GEMMs split their calls over swc's CPU
    /// workers (<see cref="Cpu.Blas.OwnThreads"/>): unless <c>SWC_BLAS_THREADS=openblas</c>. It has to be decided
    /// before the library loads: OpenBLAS starts its workers when it loads, and a later
    /// <c>openblas_set_num_threads(1)</c> leaves one spinning, which on two cores serialised two concurrent calls
    /// (measured: a pair of 98×1280×320 calls took 1.8 ms against 0.85 ms for one).
    /// </summary>
    public static bool OpenBlasSingleThreaded { get; } =
        Environment.GetEnvironmentVariable("SWC_BLAS_THREADS")?.Trim().ToLowerInvariant() != "openblas";

    private static NativeLoad TryNames(NativeLibrarySpec spec)
    {
        if (IsDisabled(spec)) return new NativeLoad(spec, IntPtr.Zero, null) { Disabled = true };
        if (spec == OpenBlas && OpenBlasSingleThreaded) SetNativeEnvironment("OPENBLAS_NUM_THREADS", "1");
        foreach (var name in spec.Names)
        {
            if (NativeLibrary.TryLoad(name, out var handle)) return new NativeLoad(spec, handle, name);
        }
        return new NativeLoad(spec, IntPtr.Zero, null);
    }

    /// <summary>
    /// setenv(name, value, 0) in the C library, which native libraries read when they load (.NET's own
    /// <see cref="Environment.SetEnvironmentVariable(string, string)"/> does not reach it on Linux). A value the user
    /// set is kept. Does nothing where there is no libc.so.6.
    /// </summary>
    private static unsafe void SetNativeEnvironment(string name, string value)
    {
        if (!OperatingSystem.IsLinux() || !NativeLibrary.TryLoad("libc.so.6", out var libc)) return;
        if (!NativeLibrary.TryGetExport(libc, "setenv", out var setenv)) return;
        var n = System.Text.Encoding.UTF8.GetBytes(name + "\0");
        var v = System.Text.Encoding.UTF8.GetBytes(value + "\0");
        fixed (byte* pn = n, pv = v)
        {
            ((delegate* unmanaged<byte*, byte*, int, int>)setenv)(pn, pv, 0);
        }
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path)
    {
        foreach (var spec in All)
        {
            if (spec.Key == name) return Load(spec).Handle;
        }
        // not ours: IntPtr.Zero hands the name back to the default probing
        return IntPtr.Zero;
    }
}
