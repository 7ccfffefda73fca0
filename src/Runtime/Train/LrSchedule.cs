namespace ShiftWise.Runtime.Train;

/// <summary>
/// The recipe's per-step learning rate (SPEC 6, the original's <c>cosine_scheduler</c>): a linear warm-up
/// <c>np.linspace(0, base, W)</c> (both endpoints included, so step W−1 is exactly base), then a cosine from base
/// towards min over the remaining T = total − W steps: lr = min + ½(base − min)(1 + cos(π i / T)), i = step −
/// W.
/// </summary>
public sealed class LrSchedule
{
    /// <summary>Creates the schedule.</summary>
    /// <param name="baseLr">The peak learning rate.</param>
    /// <param name="minLr">The cosine's floor.</param>
    /// <param name="warmupSteps">W, the warm-up steps (0 for none).</param>
    /// <param name="totalSteps">All steps, warm-up included (epochs × steps per epoch).</param>
    public LrSchedule(double baseLr, double minLr, int warmupSteps, int totalSteps)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(warmupSteps);
        ArgumentOutOfRangeException.ThrowIfLessThan(totalSteps, warmupSteps);
        BaseLr = baseLr;
        MinLr = minLr;
        WarmupSteps = warmupSteps;
        TotalSteps = totalSteps;
    }

    /// <summary>The recipe: base 4e-3, min 1e-6, 5 warm-up epochs, 300 epochs of 312 steps.</summary>
    public static LrSchedule ShiftWiseRecipe { get; } = new(4e-3, 1e-6, 5 * 312, 300 * 312);

    /// <summary>The peak learning rate.</summary>
    public double BaseLr { get; }

    /// <summary>The cosine's floor.</summary>
    public double MinLr { get; }

    /// <summary>W, the warm-up steps.</summary>
    public int WarmupSteps { get; }

    /// <summary>All steps, warm-up included.</summary>
    public int TotalSteps { get; }

    /// <summary>The learning rate of optimizer step <paramref name="step"/> (0-based).</summary>
    /// <param name="step">0 ≤ step &lt; <see cref="TotalSteps"/>.</param>
    /// <returns>The learning rate.</returns>
    public double At(int step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(step, TotalSteps);
        if (step < WarmupSteps)
        {
            // numpy's linspace: arange * (delta / (num - 1)) + start, and the last value set to stop exactly.
            if (step == WarmupSteps - 1) return BaseLr;
            return step * (BaseLr / (WarmupSteps - 1)) + 0.0;
        }
        int i = step - WarmupSteps, t = TotalSteps - WarmupSteps;
        return MinLr + 0.5 * (BaseLr - MinLr) * (1 + Math.Cos(Math.PI * i / t));
    }
}
