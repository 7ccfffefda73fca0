using System.Diagnostics;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes;
using ShiftWise.Runtime.Cpu.Kernels;

namespace ShiftWise.Runtime.Cpu;

/// <summary>Time spent in one node over the runs of an executor.</summary>
public sealed record KernelTime(string Node, string Op, string Kernel, TimeSpan Total, int Runs)
{
    /// <summary>
    /// The fastest single run (zero when not recorded): on a shared, noisy machine the steadiest figure.
    /// </summary>
    public TimeSpan Min { get; init; }
}

/// <summary>
/// Runs a float32 graph on the CPU: parameters bound once (float32 storage as it is, other types converted), every
/// activation in one arena laid out by the memory plan (reshapes and eval drop-paths are views), one kernel per node
/// bound at construction, as the plan (<see cref="CpuLowering"/>) chose it.
/// </summary>
public sealed class CpuExecutor : Compile.IExecutor
{
    private readonly Graph _graph;
    private readonly Dictionary<string, TensorType> _types;
    private readonly float[] _arena;
    private readonly Dictionary<string, Buf> _bufs = new(StringComparer.Ordinal);
    private readonly List<(Node Node, CpuKernel Kernel, Buf[] In, Buf[] Out)> _steps = [];
    private readonly List<(string View, string Of, int Length)> _views = [];
    private bool _private;
    private readonly Dictionary<Node, Stopwatch> _times = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<Node, long> _mins = new(ReferenceEqualityComparer.Instance);
    private int _profiledRuns;
    private static int _blasWarned;

    /// <summary>
    /// Binds a plan (<see cref="CpuLowering.Lower"/>): parameters bound to their float32 storage without a copy (the
    /// executor only reads them; <see cref="Parameter"/> first gives every parameter an array of its own), other
    /// element types converted, activations placed in the arena, and each step's kernel created (generated SW kernels
    /// rendered and compiled, or loaded).
    /// </summary>
    public CpuExecutor(CpuPlan plan, Action<string>? warn = null)
    {
        var graph = _graph = plan.Graph;
        if (Blas.Warning is { } bw && Interlocked.Exchange(ref _blasWarned, 1) == 0) warn?.Invoke("warning: " + bw);
        Plan = plan.Memory;
        _arena = new float[checked((int)(Plan.ArenaBytes / 4))];
        var types = _types = graph.ValueTypes();
        foreach (var i in graph.Inputs) _bufs[i.Name] = Buf.Of(new float[i.Type.Shape.Elements]);
        foreach (var p in graph.Params)
        {
            _bufs[p.Name] = Buf.Of(Floats(plan.Weights[p.Name]));
        }
        foreach (var s in Plan.Slots)
        {
            _bufs[s.Value] = new Buf(_arena, (int)(s.Offset / 4), (int)(types[s.Value].Shape.Elements));
        }
        foreach (var step in plan.Steps)
        {
            var n = step.Node;
            if (step.Request is not { } req)
            {
                var view = (n.Outputs[0], Plan.Aliases[n.Outputs[0]], (int)types[n.Outputs[0]].Shape.Elements);
                _views.Add(view);
                _bufs[view.Item1] = _bufs[view.Item2] with { Length = view.Item3 };
                continue;
            }
            CpuKernel k = step.Sw is { } spec
                ? new SwLayerKernel(req, spec, step.Config, warn)
                : KernelTable.Create(req);
            _steps.Add((n, k, n.Inputs.Select(i => _bufs[i]).ToArray(), n.Outputs.Select(o => _bufs[o]).ToArray()));
            _times[n] = new Stopwatch();
        }
    }

    /// <summary>The graph being run.</summary>
    public Graph Graph => _graph;

    /// <inheritdoc/>
    public IReadOnlyList<CacheOutcome> KernelOutcomes =>
        _steps.Select(s => s.Kernel).OfType<SwLayerKernel>().Select(k => k.Cache).ToArray();

    /// <summary>The activation memory plan.</summary>
    public MemoryPlan Plan { get; }

    /// <summary>
    /// The kernel bound to a node (null for a view, which runs none): which SW kernel and tile were chosen.
    /// </summary>
    public CpuKernel? KernelOf(string node) => _steps.FirstOrDefault(s => s.Node.Name == node).Kernel;

    /// <summary>Whether per-node times are recorded (a little overhead per node).</summary>
    public bool Profile { get; set; }

    /// <summary>
    /// The float32 array a parameter is bound to: updating it in place (an optimizer step, new running statistics)
    /// changes what the next run computes. The first call gives every parameter an array of its own (until then the
    /// executor reads the plan's weights in place), so updates never reach the plan's or the caller's tensors.
    /// </summary>
    public float[] Parameter(string name)
    {
        if (!_graph.Params.Any(p => p.Name == name))
        {
            throw new IrException($"graph '{_graph.Name}' has no parameter '{name}'");
        }
        if (!_private) Privatize();
        return _bufs[name].Array;
    }

    /// <summary>Whether a parameter is bound to the plan's float32 storage itself (no copy).</summary>
    public bool SharesWeight(string name, Tensor weight) => _bufs.TryGetValue(name, out var b)
        && ReferenceEquals(b.Array, weight.Data);

    // float32 storage as it is; other element types converted (rounded to float32) into a new array
    private static float[] Floats(Tensor t) => t.Data as float[] ?? (float[])t.Cast(DType.F32).Data;

    // a copy of every parameter, then the views of parameters and every step's buffers bound again by name
    private void Privatize()
    {
        _private = true;
        foreach (var p in _graph.Params) _bufs[p.Name] = Buf.Of((float[])_bufs[p.Name].Array.Clone());
        foreach (var (view, of, length) in _views) _bufs[view] = _bufs[of] with { Length = length };
        foreach (var (n, _, ins, outs) in _steps)
        {
            for (int i = 0; i < ins.Length; i++) ins[i] = _bufs[n.Inputs[i]];
            for (int i = 0; i < outs.Length; i++) outs[i] = _bufs[n.Outputs[i]];
        }
    }

    /// <summary>
    /// The buffer of an input, to fill before <see cref="RunBound"/> (integer inputs hold their values as floats).
    /// </summary>
    public Span<float> InputBuffer(string name) =>
        _graph.Inputs.Any(i => i.Name == name) ? _bufs[name].Span
            : throw new IrException($"graph '{_graph.Name}' has no input '{name}'");

    /// <summary>A graph output's values after the last run (valid until the next run).</summary>
    public ReadOnlySpan<float> OutputBuffer(string name) =>
        _graph.Outputs.Contains(name) ? _bufs[name].Span
            : throw new IrException($"graph '{_graph.Name}' has no output '{name}'");

    /// <summary>
    /// Checks the inputs and parameters before a run and every node's outputs after it runs, and stops at the first
    /// NaN or infinity with a <see cref="NonFiniteException"/> naming the node (swc --check-finite).
    /// </summary>
    public bool CheckFinite { get; set; }

    /// <summary>Runs once on the inputs already in <see cref="InputBuffer"/>.</summary>
    public void RunBound()
    {
        if (CheckFinite)
        {
            foreach (var i in _graph.Inputs)
            {
                NonFiniteException.Check(_bufs[i.Name].Span, $"the input %{i.Name}", _types[i.Name]);
            }
            foreach (var p in _graph.Params)
            {
                NonFiniteException.Check(_bufs[p.Name].Span, $"the parameter %{p.Name}", _types[p.Name]);
            }
        }
        foreach (var (n, k, ins, outs) in _steps)
        {
            long before = Profile ? _times[n].ElapsedTicks : 0;
            if (Profile) _times[n].Start();
            k.Run(ins, outs);
            if (CheckFinite)
            {
                for (int o = 0; o < outs.Length; o++)
                {
                    NonFiniteException.Check(outs[o].Span, $"{n.Describe()}, output %{n.Outputs[o]},",
                        _types[n.Outputs[o]], "every value before it was finite");
                }
            }
            if (Profile)
            {
                _times[n].Stop();
                long dt = _times[n].ElapsedTicks - before;
                _mins[n] = _mins.TryGetValue(n, out long m) ? Math.Min(m, dt) : dt;
            }
        }
        if (Profile) _profiledRuns++;
    }

    /// <summary>Runs once; returns the graph outputs as new tensors.</summary>
    public Dictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs)
    {
        foreach (var i in _graph.Inputs)
        {
            if (!inputs.TryGetValue(i.Name, out var t) || !t.Shape.Equals(i.Type.Shape))
            {
                throw new IrException($"input '{i.Name}' must have shape {i.Type.Shape}");
            }
            var b = _bufs[i.Name].Span;
            if (t.Data is float[] f)
            {
                f.CopyTo(b);
            }
            else
            {
                var d = t.ToDoubles();
                for (int k = 0; k < d.Length; k++) b[k] = (float)d[k];
            }
        }
        RunBound();
        return _graph.Outputs.ToDictionary(o => o, o => Tensor.Wrap(_types[o], _bufs[o].Span.ToArray()),
            StringComparer.Ordinal);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
    }

    /// <summary>Per-node times accumulated over the runs made while <see cref="Profile"/> was on.</summary>
    public IReadOnlyList<KernelTime> Times() =>
        _steps.Select(s => new KernelTime(s.Node.Name, s.Node.Op.Name, s.Kernel.Label, _times[s.Node].Elapsed,
            _profiledRuns)
            {
                Min = TimeSpan.FromSeconds(_mins.GetValueOrDefault(s.Node) / (double)Stopwatch.Frequency),
            })
            .ToArray();
}
