using System.Globalization;
using ShiftWise.IR;

namespace ShiftWise.Runtime.Train;

/// <summary>A loss scaler's state, as a checkpoint stores it.</summary>
/// <param name="Scale">The current loss scale.</param>
/// <param name="CleanSteps">Steps without an overflow since the scale last changed.</param>
public sealed record LossScaleState(double Scale, long CleanSteps)
{
    /// <summary>Adds the state to a checkpoint's metadata (loss_scale, loss_scale_clean_steps).</summary>
    public void WriteTo(IDictionary<string, string> meta)
    {
        meta["loss_scale"] = Scale.ToString("R", CultureInfo.InvariantCulture);
        meta["loss_scale_clean_steps"] = CleanSteps.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>The state in a checkpoint's metadata, null when it has none; a malformed one names the file.</summary>
    public static LossScaleState? ReadFrom(IReadOnlyDictionary<string, string> meta, string path)
    {
        if (!meta.TryGetValue("loss_scale", out var s)) return null;
        var clean = meta.GetValueOrDefault("loss_scale_clean_steps", "0");
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double scale)
            || !long.TryParse(clean, NumberStyles.None, CultureInfo.InvariantCulture, out long steps))
        {
            throw new IrException($"{path}: loss_scale '{s}' / loss_scale_clean_steps '{clean}' are not numbers");
        }
        return new LossScaleState(scale, steps);
    }
}

/// <summary>
/// Dynamic loss scaling for fp16 training (issue 22): the loss is multiplied by <see cref="Scale"/> before the backward
/// pass so that small gradients stay above fp16's subnormal range; the trainer divides the gradients by it again and
/// reports whether any was infinite or NaN. On an overflow the step is skipped and the scale halved; after
/// <see cref="GrowthInterval"/> clean steps in a row it doubles. The defaults are PyTorch's GradScaler's (2¹⁶, ×2
/// every 2000 clean steps, ×½ on overflow). Scales stay powers of two, so scaling and unscaling are exact.
/// </summary>
public sealed class LossScaler
{
    /// <summary>The scale a run starts with.</summary>
    public const double InitialScale = 65536;

    /// <summary>Below this the gradients are not finite at any scale: the run has diverged.</summary>
    public const double MinScale = 1.0 / (1 << 24);

    /// <summary>The largest scale (fp32 holds any loss times it).</summary>
    public const double MaxScale = 1L << 40;

    /// <summary>A scaler at <paramref name="scale"/> (a power of two) with <paramref name="growthInterval"/>.</summary>
    public LossScaler(double scale = InitialScale, long growthInterval = 2000)
    {
        if (!(scale >= MinScale && scale <= MaxScale) || Math.ScaleB(1, Math.ILogB(scale)) != scale)
        {
            throw new ArgumentException($"loss scale {scale} is not a power of two in [2^-24, 2^40]", nameof(scale));
        }
        if (growthInterval < 1) throw new ArgumentException("the growth interval must be positive");
        Scale = scale;
        GrowthInterval = growthInterval;
    }

    /// <summary>The current scale.</summary>
    public double Scale { get; private set; }

    /// <summary>Clean steps needed before the scale doubles.</summary>
    public long GrowthInterval { get; }

    /// <summary>Clean steps since the scale last changed.</summary>
    public long CleanSteps { get; private set; }

    /// <summary>Optimizer steps skipped because a gradient overflowed.</summary>
    public long Skipped { get; private set; }

    /// <summary>
    /// Records the outcome of one step's gradients: false (skip the step) and the scale halved when
    /// <paramref name="finite"/> is false; else true, and the scale doubled after <see cref="GrowthInterval"/> clean
    /// steps. Throws when the scale would fall below <see cref="MinScale"/>.
    /// </summary>
    public bool Record(bool finite)
    {
        if (!finite)
        {
            Skipped++;
            CleanSteps = 0;
            if (Scale / 2 < MinScale)
            {
                throw new IrException("fp16 training diverged: the gradients are infinite or NaN even at "
                    + $"a loss scale of 2^{Math.ILogB(Scale)}; try --precision bf16 or a lower learning rate");
            }
            Scale /= 2;
            return false;
        }
        if (++CleanSteps >= GrowthInterval)
        {
            CleanSteps = 0;
            Scale = Math.Min(Scale * 2, MaxScale);
        }
        return true;
    }

    /// <summary>The state a checkpoint stores.</summary>
    public LossScaleState Save() => new(Scale, CleanSteps);

    /// <summary>Restores a checkpoint's state (validated as the constructor validates).</summary>
    public void Load(LossScaleState s)
    {
        var check = new LossScaler(s.Scale, GrowthInterval);
        if (s.CleanSteps < 0 || s.CleanSteps >= GrowthInterval)
        {
            throw new ArgumentException($"{s.CleanSteps} clean steps is outside [0, {GrowthInterval})");
        }
        Scale = check.Scale;
        CleanSteps = s.CleanSteps;
    }
}
