using ShiftWise.Passes.Lowering;
using ShiftWise.Runtime.Cpu;

namespace ShiftWise.Runtime.Tune;

/// <summary>
/// The tuned configurations an executor uses: looked up per SW spec in this CPU's tuning cache (defaults where it has
/// none), counting both, so that reports can say which kernels ran tuned.
/// </summary>
public sealed class CpuTuning
{
    private readonly TuningCache? _cache;
    private readonly HashSet<string> _tuned = new(StringComparer.Ordinal), _defaults = new(StringComparer.Ordinal);

    private CpuTuning(TuningCache? cache) => _cache = cache;

    /// <summary>Defaults everywhere (no cache read).</summary>
    public static CpuTuning Off { get; } = new(null);

    /// <summary>This CPU's cache file, read now (missing or corrupt: defaults, with a warning for corrupt).</summary>
    public static CpuTuning FromCache(Action<string>? warn = null) => From(TuningCache.Load(CpuTuner.CacheFile, warn));

    /// <summary>The configurations of a cache already read.</summary>
    public static CpuTuning From(TuningCache cache) => new(cache);

    /// <summary>The configuration to use for a spec: the tuned one, or null for the defaults.</summary>
    public IReadOnlyDictionary<string, int>? For(SwLayerSpec spec)
    {
        var e = _cache?.Find(CpuTuner.KeyFor(spec));
        lock (_tuned)
        {
            (e is null ? _defaults : _tuned).Add(spec.Spec.Name);
        }
        return e?.Best;
    }

    /// <summary>One line for reports: how many distinct SW kernels are tuned, from which file.</summary>
    public string Summary
    {
        get
        {
            if (_cache is null) return "tuning: off (cost-model defaults)";
            int n = _tuned.Count + _defaults.Count;
            if (n == 0) return "tuning: no tunable kernels";
            return _tuned.Count == 0
                ? $"tuning: none of {n} SW kernels tuned on this CPU (cost-model defaults; run swc tune)"
                : $"tuning: {_tuned.Count} of {n} SW kernels tuned ({_cache.File}), {_defaults.Count} on cost-model "
                    + $"defaults";
        }
    }
}
