namespace ShiftWise.Runtime.Train;

/// <summary>
/// AdamW with torch.optim.AdamW's semantics (amsgrad off, single-tensor path), in float32 per element:
/// p ← p·(1 − lr·wd); m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; p ← p − (lr /
/// (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε).
/// Scalars (lr, bias corrections) are computed in double, as Python does, and rounded to float32 where torch's kernels
/// round them. Buffers: <c>exp_avg</c> and <c>exp_avg_sq</c>.
/// </summary>
public sealed class AdamW : Optimizer
{
    private readonly double _beta1, _beta2, _eps;

    /// <summary>Creates AdamW over the named parameters; by default the recipe's settings (SPEC 6).</summary>
    /// <param name="shapes">Parameter name to shape.</param>
    /// <param name="learningRate">The initial learning rate.</param>
    /// <param name="beta1">β₁.</param>
    /// <param name="beta2">β₂.</param>
    /// <param name="eps">ε, added after the square root.</param>
    /// <param name="weightDecay">Decoupled weight decay of the decaying group.</param>
    /// <param name="noDecayRule">Whether <see cref="Optimizer.NoDecay"/> parameters get weight decay 0.</param>
    public AdamW(IReadOnlyDictionary<string, int[]> shapes, double learningRate = 4e-3, double beta1 = 0.9,
        double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0.05, bool noDecayRule = true)
        : base(shapes, learningRate, weightDecay, noDecayRule)
    {
        _beta1 = beta1;
        _beta2 = beta2;
        _eps = eps;
    }

    /// <summary>
    /// The step's scalars as torch computes them (in double, as Python does, rounded to float32 where its kernels
    /// round): 1 − lr·wd, lr / (1 − β₁ᵗ) and √(1 − β₂ᵗ); the device optimizer's kernel takes the same three.
    /// </summary>
    public static (float Decay, float StepSize, float Bc2Sqrt) Scalars(double lr, float weightDecay, double beta1,
        double beta2, long step) =>
        ((float)(1 - lr * weightDecay), (float)(lr / (1 - Math.Pow(beta1, step))),
            (float)Math.Sqrt(1 - Math.Pow(beta2, step)));

    /// <inheritdoc/>
    protected override void Update(string name, float[] param, float[] grad, float weightDecay, long step)
    {
        var m = Buffer(name, "exp_avg");
        var v = Buffer(name, "exp_avg_sq");
        var (decay, stepSize, bc2Sqrt) = Scalars(LearningRate, weightDecay, _beta1, _beta2, step);
        float b1 = (float)_beta1, c1 = (float)(1 - _beta1), b2 = (float)_beta2, c2 = (float)(1 - _beta2);
        float eps = (float)_eps;
        for (int i = 0; i < param.Length; i++)
        {
            float g = grad[i];
            float p = weightDecay != 0 ? param[i] * decay : param[i];
            m[i] = m[i] * b1 + c1 * g;
            v[i] = v[i] * b2 + c2 * (g * g);
            float denom = MathF.Sqrt(v[i]) / bc2Sqrt + eps;
            param[i] = p - stepSize * (m[i] / denom);
        }
    }
}
