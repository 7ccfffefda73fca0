using System.Diagnostics;
using ShiftWise.Frontend;
using ShiftWise.IR;

namespace ShiftWise.Runtime.Compile;

/// <summary>
/// How one input shape got its compiled model: planned now (with where each generated kernel came from) or reused.
/// </summary>
/// <param name="Shape">The input shape.</param>
/// <param name="Reused">True: the shape's compiled model was still held, nothing was planned or bound.</param>
/// <param name="Compiled">Kernels compiled now (Roslyn or NVRTC ran).</param>
/// <param name="Disk">Kernels loaded from the disk cache.</param>
/// <param name="Memory">Kernels already loaded in this process.</param>
/// <param name="Time">Time to load, plan and bind (zero when reused).</param>
public sealed record ShapeCompile(Shape Shape, bool Reused, int Compiled, int Disk, int Memory, TimeSpan Time)
{
    /// <summary>
    /// One line for a log: "[2,3,64,64]: planned in 0.41 s, kernels: 2 compiled, 0 from disk, 5 in memory".
    /// </summary>
    public override string ToString() => Reused
        ? $"{Shape}: reused its compiled model"
        : $"{Shape}: planned in {Time.TotalSeconds:F2} s, kernels: {Compiled} compiled, {Disk} from disk, {Memory} in "
            + "memory";
}

/// <summary>
/// A model whose input shape (batch, height, width) is chosen at run time: each new shape is re-planned (the graph
/// rebuilt for it, the pipeline run, lowered and bound) and its compiled model kept, the least recently used one
/// dropped beyond <see cref="Capacity"/>. Kernels are cached per shape by the process-wide kernel caches (the CPU's
/// Roslyn assemblies, NVRTC's CUBINs, both keyed by their source), so a plan made again, or one whose kernels do not
/// depend on the shape that changed (the CPU's SW kernels take the batch as an argument), compiles nothing.
/// The weights are drawn or read once; the channel count is the model's and cannot change.
/// </summary>
public sealed class AnyShapeModel : IDisposable
{
    private readonly string _model;
    private readonly ModelArgs _args;
    private readonly CompileOptions _options;
    private readonly Action<string>? _log;
    private readonly Dictionary<Shape, (CompiledModel Model, long Used)> _held = [];
    private readonly List<ShapeCompile> _history = [];
    private LoadedModel? _first;
    private long _clock;

    /// <summary>
    /// A model (a zoo name or a .swir file, as <see cref="Driver.Load"/> takes it) for <paramref name="target"/>;
    /// <paramref name="args"/> give its options, weights and, through their batch and size, the shape planned first
    /// when <see cref="Prepare"/> is called without a shape.
    /// </summary>
    public AnyShapeModel(string model, ModelArgs args, ITarget target, CompileOptions? options = null,
        Action<string>? log = null, int capacity = 4)
    {
        if (capacity < 1) throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "must be >= 1");
        _model = model;
        _args = args;
        Target = target;
        _options = options ?? new CompileOptions { TuningCache = true };
        _log = log;
        Capacity = capacity;
    }

    /// <summary>The target every shape is compiled for.</summary>
    public ITarget Target { get; }

    /// <summary>How many compiled models are held at most.</summary>
    public int Capacity { get; }

    /// <summary>Every shape asked for, in order, and how it got its compiled model.</summary>
    public IReadOnlyList<ShapeCompile> History => _history;

    /// <summary>The shapes whose compiled models are held now.</summary>
    public IReadOnlyCollection<Shape> Held => _held.Keys;

    /// <summary>
    /// The compiled model for inputs of <paramref name="shape"/> (null: the shape the model's options say), planned
    /// now or reused.
    /// </summary>
    public CompiledModel Prepare(Shape? shape = null)
    {
        var sw = Stopwatch.StartNew();
        var s = shape ?? FirstShape;
        if (_held.TryGetValue(s, out var h))
        {
            _held[s] = (h.Model, ++_clock);
            _history.Add(new ShapeCompile(s, true, 0, 0, 0, TimeSpan.Zero));
            return h.Model;
        }
        var m = Load(s);
        s = m.Graph.Inputs[0].Type.Shape; // a .swir graph keeps its own (the caller refuses an input that differs)
        var cm = Driver.Compile(m, Target, _options, _log);
        var outcomes = cm.Executor.KernelOutcomes;
        _history.Add(new ShapeCompile(s, false, outcomes.Count(o => o == CacheOutcome.Compiled),
            outcomes.Count(o => o == CacheOutcome.Disk), outcomes.Count(o => o == CacheOutcome.Memory), sw.Elapsed));
        if (_held.Count >= Capacity)
        {
            var oldest = _held.MinBy(kv => kv.Value.Used);
            oldest.Value.Model.Dispose();
            _held.Remove(oldest.Key);
        }
        _held[s] = (cm, ++_clock);
        return cm;
    }

    /// <summary>
    /// The input shape the model's options say (their batch and size): the model is loaded, with its weights, the first
    /// time this or <see cref="Prepare"/> is called; nothing is planned.
    /// </summary>
    public Shape FirstShape => Load(null).Graph.Inputs[0].Type.Shape;

    /// <summary>
    /// Runs the model on <paramref name="x"/> (any batch and size); every graph output in graph order.
    /// </summary>
    public IReadOnlyList<(string Name, Tensor Value)> RunAll(Tensor x) => Prepare(x.Shape).RunAll(x);

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var (m, _) in _held.Values) m.Dispose();
        _held.Clear();
    }

    // the model rebuilt for a shape; the weights of the first load are kept (a checkpoint is read again for its
    // options, a cheap part of a re-plan; random weights are drawn once)
    private LoadedModel Load(Shape? shape)
    {
        if (_first is null)
        {
            // the first shape is checked against options that fix a batch or size (an error when they disagree)
            _first = Driver.Load(_model, shape is null ? _args : _args with { InputShape = shape });
            CheckOneInput(_first);
            return _first;
        }
        var fixedShape = _first.Graph.Inputs[0].Type.Shape;
        if (shape is null || shape.Equals(fixedShape)) return _first;
        if (shape.Rank != fixedShape.Rank || shape.Rank < 2 || shape[1] != fixedShape[1])
        {
            throw new IrException($"input shape {shape}: the model takes {fixedShape.Rank}-d inputs of "
                + $"{fixedShape[1]} channels, as {fixedShape}; only the batch and the spatial size can change");
        }
        if (_model.EndsWith(".swir", StringComparison.OrdinalIgnoreCase))
        {
            throw new IrException($"input shape {shape}: {_model} is a graph of fixed shape {fixedShape}; a model by "
                + "zoo name is rebuilt for each shape");
        }
        var g = Driver.Load(_model, Reshaped(shape), withWeights: false).Graph;
        return new LoadedModel(g, _first.Weights, _first.Description);
    }

    // the options with the shape's batch and size in place of any given ones (a later input decides its own)
    private ModelArgs Reshaped(Shape s) => _args with
    {
        InputShape = s, Batch = null, ImageSize = null, ImageWidth = null, Height = null, Width = null,
    };

    private void CheckOneInput(LoadedModel m)
    {
        if (m.Graph.Inputs.Count != 1)
        {
            throw new IrException($"{_model}: the model has {m.Graph.Inputs.Count} inputs; a model of run-time shape "
                + "takes one");
        }
    }
}
