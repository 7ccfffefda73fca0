using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Cpu;

namespace ShiftWise.Runtime.Train;

/// <summary>
/// One training step on the CPU target: the training graph (the model's training form plus the backward graph the
/// training pipeline's autodiff appends) bound to one executor. A step runs the forward pass with batch statistics,
/// the loss and every gradient, then writes the BatchNorms' updated running statistics into their buffers, as
/// PyTorch does in train mode. The parameters are the executor's own arrays: an optimizer updates them in place
/// between steps. The model names the loss, labels and step values (<see cref="TrainingRoles"/>).
/// </summary>
public sealed class CpuTrainer
{
    private readonly CpuExecutor _exec;
    private readonly (float[] Param, string Value)[] _running;
    private readonly Dictionary<string, float[]> _grads = new(StringComparer.Ordinal);
    private readonly Dictionary<string, float[]> _params = new(StringComparer.Ordinal);
    private readonly TrainingRoles _roles;
    private readonly Dictionary<string, string> _gradValues = new(StringComparer.Ordinal);

    /// <summary>
    /// Takes a model compiled for the CPU with the training pipeline
    /// (<see cref="Driver.CompileTraining(LoadedModel, Action{string})"/>): its graph has the backward nodes and one
    /// gradient output per parameter the loss depends on.
    /// </summary>
    /// <param name="compiled">The compiled training graph.</param>
    /// <param name="roles">The values the model names for training.</param>
    /// <param name="warn">Receives warnings (parameters the loss does not depend on).</param>
    public CpuTrainer(CompiledModel compiled, TrainingRoles roles, Action<string>? warn = null)
    {
        _roles = roles;
        Graph = compiled.Graph;
        _exec = compiled.Cpu;
        var values = Graph.ValueTypes();
        var unreached = new List<string>();
        foreach (var p in Graph.Params.Where(p => !p.Buffer && p.Type.DType.IsFloat()))
        {
            if (!values.ContainsKey(AutodiffBuilder.GradName(p.Name)))
            {
                unreached.Add(p.Name);
                continue;
            }
            _gradValues[p.Name] = AutodiffBuilder.GradName(p.Name);
            _params[p.Name] = _exec.Parameter(p.Name);
            _grads[p.Name] = new float[_params[p.Name].Length];
        }
        if (unreached.Count > 0)
        {
            warn?.Invoke($"warning: the loss does not depend on {string.Join(", ", unreached)}; they stay as they are");
        }
        X = Graph.Inputs.Single(i => i.Name == roles.Input).Type.Shape;
        _running = Graph.Nodes.Where(n => n.Op is BatchNorm { Mode: Mode.Train })
            .SelectMany(n => new[] { (_exec.Parameter(n.Inputs[3]), n.Outputs[1]),
                (_exec.Parameter(n.Inputs[4]), n.Outputs[2]) }).ToArray();
    }

    /// <summary>The training graph (forward, loss, backward).</summary>
    public Graph Graph { get; }

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
    public ReadOnlySpan<float> Logits => _exec.OutputBuffer(_roles.Logits);

    /// <summary>
    /// One forward and backward pass on a batch: returns the loss; <see cref="Gradients"/> and <see cref="Logits"/>
    /// hold the rest, and the running statistics have been updated.
    /// </summary>
    /// <param name="x">The batch, (N, C, H, W) row-major.</param>
    /// <param name="labels">One class per image.</param>
    /// <param name="step">The training step (seeds DropPath).</param>
    public double Step(ReadOnlySpan<float> x, ReadOnlySpan<int> labels, long step)
    {
        x.CopyTo(_exec.InputBuffer(_roles.Input));
        var lb = _exec.InputBuffer(_roles.Labels);
        if (labels.Length != lb.Length)
        {
            throw new ArgumentException($"{labels.Length} labels for a batch of {lb.Length}", nameof(labels));
        }
        for (int i = 0; i < labels.Length; i++) lb[i] = labels[i];
        if (_roles.Step is { } stepInput) _exec.InputBuffer(stepInput)[0] = step;
        _exec.RunBound();
        foreach (var (p, v) in _gradValues) _exec.OutputBuffer(v).CopyTo(_grads[p]);
        foreach (var (p, v) in _running) _exec.OutputBuffer(v).CopyTo(p);
        return _exec.OutputBuffer(_roles.Loss)[0];
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
