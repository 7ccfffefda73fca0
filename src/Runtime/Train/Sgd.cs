namespace ShiftWise.Runtime.Train;

/// <summary>
/// SGD with momentum, torch.optim.SGD's semantics (dampening 0, nesterov off), in float32 per element:
/// d ← g + wd·p (coupled weight decay); b ← μb + d (b = d on the first step); p ← p − lr·b. Buffer:
/// <c>momentum_buffer</c>.
/// </summary>
public sealed class Sgd : Optimizer
{
    private readonly double _momentum;

    /// <summary>Creates SGD over the named parameters.</summary>
    /// <param name="shapes">Parameter name to shape.</param>
    /// <param name="learningRate">The initial learning rate.</param>
    /// <param name="momentum">μ; 0 disables the buffer.</param>
    /// <param name="weightDecay">Weight decay added to the gradient, of the decaying group.</param>
    /// <param name="noDecayRule">Whether <see cref="Optimizer.NoDecay"/> parameters get weight decay 0.</param>
    public Sgd(IReadOnlyDictionary<string, int[]> shapes, double learningRate, double momentum = 0.9,
        double weightDecay = 0, bool noDecayRule = true)
        : base(shapes, learningRate, weightDecay, noDecayRule)
    {
        _momentum = momentum;
    }

    /// <inheritdoc/>
    protected override void Update(string name, float[] param, float[] grad, float weightDecay, long step)
    {
        float lr = (float)LearningRate, mu = (float)_momentum;
        float[]? buf = _momentum != 0 ? Buffer(name, "momentum_buffer") : null;
        for (int i = 0; i < param.Length; i++)
        {
            float d = weightDecay != 0 ? grad[i] + weightDecay * param[i] : grad[i];
            if (buf is not null)
            {
                // torch clones d into the buffer on the first step; a zero buffer gives the same bits (0·μ + d = d).
                buf[i] = step == 1 ? d : buf[i] * mu + d;
                d = buf[i];
            }
            param[i] -= lr * d;
        }
    }
}
