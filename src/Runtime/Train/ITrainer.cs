using ShiftWise.IR;
using ShiftWise.Runtime.Cpu;

namespace ShiftWise.Runtime.Train;

/// <summary>What a trainer needs to build its optimizer: the recipe's optimizer settings.</summary>
/// <param name="Kind">"adamw" or "sgd".</param>
/// <param name="Lr">The initial learning rate.</param>
/// <param name="WeightDecay">The weight decay of the decaying group (the no-decay rule picks the rest).</param>
/// <param name="Momentum">SGD's momentum.</param>
/// <param name="Accumulate">Micro-batches per optimizer step.</param>
public sealed record OptimizerSettings(string Kind, double Lr, double WeightDecay, double Momentum = 0.9,
    int Accumulate = 1)
{
    /// <summary>The CPU optimizer of these settings over parameters of the given shapes.</summary>
    public Optimizer Create(IReadOnlyDictionary<string, int[]> shapes) => Kind == "sgd"
        ? new Sgd(shapes, Lr, Momentum, WeightDecay)
        : new AdamW(shapes, Lr, weightDecay: WeightDecay);
}

/// <summary>
/// A training step on one target, with its optimizer. A step goes: fill an input slot
/// (<see cref="InputSlot"/>), <see cref="Submit"/> it (on a GPU its copy to the device starts), <see cref="Step"/>
/// (forward and backward with batch statistics; the BatchNorms' running statistics updated), then
/// <see cref="Update"/> (gradient accumulation; every N-th micro-batch the optimizer steps). Two slots let the next
/// batch be assembled and copied while a step runs. Weights and optimizer state read and load in one format for every
/// target, so a checkpoint of one resumes on another.
/// </summary>
public interface ITrainer : IDisposable
{
    /// <summary>The target, for reports ("cpu", "cuda (NVIDIA H100 ..., sm_90)").</summary>
    string Device { get; }

    /// <summary>The training graph (forward, loss, backward).</summary>
    Graph Graph { get; }

    /// <summary>The input shape (batch, channels, height, width).</summary>
    Shape X { get; }

    /// <summary>Bytes of the activation arena.</summary>
    long ArenaBytes { get; }

    /// <summary>Check every node of each step for NaN or Inf and stop at the first.</summary>
    bool CheckFinite { get; set; }

    /// <summary>Time every kernel of each step (read with <see cref="Times"/>).</summary>
    bool Profile { get; set; }

    /// <summary>Input slot 0 or 1: where a batch of images (N, C, H, W) is assembled.</summary>
    Span<float> InputSlot(int slot);

    /// <summary>Marks a filled slot ready with its labels and step number; may be called from another thread.</summary>
    void Submit(int slot, ReadOnlySpan<int> labels, long step);

    /// <summary>Forward and backward on a submitted slot; returns the loss.</summary>
    double Step(int slot);

    /// <summary>The logits of the last step.</summary>
    ReadOnlySpan<float> Logits { get; }

    /// <summary>
    /// Adds the last step's gradients, scaled by 1/N, to the accumulated ones and on every N-th call steps the
    /// optimizer with <paramref name="lr"/>; true when it stepped.
    /// </summary>
    bool Update(double lr);

    /// <summary>The gradients of the last step by parameter name (copies; for tests and swc grad).</summary>
    Dictionary<string, float[]> Gradients();

    /// <summary>Every parameter and buffer as it is now (copies).</summary>
    Dictionary<string, Tensor> Weights();

    /// <summary>Overwrites parameters and buffers from a checkpoint, checking shapes.</summary>
    void Load(IReadOnlyDictionary<string, Tensor> weights);

    /// <summary>The optimizer's state in the CPU optimizer's format (per-parameter buffers).</summary>
    OptimizerState SaveState();

    /// <summary>Restores a state from <see cref="SaveState"/> of any target.</summary>
    void LoadState(OptimizerState state);

    /// <summary>With <see cref="Profile"/>: the time of every node over the steps so far.</summary>
    IReadOnlyList<KernelTime> Times();
}

/// <summary>Conveniences over <see cref="ITrainer"/>.</summary>
public static class TrainerExtensions
{
    /// <summary>One step on a batch given outright (slot 0): copy, submit, step.</summary>
    public static double Step(this ITrainer t, ReadOnlySpan<float> x, ReadOnlySpan<int> labels, long step)
    {
        x.CopyTo(t.InputSlot(0));
        t.Submit(0, labels, step);
        return t.Step(0);
    }
}

/// <summary>
/// The CPU target's trainer: <see cref="CpuTrainer"/> (the training graph on the CPU executor) with the CPU
/// optimizer and <see cref="GradientAccumulator"/>.
/// </summary>
public sealed class CpuTraining : ITrainer
{
    private readonly CpuTrainer _t;
    private readonly Optimizer _opt;
    private readonly GradientAccumulator _acc;
    private readonly float[][] _slots;
    private readonly int[][] _labels;
    private readonly long[] _steps = new long[2];
    private readonly Dictionary<string, float[]> _scaled;
    private readonly float _scale;
    private readonly int _accumulate;

    /// <summary>Binds a trainer to a model compiled for the CPU with the training pipeline.</summary>
    public CpuTraining(CpuTrainer trainer, Graph forward, OptimizerSettings settings)
    {
        _t = trainer;
        var shapes = trainer.Parameters.ToDictionary(kv => kv.Key,
            kv => forward.Params.First(p => p.Name == kv.Key).Type.Shape.ToArray());
        _opt = settings.Create(shapes);
        _acc = new GradientAccumulator(_opt, trainer.Parameters, settings.Accumulate);
        _scale = 1f / settings.Accumulate;
        _accumulate = settings.Accumulate;
        _scaled = trainer.Gradients.ToDictionary(kv => kv.Key,
            kv => new float[settings.Accumulate > 1 ? kv.Value.Length : 0]);
        long n = trainer.X.Elements;
        _slots = [new float[n], new float[n]];
        _labels = [new int[trainer.X[0]], new int[trainer.X[0]]];
    }

    /// <summary>The CPU trainer underneath.</summary>
    public CpuTrainer Trainer => _t;

    /// <summary>The optimizer.</summary>
    public Optimizer Optimizer => _opt;

    /// <inheritdoc/>
    public string Device => "cpu";

    /// <inheritdoc/>
    public Graph Graph => _t.Graph;

    /// <inheritdoc/>
    public Shape X => _t.X;

    /// <inheritdoc/>
    public long ArenaBytes => _t.Executor.Plan.ArenaBytes;

    /// <inheritdoc/>
    public bool CheckFinite
    {
        get => _t.Executor.CheckFinite;
        set => _t.Executor.CheckFinite = value;
    }

    /// <inheritdoc/>
    public bool Profile
    {
        get => _t.Executor.Profile;
        set => _t.Executor.Profile = value;
    }

    /// <inheritdoc/>
    public Span<float> InputSlot(int slot) => _slots[slot];

    /// <inheritdoc/>
    public void Submit(int slot, ReadOnlySpan<int> labels, long step)
    {
        labels.CopyTo(_labels[slot]);
        _steps[slot] = step;
    }

    /// <inheritdoc/>
    public double Step(int slot) => _t.Step(_slots[slot], _labels[slot], _steps[slot]);

    /// <inheritdoc/>
    public ReadOnlySpan<float> Logits => _t.Logits;

    /// <inheritdoc/>
    public bool Update(double lr)
    {
        _opt.LearningRate = lr;
        if (_accumulate == 1) return _acc.Accumulate(_t.Gradients);
        foreach (var (p, g) in _t.Gradients)
        {
            var d = _scaled[p];
            for (int i = 0; i < g.Length; i++) d[i] = g[i] * _scale;
        }
        return _acc.Accumulate(_scaled);
    }

    /// <inheritdoc/>
    public Dictionary<string, float[]> Gradients() =>
        _t.Gradients.ToDictionary(kv => kv.Key, kv => (float[])kv.Value.Clone(), StringComparer.Ordinal);

    /// <inheritdoc/>
    public Dictionary<string, Tensor> Weights() => _t.Weights();

    /// <inheritdoc/>
    public void Load(IReadOnlyDictionary<string, Tensor> weights) => _t.Load(weights);

    /// <inheritdoc/>
    public OptimizerState SaveState() => _opt.SaveState();

    /// <inheritdoc/>
    public void LoadState(OptimizerState state) => _opt.LoadState(state);

    /// <inheritdoc/>
    public IReadOnlyList<KernelTime> Times() => _t.Executor.Times();

    /// <inheritdoc/>
    public void Dispose()
    {
    }
}
