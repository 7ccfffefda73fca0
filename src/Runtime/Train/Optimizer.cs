namespace ShiftWise.Runtime.Train;

/// <summary>
/// The saved state of an <see cref="Optimizer"/>: its step counter and its per-parameter buffers, keyed
/// <c>"{parameter}/{buffer}"</c> (for example <c>"stem.weight/exp_avg"</c>). Restoring it with
/// <see cref="Optimizer.LoadState"/> into an optimizer with the same settings continues a run bit-identically.
/// </summary>
/// <param name="Step">The number of optimizer steps taken.</param>
/// <param name="Buffers">The per-parameter float32 buffers, each as long as its parameter.</param>
public sealed record OptimizerState(long Step, IReadOnlyDictionary<string, float[]> Buffers)
{
    /// <summary>fp16 training's loss scaler (null: no loss scaling).</summary>
    public LossScaleState? LossScale { get; init; }
}

/// <summary>
/// An optimizer over named float32 parameters. Each <see cref="Step"/> updates every parameter in place from its
/// gradient, with the current <see cref="LearningRate"/>; the update is element-wise, so parameters are independent.
/// </summary>
public abstract class Optimizer
{
    private readonly Dictionary<string, float> _weightDecay;
    private readonly Dictionary<string, int> _sizes;
    private readonly SortedDictionary<string, float[]> _buffers = new(StringComparer.Ordinal);

    /// <summary>Creates an optimizer for the parameters named in <paramref name="shapes"/>.</summary>
    /// <param name="shapes">Parameter name to shape.</param>
    /// <param name="learningRate">The initial learning rate (a schedule usually sets it before every step).</param>
    /// <param name="weightDecay">The weight decay of the parameters that decay.</param>
    /// <param name="noDecayRule">
    /// When true, the parameters <see cref="NoDecay"/> picks get weight decay 0 (the recipe's two param groups);
    /// otherwise all parameters get <paramref name="weightDecay"/>.
    /// </param>
    protected Optimizer(IReadOnlyDictionary<string, int[]> shapes, double learningRate, double weightDecay,
        bool noDecayRule)
    {
        ArgumentNullException.ThrowIfNull(shapes);
        _weightDecay = new(StringComparer.Ordinal);
        _sizes = new(StringComparer.Ordinal);
        foreach (var (name, shape) in shapes)
        {
            int size = 1;
            foreach (int d in shape)
            {
                if (d < 0) throw new ArgumentException($"parameter '{name}' has a negative dimension", nameof(shapes));
                size = checked(size * d);
            }
            _sizes[name] = size;
            _weightDecay[name] = noDecayRule && NoDecay(name, shape) ? 0f : (float)weightDecay;
        }
        LearningRate = learningRate;
    }

    /// <summary>
    /// The recipe's no-decay rule (SPEC 6, ConvNeXt's optim_factory): rank-1 parameters (norm weights and biases,
    /// layer scales) and names ending in <c>.bias</c> get no weight decay. GRN γ and β are 4-D, so they do decay.
    /// </summary>
    /// <param name="name">The parameter's name.</param>
    /// <param name="shape">The parameter's shape.</param>
    /// <returns>True when the parameter gets weight decay 0.</returns>
    public static bool NoDecay(string name, IReadOnlyList<int> shape)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(shape);
        return shape.Count == 1 || name.EndsWith(".bias", StringComparison.Ordinal);
    }

    /// <summary>The learning rate the next <see cref="Step"/> uses.</summary>
    public double LearningRate { get; set; }

    /// <summary>The number of steps taken (1 after the first <see cref="Step"/>).</summary>
    public long StepCount { get; private set; }

    /// <summary>The weight decay this optimizer applies to the named parameter (0 for the no-decay group).</summary>
    /// <param name="name">A parameter name given at construction.</param>
    /// <returns>The parameter's weight decay.</returns>
    public float WeightDecayOf(string name) =>
        _weightDecay.TryGetValue(name, out float wd) ? wd
            : throw new KeyNotFoundException($"unknown parameter '{name}'");

    /// <summary>
    /// One optimizer step: updates every parameter in place. Every parameter given at construction must be present in
    /// both dictionaries with its size (all parameters step together; there is a single step counter).
    /// </summary>
    /// <param name="parameters">Parameter name to values, updated in place.</param>
    /// <param name="gradients">Parameter name to gradient.</param>
    public void Step(IReadOnlyDictionary<string, float[]> parameters, IReadOnlyDictionary<string, float[]> gradients)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(gradients);
        foreach (var (name, size) in _sizes)
        {
            if (!parameters.TryGetValue(name, out var p) || p.Length != size)
                throw new ArgumentException($"parameter '{name}' missing or not of size {size}", nameof(parameters));
            if (!gradients.TryGetValue(name, out var g) || g.Length != size)
                throw new ArgumentException($"gradient of '{name}' missing or not of size {size}", nameof(gradients));
        }
        StepCount++;
        foreach (var name in _sizes.Keys)
        {
            Update(name, parameters[name], gradients[name], _weightDecay[name], StepCount);
        }
    }

    /// <summary>Updates one parameter in place.</summary>
    /// <param name="name">The parameter's name (the key for <see cref="Buffer"/>).</param>
    /// <param name="param">The parameter, updated in place.</param>
    /// <param name="grad">Its gradient.</param>
    /// <param name="weightDecay">Its weight decay.</param>
    /// <param name="step">The step number, 1 for the first step.</param>
    protected abstract void Update(string name, float[] param, float[] grad, float weightDecay, long step);

    /// <summary>The named per-parameter state buffer, created zero-filled on first use.</summary>
    /// <param name="name">The parameter's name.</param>
    /// <param name="buffer">The buffer's name, for example <c>exp_avg</c>.</param>
    /// <returns>The buffer, as long as the parameter.</returns>
    protected float[] Buffer(string name, string buffer)
    {
        string key = name + "/" + buffer;
        if (!_buffers.TryGetValue(key, out var b))
        {
            b = new float[_sizes[name]];
            _buffers[key] = b;
        }
        return b;
    }

    /// <summary>A deep copy of the state: the step counter and every buffer.</summary>
    /// <returns>The state, independent of this optimizer.</returns>
    public OptimizerState SaveState()
    {
        var copy = new SortedDictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var (k, v) in _buffers) copy[k] = (float[])v.Clone();
        return new OptimizerState(StepCount, copy);
    }

    /// <summary>
    /// Replaces the state with a deep copy of <paramref name="state"/> (from <see cref="SaveState"/>).
    /// </summary>
    /// <param name="state">The saved state; its buffers must belong to this optimizer's parameters.</param>
    public void LoadState(OptimizerState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (state.Step < 0) throw new ArgumentException("negative step counter", nameof(state));
        foreach (var (k, v) in state.Buffers)
        {
            int slash = k.LastIndexOf('/');
            if (slash < 0 || !_sizes.TryGetValue(k[..slash], out int size) || v.Length != size)
                throw new ArgumentException($"state buffer '{k}' does not fit this optimizer's parameters",
                    nameof(state));
        }
        _buffers.Clear();
        foreach (var (k, v) in state.Buffers) _buffers[k] = (float[])v.Clone();
        StepCount = state.Step;
    }
}
