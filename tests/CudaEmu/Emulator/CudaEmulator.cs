using System.Collections.Concurrent;
using System.Diagnostics;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using ShiftWise.CodegenCuda;
using ShiftWise.Runtime;

namespace ShiftWise.CudaEmu;

/// <summary>Where a compiled emulation module came from.</summary>
public enum EmuCacheOutcome
{
    /// <summary>Already loaded in this process.</summary>
    Memory,
    /// <summary>Loaded from the disk cache (g++ not run).</summary>
    Disk,
    /// <summary>Compiled by g++ now (and written to the disk cache).</summary>
    Compiled,
}

/// <summary>A kernel that cannot be compiled or launched in emulation.</summary>
public sealed class EmuException(string message) : Exception(message);

/// <summary>
/// Runs emitted CUDA kernels on the CPU: g++ compiles the exact <c>.cu</c> text with the shim header
/// <c>swc_cuda_emu.h</c> force-included, plus a generated harness that exports one launcher per entry point, into a
/// shared library that is cached on disk (<c>$SWC_CACHE_DIR/emu</c>) and in memory.
/// </summary>
public static class CudaEmulator
{
    /// <summary>
    /// The g++ options (besides the harness, the output and the include directory). -fvisibility=hidden keeps the shim
    /// of one module from interposing another's; -fno-weak lets the __shared__ statics of inline functions share the
    /// shim's section with the others (a module is one translation unit, so it needs no COMDAT).
    /// </summary>
    public static readonly IReadOnlyList<string> Flags =
    [
        "-std=c++20", "-O1", "-fPIC", "-shared", "-pthread", "-fvisibility=hidden", "-fno-weak", "-w",
        "-ffp-contract=off", "-fdiagnostics-color=never", "-include", "swc_cuda_emu.h",
    ];

    private static readonly Lazy<(bool Ok, string Reason, string Gxx, string Version)> Probe = new(ProbeGxx);
    private static readonly Lazy<string> ShimText = new(LoadShim);
    private static readonly ConcurrentDictionary<string, Lazy<EmuModule>> Loaded = new(StringComparer.Ordinal);
    private static int _gxxRuns;

    /// <summary>Whether g++ was found and compiles C++20 shared libraries.</summary>
    public static bool Available => Probe.Value.Ok;

    /// <summary>One sentence saying why the emulator is unavailable (empty when it is available).</summary>
    public static string MissingReason => Probe.Value.Reason;

    /// <summary>The first line of <c>g++ --version</c> (part of every cache key).</summary>
    public static string CompilerVersion => Probe.Value.Version;

    /// <summary>How many times this process ran g++ on a kernel.</summary>
    public static int CompileCount => Volatile.Read(ref _gxxRuns);

    /// <summary>The shim header's text.</summary>
    public static string Shim => ShimText.Value;

    /// <summary>
    /// Where compiled modules are cached: emu/ under the process's cache root (<see cref="SwcCache.ProcessRoot"/>),
    /// not under a test's own (<see cref="SwcCache.UseRoot"/>): loaded modules are shared by the whole process, and an
    /// emitted program run as a child loads them by path, so they must outlive the test that compiled them. Under the
    /// tests SWC_CACHE_DIR is this test process's own folder (tests/Shared/IsolatedCache.cs).
    /// </summary>
    public static string CacheDir => Path.Combine(SwcCache.ProcessRoot, "emu");

    /// <summary>Compiles <paramref name="kernel"/> or takes it from a cache; the module is shared, stays loaded.</summary>
    public static EmuModule Compile(CudaKernelSource kernel) => Compile(kernel, out _);

    /// <summary>As <see cref="Compile(CudaKernelSource)"/>, saying where the module came from.</summary>
    public static EmuModule Compile(CudaKernelSource kernel, out EmuCacheOutcome outcome)
    {
        RequireAvailable();
        var key = Key(kernel);
        bool created = false;
        var lazy = Loaded.GetOrAdd(key, k => new Lazy<EmuModule>(() =>
        {
            created = true;
            return LoadOrCompile(kernel, k, CacheDir, shared: true);
        }));
        EmuModule m;
        try
        {
            m = lazy.Value;
        }
        catch
        {
            Loaded.TryRemove(new KeyValuePair<string, Lazy<EmuModule>>(key, lazy));  // a failed compile is not cached
            throw;
        }
        outcome = created ? m.Outcome : EmuCacheOutcome.Memory;
        return m;
    }

    /// <summary>Compiles, bypassing the in-memory cache, into <paramref name="cacheDir"/>; the caller owns it.</summary>
    internal static EmuModule CompileUncached(CudaKernelSource kernel, string cacheDir)
    {
        RequireAvailable();
        return LoadOrCompile(kernel, Key(kernel), cacheDir, shared: false);
    }

    /// <summary>The cache key: SHA-256 over the source, the harness, the shim, the g++ version and the flags.</summary>
    public static string Key(CudaKernelSource kernel)
    {
        var text = string.Join("\n\0", kernel.Source, Harness(kernel), Shim, CompilerVersion, string.Join(' ', Flags));
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
    }

    /// <summary>The generated harness: includes the .cu and exports, per entry, a launcher and its arity.</summary>
    public static string Harness(CudaKernelSource kernel)
    {
        CheckIdentifier(kernel.Name, "kernel name");
        if (kernel.Entries.Count == 0) throw new EmuException($"kernel {kernel.Name} has no entry points");
        var sb = new StringBuilder();
        sb.Append("// generated by ShiftWise.CudaEmu: launchers for ").Append(kernel.FileName).Append('\n');
        sb.Append("#include \"").Append(kernel.FileName).Append("\"\n");
        sb.Append("#define SWC_EXPORT extern \"C\" __attribute__((visibility(\"default\")))\n");
        sb.Append("SWC_EXPORT void swc_emu_set_watchdog_ms(unsigned ms) { ::swc_emu::set_watchdog_ms(ms); }\n");
        foreach (var e in kernel.Entries)
        {
            CheckIdentifier(e, "entry point");
            sb.Append("SWC_EXPORT int swc_emu_arity_").Append(e).Append("(void) { return ::swc_emu::arity(&")
                .Append(e).Append("); }\n");
            sb.Append("SWC_EXPORT int swc_emu_launch_").Append(e)
                .Append("(const unsigned* grid3, const unsigned* block3, unsigned long long shared_bytes, ")
                .Append("void** params, char* err, int err_len)\n{\n    return ")
                .Append("::swc_emu::launch_entry(\"").Append(e).Append("\", &").Append(e)
                .Append(", grid3, block3, shared_bytes, params, err, err_len);\n}\n");
        }
        return sb.ToString();
    }

    private static EmuModule LoadOrCompile(CudaKernelSource kernel, string key, string cacheDir, bool shared)
    {
        var file = Path.Combine(cacheDir, key + ".so");
        if (File.Exists(file))
        {
            try
            {
                return EmuModule.Load(kernel, key, file, EmuCacheOutcome.Disk, shared);
            }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException
                or EntryPointNotFoundException or EmuException)
            {
                Console.Error.WriteLine($"warning: discarding corrupt emulator cache entry {file}: {e.Message}");
                TryDelete(file);
            }
        }
        Directory.CreateDirectory(cacheDir);
        var tmp = Path.Combine(cacheDir, $"{key}.so.tmp{Environment.ProcessId}.{Guid.NewGuid():N}");
        try
        {
            RunGxx(kernel, tmp);
            File.Move(tmp, file, overwrite: true);  // atomic: a parallel compile of the same key writes equal bytes
        }
        finally
        {
            TryDelete(tmp);
        }
        return EmuModule.Load(kernel, key, file, EmuCacheOutcome.Compiled, shared);
    }

    private static void RunGxx(CudaKernelSource kernel, string output)
    {
        var dir = Path.Combine(Path.GetTempPath(), "swc-emu-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, kernel.FileName), kernel.Source);
            File.WriteAllText(Path.Combine(dir, "swc_cuda_emu.h"), Shim);
            File.WriteAllText(Path.Combine(dir, "harness.cpp"), Harness(kernel));
            // the shim by absolute path: -include looks in the working directory first
            var args = Flags.Select(f => f == "swc_cuda_emu.h" ? Path.Combine(dir, f) : f)
                .Concat(["-I", dir, Path.Combine(dir, "harness.cpp"), "-o", output]);
            Interlocked.Increment(ref _gxxRuns);
            var (code, text) = Run(Probe.Value.Gxx, args, TimeSpan.FromMinutes(3));
            if (code != 0)
            {
                text = text.Replace(dir + Path.DirectorySeparatorChar, "", StringComparison.Ordinal).Trim();
                throw new EmuException($"g++ could not compile {kernel.FileName} for emulation (exit {code}):\n{text}");
            }
        }
        finally
        {
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static (int Code, string Output) Run(string exe, IEnumerable<string> args, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(exe)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["LC_ALL"] = "C";  // plain quotes in messages
        using var p = Process.Start(psi) ?? throw new EmuException($"cannot start {exe}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new EmuException($"{exe} ran longer than {timeout.TotalSeconds:F0} s");
        }
        p.WaitForExit();
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    private static (bool, string, string, string) ProbeGxx()
    {
        var gxx = Environment.GetEnvironmentVariable("SWC_EMU_CXX") is { Length: > 0 } c ? c : "g++";
        if (!OperatingSystem.IsLinux())
        {
            return (false, "the CUDA emulator runs on Linux only (its barriers are futexes).", gxx, "");
        }
        try
        {
            var (code, text) = Run(gxx, ["--version"], TimeSpan.FromSeconds(30));
            if (code != 0)
            {
                return (false, $"{gxx} --version failed (exit {code}); the emulator needs g++ 10 or newer.", gxx, "");
            }
            var version = text.Split('\n')[0].Trim();
            var dir = Path.Combine(Path.GetTempPath(), "swc-emu-probe-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(dir);
            try
            {
                var src = Path.Combine(dir, "probe.cpp");
                File.WriteAllText(src,
                    "#include <atomic>\nextern \"C\" int probe() { std::atomic<int> a{1}; return a.load(); }\n");
                var (pc, ptext) = Run(gxx,
                    ["-std=c++20", "-fPIC", "-shared", "-pthread", src, "-o", Path.Combine(dir, "probe.so")],
                    TimeSpan.FromMinutes(1));
                if (pc != 0)
                {
                    var why = $"{gxx} cannot build C++20 shared libraries ({version}): {ptext.Trim()}";
                    return (false, why, gxx, version);
                }
            }
            finally
            {
                Directory.Delete(dir, recursive: true);
            }
            return (true, "", gxx, version);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return (false, $"{gxx} was not found; install g++ (10 or newer) to run CUDA kernels on the CPU.", gxx, "");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return (false, $"{gxx} could not be tried ({e.Message}); the emulator needs g++ 10 or newer.", gxx, "");
        }
    }

    private static string LoadShim()
    {
        using var s = Assembly.GetExecutingAssembly().GetManifestResourceStream("swc_cuda_emu.h")
            ?? throw new EmuException("the shim swc_cuda_emu.h is not embedded in the test assembly");
        using var r = new StreamReader(s, Encoding.UTF8);
        return r.ReadToEnd().Replace("\r\n", "\n", StringComparison.Ordinal);
    }

    private static void RequireAvailable()
    {
        if (!Available) throw new EmuException(MissingReason);
    }

    private static void CheckIdentifier(string s, string what)
    {
        bool ok = s.Length > 0 && (char.IsAsciiLetter(s[0]) || s[0] == '_')
            && s.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');
        if (!ok)
        {
            throw new EmuException($"{what} '{s}' is not an identifier");
        }
    }

    private static void TryDelete(string f)
    {
        try
        {
            File.Delete(f);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
