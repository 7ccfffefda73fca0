using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.Loader;
using System.Security.Cryptography;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using ShiftWise.IR;

namespace ShiftWise.Runtime.Cpu;

/// <summary>
/// Compiles rendered C# in memory with Roslyn (optimised, unsafe allowed) into a collectible load context, and caches
/// the assembly on disk by a hash of the source, the Roslyn version and the runtime version, so a second run skips
/// Roslyn. Cache files are written atomically; one that fails to load is discarded and rebuilt with a warning.
/// </summary>
public static class RoslynCompiler
{
    private static readonly ConcurrentDictionary<string, Assembly> Loaded = new(StringComparer.Ordinal);
    private static readonly Lazy<MetadataReference[]> References = new(LoadReferences);

    /// <summary>Where compiled kernels are cached: $SWC_CACHE_DIR/cpu, default ~/.cache/swc/cpu.</summary>
    public static string CacheDir => SwcCache.Dir("cpu");

    /// <summary>Counts of cache hits and Roslyn compilations in this process (reports and tests read them).</summary>
    public static (int Hits, int Compiles) Stats => (_hits, _compiles);

    private static int _hits;
    private static int _compiles;

    /// <summary>Forgets the assemblies loaded in this process (tests use it to exercise the disk cache).</summary>
    internal static void ForgetLoaded() => Loaded.Clear();

    /// <summary>The cache key of a source: SHA-256 over the source and the compiler and runtime versions.</summary>
    public static string Key(string source)
    {
        var versions = typeof(CSharpCompilation).Assembly.GetName().Version + "|" + Environment.Version;
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(versions + "\n" + source)));
    }

    /// <summary>
    /// The public static method <paramref name="method"/> of type <paramref name="type"/> in the compiled source.
    /// </summary>
    public static MethodInfo GetMethod(string source, string type, string method, Action<string>? warn = null) =>
        GetMethod(source, type, method, out _, warn);

    /// <summary>
    /// As <see cref="GetMethod(string, string, string, Action{string}?)"/>, saying where the assembly came from.
    /// </summary>
    public static MethodInfo GetMethod(string source, string type, string method, out CacheOutcome outcome,
        Action<string>? warn = null)
    {
        var came = CacheOutcome.Memory;
        var asm = Loaded.GetOrAdd(Key(source), key => LoadOrCompile(key, source, warn, out came));
        outcome = came;
        var t = asm.GetType(type) ?? throw new IrException($"generated assembly has no type {type}");
        return t.GetMethod(method, BindingFlags.Public | BindingFlags.Static)
            ?? throw new IrException($"generated type {type} has no public static method {method}");
    }

    private static Assembly LoadOrCompile(string key, string source, Action<string>? warn, out CacheOutcome outcome)
    {
        outcome = CacheOutcome.Disk;
        var file = Path.Combine(CacheDir, key + ".dll");
        if (SwcCache.TryRead(file, warn) is { } bytes)
        {
            try
            {
                var asm = Load(key, bytes);
                Interlocked.Increment(ref _hits);
                return asm;
            }
            catch (Exception e) when (e is BadImageFormatException or FileLoadException)
            {
                warn?.Invoke($"warning: discarding corrupt kernel cache entry {file}: {e.Message}");
                SwcCache.TryDelete(file);
            }
        }
        var image = Compile(source, key);
        Interlocked.Increment(ref _compiles);
        outcome = CacheOutcome.Compiled;
        SwcCache.TryWrite(file, image, warn);
        return Load(key, image);
    }

    private static Assembly Load(string key, byte[] image)
    {
        var ctx = new AssemblyLoadContext("swc-" + key[..12], isCollectible: true);
        return ctx.LoadFromStream(new MemoryStream(image));
    }

    /// <summary>Compiles to an assembly image; errors name the generated line.</summary>
    public static byte[] Compile(string source, string key)
    {
        var tree = CSharpSyntaxTree.ParseText(source, new CSharpParseOptions(LanguageVersion.Latest),
            path: key + ".cs");
        var compilation = CSharpCompilation.Create("swc_" + key[..16], [tree], References.Value,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary,
                optimizationLevel: OptimizationLevel.Release, allowUnsafe: true, deterministic: true));
        using var ms = new MemoryStream();
        var result = compilation.Emit(ms);
        if (!result.Success)
        {
            var errors = result.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).Take(5)
                .Select(d => d.ToString());
            throw new IrException($"generated C# does not compile (a codegen bug): {string.Join("; ", errors)}");
        }
        return ms.ToArray();
    }

    private static MetadataReference[] LoadReferences()
    {
        var tpa = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator);
        string[] wanted =
        [
            "System.Private.CoreLib", "System.Runtime", "System.Runtime.Intrinsics", "System.Threading.Tasks.Parallel",
            "System.Threading", "System.Memory", "System.Collections.Concurrent", "netstandard",
        ];
        return tpa.Where(p => wanted.Contains(Path.GetFileNameWithoutExtension(p)))
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToArray();
    }
}
