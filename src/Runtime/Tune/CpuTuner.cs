using System.Diagnostics;
using System.Runtime.Intrinsics.X86;
using Microsoft.CodeAnalysis.CSharp;
using ShiftWise.CodegenCpu;
using ShiftWise.IR;
using ShiftWise.Passes.Lowering;
using ShiftWise.Runtime.Cpu;

namespace ShiftWise.Runtime.Tune;

/// <summary>
/// Tunes the CPU target's SW layer kernels (the only CPU kernels with tunables): for every distinct spec of a graph,
/// its legal candidates (the factorised lowering, and the cross lowering at every register tile of at most 12
/// accumulators that fits the plane), searched by <see cref="TuneSearch"/>: each compiled by Roslyn under a timeout
/// and timed with a stopwatch around the kernel alone on inputs rotated through 8 MB of buffers (see
/// <see cref="RotateBytes"/>). The budget is shared evenly among the kernels still to tune.
/// </summary>
public sealed class CpuTuner(double budgetSeconds, Action<string>? warn = null, Action<TuneStatus>? progress = null)
    : ITuner
{
    /// <summary>
    /// Rotated inputs total at least this many bytes: past the private L1/L2 caches, so no timing is cache-only, but
    /// within a last-level cache, as in a model where a layer reads what the previous kernel just wrote. Rotating
    /// through 64 MB measured every kernel memory-bound (sw-tiny stage 0: 2.5 ms alone against 1.05 ms in the model)
    /// and favoured tiles that were 9% slower in the model.
    /// </summary>
    private const long RotateBytes = 8L << 20;

    /// <summary>The longest one candidate's Roslyn compilation may take.</summary>
    public TimeSpan CompileTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Timed runs per candidate (the median is kept).</summary>
    public int Repeats { get; init; } = 7;

    /// <summary>Measure again even when the cache has an entry.</summary>
    public bool Force { get; init; }

    /// <summary>This CPU: its model name (from /proc/cpuinfo where there is one).</summary>
    public static string DeviceName { get; } = ReadCpuName();

    /// <summary>
    /// The tuning key of an SW spec on this CPU, for the ISA in force (<see cref="Cpu.CpuIsa.Current"/>), with this
    /// Roslyn, runtime and code generator.
    /// </summary>
    public static TuneKey KeyFor(SwLayerSpec spec)
    {
        // the ISA the kernels are generated for (SWC_CPU_ISA may force AVX2 on an AVX-512 CPU): a tile measured
        // for one vector width is not the best, or not even legal, for the other
        var isa = (Avx2.IsSupported ? "avx2" : "no-avx2") + (Fma.IsSupported ? "+fma" : "")
            + $", kernels {Cpu.CpuIsa.Current}, {Environment.ProcessorCount} threads";
        var cg = typeof(CodegenCpu.CpuCodegen).Assembly;
        var codegen = $"{cg.GetName().Version} {cg.ManifestModule.ModuleVersionId:N}";
        return new TuneKey(spec.Hash, DeviceName, isa, ".NET " + Environment.Version,
            "roslyn " + typeof(CSharpCompilation).Assembly.GetName().Version, codegen);
    }

    /// <summary>The cache file of this CPU.</summary>
    public static string CacheFile => TuningCache.FileFor("cpu", DeviceName);

    string ITuner.CacheFile => CacheFile;

    /// <inheritdoc/>
    public string Where => $"{DeviceName} ({Environment.ProcessorCount} threads)";

    /// <summary>
    /// Tunes every distinct SW spec of a graph bound with its weights; entries go into the cache (saved).
    /// </summary>
    public IReadOnlyList<TuneRow> Tune(Graph g, IReadOnlyDictionary<string, Tensor> weights, TuningCache cache)
    {
        var types = g.ValueTypes();
        return TuneSearch.All(g, KeyFor, cache, Force, budgetSeconds, progress, (node, spec, key, share, report) =>
        {
            var req = new KernelRequest(node, node.Inputs.Select(i => types[i]).ToArray(),
                node.Inputs.Select(i => weights.GetValueOrDefault(i)).ToArray());
            return TuneOne(spec, req, types[node.Outputs[0]].Shape, key, share, report);
        });
    }

    private TuneEntry TuneOne(SwLayerSpec spec, KernelRequest req, Shape yShape, TuneKey key, double seconds,
        Action<int, int> report)
    {
        int sets = (int)Math.Clamp(RotateBytes / Math.Max(1, spec.Input.Elements * 4), 2, 16);
        var rng = new Random(1);
        var ins = Enumerable.Range(0, sets).Select(_ => new[]
        {
            Buf.Of(Enumerable.Range(0, (int)spec.Input.Elements).Select(_ => (float)(rng.NextDouble() * 2 - 1))
                .ToArray()),
        }).ToArray();
        var outs = new[] { Buf.Of(new float[yShape.Elements]) };
        var search = new TuneSearch { CompileTimeout = CompileTimeout, Repeats = Repeats };
        return search.Run(key, spec.Name, SwCpuTunables.Candidates(spec), seconds, cfg =>
        {
            var k = new SwLayerKernel(req, spec, cfg, warn);
            int next = 0;
            // a sample is as many back-to-back runs as make about a millisecond (a stopwatch cannot time a 10 µs
            // kernel alone), sized by a run after a first, cold one; inputs rotate run by run
            k.Run(ins[next++ % ins.Length], outs);
            var sw = Stopwatch.StartNew();
            k.Run(ins[next++ % ins.Length], outs);
            int inner = (int)Math.Clamp(Math.Ceiling(1.0 / Math.Max(sw.Elapsed.TotalMilliseconds, 1e-4)), 1, 1000);
            return new TuneTrial(() =>
            {
                sw.Restart();
                for (int i = 0; i < inner; i++) k.Run(ins[next++ % ins.Length], outs);
                return sw.Elapsed.TotalMilliseconds / inner;
            });
        }, report);
    }

    private static string ReadCpuName()
    {
        try
        {
            if (File.Exists("/proc/cpuinfo"))
            {
                foreach (var line in File.ReadLines("/proc/cpuinfo"))
                {
                    if (line.StartsWith("model name", StringComparison.Ordinal) && line.IndexOf(':') is int i and > 0)
                    {
                        return line[(i + 1)..].Trim();
                    }
                }
            }
        }
        catch (IOException)
        {
            // fall through to the architecture
        }
        return System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture + " CPU";
    }
}
