using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using ShiftWise.CodegenCuda;
using ShiftWise.IR;

namespace ShiftWise.Runtime.Cuda;

/// <summary>One kernel source compiled by NVRTC: its image, where it came from and how long it took.</summary>
public sealed record CompiledKernel(CudaKernelSource Kernel, NvrtcOutput Output, CacheOutcome Outcome, TimeSpan Time);

/// <summary>
/// Compiles rendered CUDA sources with NVRTC, independent kernels in parallel, through a cache in memory and on disk
/// ($SWC_CACHE_DIR/cuda) keyed by SHA-256 of the source, the NVRTC version, the arch and the options. A failure names
/// the kernel file and carries NVRTC's log with the failing line; every failing kernel is reported, not just the first.
/// </summary>
public static class CudaKernelCompiler
{
    private static readonly ConcurrentDictionary<string, NvrtcOutput> Loaded = new(StringComparer.Ordinal);

    /// <summary>The cache directory.</summary>
    public static string CacheDir => SwcCache.Dir("cuda");

    /// <summary>The cache key of a source for an arch and options.</summary>
    public static string Key(string source, string arch, IReadOnlyList<string> options)
    {
        var (major, minor) = NvrtcCompiler.Version;
        var text = $"nvrtc {major}.{minor}\narch {arch}\noptions {string.Join(' ', options)}\n{source}";
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
    }

    /// <summary>Forgets what this process loaded (tests use it to exercise the disk cache).</summary>
    public static void ForgetLoaded() => Loaded.Clear();

    /// <summary>Compiles one kernel (or takes it from a cache).</summary>
    public static CompiledKernel Compile(CudaKernelSource kernel, string arch, IReadOnlyList<string>? options = null,
        Action<string>? warn = null)
    {
        options ??= [];
        var sw = Stopwatch.StartNew();
        var key = Key(kernel.Source, arch, options);
        if (Loaded.TryGetValue(key, out var hit))
        {
            return new CompiledKernel(kernel, hit, CacheOutcome.Memory, sw.Elapsed);
        }
        bool cubin = arch.StartsWith("sm_", StringComparison.Ordinal);
        var file = Path.Combine(CacheDir, key + (cubin ? ".cubin" : ".ptx"));
        if (SwcCache.TryRead(file, warn) is { Length: > 0 } image)
        {
            var o = new NvrtcOutput(arch, image, cubin, "");
            Loaded[key] = o;
            return new CompiledKernel(kernel, o, CacheOutcome.Disk, sw.Elapsed);
        }
        var output = NvrtcCompiler.Compile(kernel.Source, kernel.FileName, arch, options);
        SwcCache.TryWrite(file, output.Image, warn);
        Loaded[key] = output;
        return new CompiledKernel(kernel, output, CacheOutcome.Compiled, sw.Elapsed);
    }

    /// <summary>
    /// Compiles every kernel, in parallel; results in the order given. <paramref name="progress"/> is called as each
    /// finishes (from worker threads).
    /// </summary>
    public static IReadOnlyList<CompiledKernel> CompileAll(IReadOnlyList<CudaKernelSource> kernels, string arch,
        IReadOnlyList<string>? options = null, Action<CompiledKernel>? progress = null, Action<string>? warn = null)
    {
        var results = new CompiledKernel?[kernels.Count];
        var errors = new ConcurrentBag<(int Index, string Message)>();
        Parallel.For(0, kernels.Count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
        {
            try
            {
                results[i] = Compile(kernels[i], arch, options, warn);
                progress?.Invoke(results[i]!);
            }
            catch (IrException e)
            {
                errors.Add((i, $"kernels/{kernels[i].FileName}: {e.Message}"));
            }
        });
        if (!errors.IsEmpty)
        {
            var list = errors.OrderBy(e => e.Index).Select(e => e.Message).ToList();
            throw new IrException($"{list.Count} of {kernels.Count} CUDA kernels did not compile for {arch}:\n"
                + string.Join("\n", list));
        }
        return results.Select(r => r!).ToArray();
    }

    /// <summary>Whether PTX text uses local memory (register spills or dynamically indexed arrays).</summary>
    public static bool UsesLocalMemory(string ptx) => ptx.Contains(".local", StringComparison.Ordinal);
}
