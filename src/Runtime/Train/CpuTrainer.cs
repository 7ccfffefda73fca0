using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes;
using ShiftWise.Runtime.Cpu;

namespace ShiftWise.Runtime.Train;

/// <summary>
/// One training step on the CPU target: the training graph (the model's training form plus the backward graph the
/// autodiff pass appends) bound to one executor. A step runs the forward pass with batch statistics, the loss and
/// every gradient, then writes the BatchNorms' updated running statistics into their buffers, as PyTorch does in
/// train mode. The parameters are the executor's own arrays: an optimizer updates them in place between steps.
/// </summary>
public sealed class CpuTrainer
{
    private readonly CpuExecutor _exec;
    private readonly (float[] Param, string Value)[] _running;
    private readonly Dictionary<string, float[]> _grads = new(StringComparer.Ordinal);
    private readonly Dictionary<string, float[]> _params = new(StringComparer.Ordinal);
    private readonly string _logits;
    private readonly bool _hasStep;

    /// <summary>Builds the backward graph of <paramref name="g"/> (a training form) and binds it.</summary>
    /// <param name="g">A graph built with a <see cref="TrainingForm"/>: inputs x, labels (and step), output 0 the
    /// loss.</param>
    /// <param name="weights">Every parameter and buffer.</param>
    /// <param name="warn">Receives warnings (a missing BLAS).</param>
    public CpuTrainer(Graph g, IReadOnlyDictionary<string, Tensor> weights, Action<string>? warn = null)
    {
        if (g.Outputs.Count < 2 || g.Outputs[0] != ShiftWiseV2.Loss || !g.Inputs.Any(i => i.Name == ShiftWiseV2.Labels))
        {
            throw new IrException($"graph '{g.Name}' is not a training form (loss output and labels input)");
        }
        Autodiff = AutodiffBuilder.Build(g, ShiftWiseV2.Loss);
        if (Autodiff.Unreached.Count > 0)
        {
            warn?.Invoke($"warning: the loss does not depend on {string.Join(", ", Autodiff.Unreached)}; they stay as "
                + $"they are");
        }
        Graph = Autodiff.Graph;
        _exec = new CpuExecutor(Graph, weights, generated: false, warn);
        _logits = g.Outputs[1];
        _hasStep = g.Inputs.Any(i => i.Name == ShiftWiseV2.Step);
        X = g.Inputs.Single(i => i.Name == "x").Type.Shape;
        foreach (var (p, v) in Autodiff.Gradients)
        {
            _params[p] = _exec.Parameter(p);
            _grads[p] = new float[_params[p].Length];
        }
        _running = g.Nodes.Where(n => n.Op is BatchNorm { Mode: Mode.Train })
            .SelectMany(n => new[] { (_exec.Parameter(n.Inputs[3]), n.Outputs[1]),
                (_exec.Parameter(n.Inputs[4]), n.Outputs[2]) }).ToArray();
    }

    /// <summary>The training graph (forward, loss, backward).</summary>
    public Graph Graph { get; }

    /// <summary>What the autodiff pass produced.</summary>
    public AutodiffResult Autodiff { get; }

    /// <summary>The input shape (batch, channels, height, width).</summary>
    public Shape X { get; }

    /// <summary>The executor (for profiling).</summary>
    public CpuExecutor Executor => _exec;

    /// <summary>
    /// Trainable parameters by name: the arrays the executor reads, updated in place by an optimizer.
    /// </summary>
    public IReadOnlyDictionary<string, float[]> Parameters => _params;

    /// <summary>The gradients of the last step, by parameter name.</summary>
    public IReadOnlyDictionary<string, float[]> Gradients => _grads;

    /// <summary>The logits of the last step.</summary>
    public ReadOnlySpan<float> Logits => _exec.OutputBuffer(_logits);

    /// <summary>
    /// One forward and backward pass on a batch: returns the loss; <see cref="Gradients"/> and <see cref="Logits"/>
    /// hold the rest, and the running statistics have been updated.
    /// </summary>
    /// <param name="x">The batch, (N, C, H, W) row-major.</param>
    /// <param name="labels">One class per image.</param>
    /// <param name="step">The training step (seeds DropPath).</param>
    public double Step(ReadOnlySpan<float> x, ReadOnlySpan<int> labels, long step)
    {
        x.CopyTo(_exec.InputBuffer("x"));
        var lb = _exec.InputBuffer(ShiftWiseV2.Labels);
        if (labels.Length != lb.Length)
        {
            throw new ArgumentException($"{labels.Length} labels for a batch of {lb.Length}", nameof(labels));
        }
        for (int i = 0; i < labels.Length; i++) lb[i] = labels[i];
        if (_hasStep) _exec.InputBuffer(ShiftWiseV2.Step)[0] = step;
        _exec.RunBound();
        foreach (var (p, v) in Autodiff.Gradients) _exec.OutputBuffer(v).CopyTo(_grads[p]);
        foreach (var (p, v) in _running) _exec.OutputBuffer(v).CopyTo(p);
        return _exec.OutputBuffer(ShiftWiseV2.Loss)[0];
    }

    /// <summary>Every parameter and buffer as it is now (copies).</summary>
    public Dictionary<string, Tensor> Weights() =>
        Graph.Params.ToDictionary(p => p.Name, p => Tensor.Wrap(p.Type, (float[])_exec.Parameter(p.Name).Clone()),
            StringComparer.Ordinal);

    /// <summary>
    /// Overwrites parameters and buffers from <paramref name="weights"/> (a checkpoint), checking shapes.
    /// </summary>
    public void Load(IReadOnlyDictionary<string, Tensor> weights)
    {
        foreach (var p in Graph.Params)
        {
            if (!weights.TryGetValue(p.Name, out var t)) throw new IrException($"the checkpoint has no '{p.Name}'");
            if (!t.Shape.Equals(p.Type.Shape))
            {
                throw new IrException($"'{p.Name}' has shape {t.Shape} in the checkpoint, the model {p.Type.Shape}");
            }
            var d = t.ToDoubles();
            var a = _exec.Parameter(p.Name);
            for (int i = 0; i < a.Length; i++) a[i] = (float)d[i];
        }
    }
}
