using ShiftWise.Passes.Lowering;

namespace ShiftWise.Runtime.Tune;

/// <summary>
/// The tuned configurations a target lowers its SW kernels with: looked up per spec in one device's tuning cache
/// (defaults where it has none), counting both, so that reports can say which kernels ran tuned.
/// </summary>
public abstract class KernelTuning
{
    private readonly TuningCache? _cache;
    private readonly Func<SwLayerSpec, TuneKey> _keyFor;
    private readonly HashSet<string> _tuned = new(StringComparer.Ordinal), _defaults = new(StringComparer.Ordinal);

    /// <summary>
    /// Reads entries of <paramref name="cache"/> (null: defaults everywhere) under the device's keys.
    /// </summary>
    protected KernelTuning(TuningCache? cache, Func<SwLayerSpec, TuneKey> keyFor)
    {
        _cache = cache;
        _keyFor = keyFor;
    }

    /// <summary>The configuration to use for a spec: the tuned one, or null for the defaults.</summary>
    public IReadOnlyDictionary<string, int>? For(SwLayerSpec spec)
    {
        var e = _cache?.Find(_keyFor(spec));
        lock (_tuned)
        {
            (e is null ? _defaults : _tuned).Add(spec.Name);
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
            if (n == 0 && NoneText is { } none) return none;
            return _tuned.Count == 0
                ? $"tuning: none of {n} SW kernels tuned on this {Device} (cost-model defaults; run {TuneCommand})"
                : $"tuning: {_tuned.Count} of {n} SW kernels tuned ({_cache.File}), {_defaults.Count} on cost-model "
                    + $"defaults";
        }
    }

    /// <summary>"CPU" or "GPU".</summary>
    protected abstract string Device { get; }

    /// <summary>The command that tunes this device.</summary>
    protected abstract string TuneCommand { get; }

    /// <summary>The summary when the graph has no SW kernel (null: "none of 0").</summary>
    protected virtual string? NoneText => null;
}

/// <summary>This CPU's tuned configurations.</summary>
public sealed class CpuTuning : KernelTuning
{
    private CpuTuning(TuningCache? cache) : base(cache, CpuTuner.KeyFor)
    {
    }

    /// <summary>Defaults everywhere (no cache read).</summary>
    public static CpuTuning Off { get; } = new(null);

    /// <summary>This CPU's cache file, read now (missing or corrupt: defaults, with a warning for corrupt).</summary>
    public static CpuTuning FromCache(Action<string>? warn = null) => From(TuningCache.Load(CpuTuner.CacheFile, warn));

    /// <summary>The configurations of a cache already read.</summary>
    public static CpuTuning From(TuningCache cache) => new(cache);

    /// <inheritdoc/>
    protected override string Device => "CPU";

    /// <inheritdoc/>
    protected override string TuneCommand => "swc tune";

    /// <inheritdoc/>
    protected override string NoneText => "tuning: no tunable kernels";
}

/// <summary>GPU 0's tuned configurations (or another device's, by its keys).</summary>
public sealed class CudaTuning : KernelTuning
{
    private CudaTuning(TuningCache? cache, Func<SwLayerSpec, TuneKey> keyFor) : base(cache, keyFor)
    {
    }

    /// <summary>Defaults everywhere.</summary>
    public static CudaTuning Off { get; } = new(null, CudaTuner.KeyFor);

    /// <summary>GPU 0's cache file, read now.</summary>
    public static CudaTuning FromCache(Action<string>? warn = null) =>
        new(TuningCache.Load(CudaTuner.CacheFile, warn), CudaTuner.KeyFor);

    /// <summary>
    /// The entries of <paramref name="cache"/> under the keys <paramref name="keyFor"/> gives: another device's, or a
    /// stand-in device's where no GPU is (the compile driver's tests).
    /// </summary>
    public static CudaTuning From(TuningCache cache, Func<SwLayerSpec, TuneKey> keyFor) => new(cache, keyFor);

    /// <inheritdoc/>
    protected override string Device => "GPU";

    /// <inheritdoc/>
    protected override string TuneCommand => "swc tune --device cuda";
}
