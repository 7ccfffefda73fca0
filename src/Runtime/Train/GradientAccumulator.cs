namespace ShiftWise.Runtime.Train;

/// <summary>
/// Gradient accumulation as the recipe does it (SPEC 6: update_freq 8): every micro-batch backpropagates its loss
/// scaled by <see cref="LossScale"/> = 1/N, the gradients are summed, and the optimizer steps on every N-th
/// micro-batch, after which the sums restart from zero.
/// </summary>
public sealed class GradientAccumulator
{
    private readonly Optimizer _optimizer;
    private readonly IReadOnlyDictionary<string, float[]> _parameters;
    private readonly Dictionary<string, float[]> _sums = new(StringComparer.Ordinal);

    /// <summary>Accumulates for <paramref name="optimizer"/> over <paramref name="parameters"/>.</summary>
    /// <param name="optimizer">The optimizer to step.</param>
    /// <param name="parameters">Parameter name to values, updated in place at each step.</param>
    /// <param name="microBatches">N, the micro-batches per optimizer step.</param>
    public GradientAccumulator(Optimizer optimizer, IReadOnlyDictionary<string, float[]> parameters, int microBatches)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentOutOfRangeException.ThrowIfLessThan(microBatches, 1);
        _optimizer = optimizer;
        _parameters = parameters;
        MicroBatches = microBatches;
        foreach (var (name, p) in parameters) _sums[name] = new float[p.Length];
    }

    /// <summary>N, the micro-batches per optimizer step.</summary>
    public int MicroBatches { get; }

    /// <summary>The factor 1/N by which each micro-batch's loss is scaled before its backward pass.</summary>
    public float LossScale => 1f / MicroBatches;

    /// <summary>Micro-batches accumulated since the last step.</summary>
    public int Pending { get; private set; }

    /// <summary>The running gradient sums (what the optimizer will see), by parameter name.</summary>
    public IReadOnlyDictionary<string, float[]> Sums => _sums;

    /// <summary>
    /// Adds one micro-batch's gradients (of the loss already scaled by <see cref="LossScale"/>); on the N-th call it
    /// steps the optimizer on the sums and zeroes them.
    /// </summary>
    /// <param name="gradients">Parameter name to gradient, one entry per parameter.</param>
    /// <returns>True when this call stepped the optimizer.</returns>
    public bool Accumulate(IReadOnlyDictionary<string, float[]> gradients)
    {
        ArgumentNullException.ThrowIfNull(gradients);
        foreach (var (name, sum) in _sums)
            if (!gradients.TryGetValue(name, out var g) || g.Length != sum.Length)
                throw new ArgumentException($"gradient of '{name}' missing or of the wrong size", nameof(gradients));
        foreach (var (name, sum) in _sums)
        {
            var g = gradients[name];
            for (int i = 0; i < sum.Length; i++) sum[i] += g[i];
        }
        if (++Pending < MicroBatches) return false;
        _optimizer.Step(_parameters, _sums);
        foreach (var sum in _sums.Values) Array.Clear(sum);
        Pending = 0;
        return true;
    }
}
