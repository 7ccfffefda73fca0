using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.Runtime.Tune;

namespace ShiftWise.Runtime.Compile;

/// <summary>A tuning run about to start on a target: where, which cache, and the run itself.</summary>
/// <param name="Where">The device, for reports.</param>
/// <param name="CacheFile">The tuning cache it reads and writes.</param>
/// <param name="Run">Tunes every SW spec of the model; the rows say default against tuned time.</param>
public sealed record TuneSession(string Where, string CacheFile, Func<IReadOnlyList<TuneRow>> Run);

public static partial class Driver
{
    /// <summary>
    /// Prepares tuning a model's kernels on a target: the inference pipeline's graph and folded weights, what the
    /// target binds (its tuner binds one layer at a time), with a budget of <paramref name="seconds"/>.
    /// </summary>
    public static TuneSession Tune(LoadedModel m, ITarget target, double seconds, bool force, Action<string>? log,
        Action<TuneStatus>? progress)
    {
        target.Require();
        var tuner = target.Tuner(seconds, force, log, progress)
            ?? throw new IrException($"the {target.Name} target has no tunable kernels");
        var opt = Optimize(m.Graph, m.Weights, target.Pipeline, precision: target.Precision);
        var cache = TuningCache.Load(tuner.CacheFile, log);
        return new TuneSession(tuner.Where, cache.File, () => tuner.Tune(opt.Graph, opt.Weights, cache));
    }
}
