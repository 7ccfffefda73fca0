using System.Diagnostics;
using System.Runtime.InteropServices;
using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.Passes;
using ShiftWise.Runtime.Cpu;
using ShiftWise.Runtime.Native;
using ShiftWise.Runtime.Train;

namespace ShiftWise.Runtime.Cuda;

/// <summary>
/// The CUDA target's trainer: a <see cref="CudaTrainingPlan"/> bound to GPU 0. The trainable parameters live in one
/// flat buffer that the plan's steps read and the fused optimizer updates; gradients are copied into a second flat
/// buffer after each step, running statistics into their buffers. Input: two page-locked host slots, each copied on a
/// second stream into its own device staging slot as soon as it is submitted (so the next batch's copy overlaps the
/// current step), then into the plan's inputs on the compute stream after waiting for that copy's event. Every kernel
/// is deterministic (no float atomics), so the same step gives the same bits every time.
/// </summary>
public sealed unsafe class CudaTrainer : ITrainer
{
    private readonly CudaTrainingPlan _p;
    private readonly CudaExecutor _exec;
    private readonly DeviceBuffer _grads;
    private readonly DeviceBuffer? _acc;
    private readonly DeviceBuffer[] _state;
    private readonly DeviceBuffer _hyper;
    private readonly DeviceBuffer? _scale;
    private readonly DeviceBuffer? _found, _invScale;
    private double _scaleSet;
    private bool _overflow, _windowOverflow;
    private readonly CudaHandle _pinnedHyper;
    private readonly CudaHandle[] _pinned;
    private readonly DeviceBuffer[] _staging;
    private readonly CudaHandle _copyStream;
    private readonly CudaHandle[] _ready;
    private readonly long _xFloats, _batch;
    private readonly float[] _logits;
    private readonly (ulong Dst, ulong Src, long Floats)[] _afterStep;
    private readonly List<IDisposable> _owned = [];
    private readonly Dictionary<(string Node, string Kind), (double Ms, int Runs)> _times = new();
    private int _pending;
    private int _profiled;

    /// <summary>
    /// Compiles the plan's kernels for GPU 0, uploads the weights and allocates the training buffers.
    /// </summary>
    public CudaTrainer(CudaTrainingPlan plan, CudaRunOptions? run = null, Action<string>? log = null)
    {
        _p = plan;
        _exec = new CudaExecutor(plan.Plan, plan.Graph, plan.Weights, run, log, plan.Flat);
        try
        {
            long total = plan.Flat.Total;
            _grads = Own(DeviceBuffer.Alloc(total * 4, "the flat gradients"));
            _grads.Fill(0);
            _acc = plan.Accumulate is null ? null : Own(DeviceBuffer.Alloc(total * 4, "the accumulated gradients"));
            _acc?.Fill(0);
            _state = plan.StateBuffers.Select(s => Own(DeviceBuffer.Alloc(total * 4, "optimizer state " + s)))
                .ToArray();
            foreach (var s in _state) s.Fill(0);
            _hyper = Own(DeviceBuffer.Alloc(16, "the optimizer's scalars"));
            _pinnedHyper = Own(CudaHandle.PinnedHost(16, "optimizer scalars"));
            if (plan.Accumulate is not null)
            {
                _scale = Own(DeviceBuffer.Alloc(4, "the accumulation scale"));
                _scale.Upload([1f / plan.Settings.Accumulate]);
            }
            if (plan.Unscale is not null)
            {
                Scaler = new LossScaler();
                _found = Own(DeviceBuffer.Alloc(4, "the overflow flag"));
                _invScale = Own(DeviceBuffer.Alloc(4, "1 / loss scale"));
            }
            var x = plan.Graph.Inputs.Single(i => i.Name == plan.Roles.Input).Type.Shape;
            X = x;
            _xFloats = x.Elements;
            _batch = x[0];
            long slotFloats = _xFloats + _batch + 1;  // images, labels, step
            _pinned = [Own(CudaHandle.PinnedHost(slotFloats * 4, "input slot 0")),
                Own(CudaHandle.PinnedHost(slotFloats * 4, "input slot 1"))];
            _staging = [Own(DeviceBuffer.Alloc(slotFloats * 4, "input staging 0")),
                Own(DeviceBuffer.Alloc(slotFloats * 4, "input staging 1"))];
            _copyStream = Own(CudaHandle.NonBlockingStream());
            _ready = [Own(CudaHandle.Event()), Own(CudaHandle.Event())];
            var types = plan.Graph.ValueTypes();
            _logits = new float[types[plan.Roles.Logits].Shape.Elements];
            // the copies after every step, resolved once (the arena, parameters and flat buffers do not move): each
            // BatchNorm's new running statistics into its buffers, each gradient into its flat segment
            var gradOf = plan.Gradients.ToDictionary(g => g.Param, g => g.Grad, StringComparer.Ordinal);
            _afterStep = [
                .. plan.Running.Select(r => (_exec.Address(r.Param), _exec.Address(r.Value),
                    types[r.Value].Shape.Elements)),
                .. plan.Flat.Segments.Select(s => (_grads.Ptr + (ulong)(s.Offset * 4), _exec.Address(gradOf[s.Name]),
                    (long)s.Size)),
            ];
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private T Own<T>(T d) where T : IDisposable
    {
        _owned.Add(d);
        return d;
    }

    /// <summary>The plan this trainer runs.</summary>
    public CudaTrainingPlan Plan => _p;

    /// <summary>fp16's dynamic loss scaler (null for fp32, tf32 and bf16).</summary>
    public LossScaler? Scaler { get; }

    /// <summary>Whether the last step's gradients had an infinity or NaN (fp16 loss scaling; else false).</summary>
    public bool Overflowed => _overflow;

    /// <summary>The executor of the forward and backward steps.</summary>
    public CudaExecutor Executor => _exec;

    /// <summary>Optimizer steps taken.</summary>
    public long StepCount { get; private set; }

    /// <inheritdoc/>
    public string Device => $"cuda ({CudaDevice.Info.Name}, {CudaDevice.Info.Arch})";

    /// <inheritdoc/>
    public Graph Graph => _p.Graph;

    /// <inheritdoc/>
    public Shape X { get; }

    /// <inheritdoc/>
    public long ArenaBytes => _p.Plan.Memory.ArenaBytes;

    /// <inheritdoc/>
    public bool CheckFinite
    {
        get => _exec.CheckFinite;
        set => _exec.CheckFinite = value;
    }

    /// <inheritdoc/>
    public bool Profile { get; set; }

    /// <inheritdoc/>
    public Span<float> InputSlot(int slot) => new((void*)_pinned[slot].Raw, (int)_xFloats);

    /// <inheritdoc/>
    public void Submit(int slot, ReadOnlySpan<int> labels, long step)
    {
        if (labels.Length != _batch) throw new ArgumentException($"{labels.Length} labels for a batch of {_batch}");
        var all = new Span<float>((void*)_pinned[slot].Raw, (int)(_xFloats + _batch + 1));
        // labels and the step go in as float32, as the CPU executor holds them (exact below 2^24)
        for (int i = 0; i < labels.Length; i++) all[(int)_xFloats + i] = labels[i];
        all[^1] = step;
        CudaDevice.MakeCurrent();
        CudaDevice.Check(CudaDriver.MemcpyHtoDAsync(_staging[slot].Ptr, (void*)_pinned[slot].Raw,
            (nuint)(all.Length * 4L), _copyStream.Raw), "cuMemcpyHtoDAsync of an input slot");
        CudaDevice.Check(CudaDriver.EventRecord(_ready[slot].Raw, _copyStream.Raw), "cuEventRecord");
    }

    /// <inheritdoc/>
    public double Step(int slot)
    {
        CudaDevice.MakeCurrent();
        if (CheckFinite)
        {
            NonFiniteException.Check(InputSlot(slot).ToArray(), $"the input %{_p.Roles.Input}",
                _p.Graph.Inputs.Single(i => i.Name == _p.Roles.Input).Type);
        }
        CudaDevice.Check(CudaDriver.StreamWaitEvent(_exec.Stream, _ready[slot].Raw, 0), "cuStreamWaitEvent");
        ulong st = _staging[slot].Ptr;
        _exec.Copy(_exec.Address(_p.Roles.Input), st, _xFloats);
        _exec.Copy(_exec.Address(_p.Roles.Labels), st + (ulong)(_xFloats * 4), _batch);
        if (_p.Roles.Step is { } s) _exec.Copy(_exec.Address(s), st + (ulong)((_xFloats + _batch) * 4), 1);
        if (Scaler is not null && Scaler.Scale != _scaleSet)
        {
            // a new scale (the first step, or after an overflow or growth): the loss's factor and its inverse
            _exec.Synchronize();
            _exec.WriteValue(MixedPrecision.ScaleInput, Tensor.FromDoubles(
                _p.Graph.Inputs.Single(i => i.Name == MixedPrecision.ScaleInput).Type, [Scaler.Scale]));
            _invScale!.Upload([(float)(1 / Scaler.Scale)]);
            _scaleSet = Scaler.Scale;
        }
        if (Profile)
        {
            foreach (var t in _exec.Profile())
            {
                var key = (t.Step.Node, t.Kind);
                var (ms, runs) = _times.GetValueOrDefault(key);
                _times[key] = (ms + t.Ms, runs + 1);
            }
            _profiled++;
        }
        else
        {
            _exec.RunSteps();
        }
        foreach (var (dst, src, floats) in _afterStep) _exec.Copy(dst, src, floats);
        if (_p.Unscale is { } unscale)
        {
            // the flat gradients back to the loss's scale, and whether any overflowed
            _exec.Zero(_found!.Ptr, 1);
            _exec.Launch(unscale.Entries[0], OptimizerKernels.Grid(_p.Flat), new Dim3(OptimizerKernels.Threads),
                _grads.Ptr, _found.Ptr, _invScale!.Ptr);
        }
        _exec.Synchronize();
        if (_found is not null)
        {
            int found = 0;
            CudaDevice.Check(CudaDriver.MemcpyDtoH(&found, _found.Ptr, 4), "cuMemcpyDtoH of the overflow flag");
            _overflow = found != 0;
        }
        var loss = new float[1];
        fixed (float* l = loss)
        {
            CudaDevice.Check(CudaDriver.MemcpyDtoH(l, _exec.Address(_p.Roles.Loss), 4), "cuMemcpyDtoH of the loss");
        }
        fixed (float* l = _logits)
        {
            CudaDevice.Check(CudaDriver.MemcpyDtoH(l, _exec.Address(_p.Roles.Logits), (nuint)(_logits.Length * 4L)),
                "cuMemcpyDtoH of the logits");
        }
        return loss[0];
    }

    /// <inheritdoc/>
    public ReadOnlySpan<float> Logits => _logits;

    /// <inheritdoc/>
    public bool Update(double lr)
    {
        CudaDevice.MakeCurrent();
        var grid = OptimizerKernels.Grid(_p.Flat);
        var block = new Dim3(OptimizerKernels.Threads);
        if (_acc is not null)
        {
            // an overflowed micro-batch is not added (it would poison the sum); its window's step is skipped
            if (_overflow) _windowOverflow = true;
            else _exec.Launch(_p.Accumulate!.Entries[0], grid, block, _acc.Ptr, _grads.Ptr, _scale!.Ptr);
            if (++_pending < _p.Settings.Accumulate) return false;
            _pending = 0;
        }
        if (Scaler is not null)
        {
            bool clean = !(_acc is null ? _overflow : _windowOverflow);
            _windowOverflow = false;
            if (!Scaler.Record(clean))
            {
                if (_acc is not null) _exec.Zero(_acc.Ptr, _p.Flat.Total);
                _exec.Synchronize();
                return false;
            }
        }
        StepCount++;
        var hyper = _p.Hyper(lr, StepCount);
        // the previous update's copy finished: every step synchronises the stream
        hyper.CopyTo(new Span<float>((void*)_pinnedHyper.Raw, 4));
        CudaDevice.Check(CudaDriver.MemcpyHtoDAsync(_hyper.Ptr, (void*)_pinnedHyper.Raw, 16, _exec.Stream),
            "cuMemcpyHtoDAsync of the optimizer's scalars");
        var args = new List<ulong> { _exec.Flat!.Ptr, (_acc ?? _grads).Ptr };
        args.AddRange(_state.Select(s => s.Ptr));
        args.Add(_hyper.Ptr);
        _exec.Launch(_p.Update.Entries[0], grid, block, [.. args]);
        if (_acc is not null) _exec.Zero(_acc.Ptr, _p.Flat.Total);
        _exec.Synchronize();
        return true;
    }

    /// <inheritdoc/>
    public Dictionary<string, float[]> Gradients() => Split(_grads);

    private Dictionary<string, float[]> Split(DeviceBuffer flat)
    {
        _exec.Synchronize();
        var all = new float[_p.Flat.Total];
        flat.Download(all);
        return _p.Flat.Segments.ToDictionary(s => s.Name, s => all.AsSpan((int)s.Offset, s.Size).ToArray(),
            StringComparer.Ordinal);
    }

    /// <inheritdoc/>
    public Dictionary<string, Tensor> Weights()
    {
        _exec.Synchronize();
        return _p.Graph.Params.ToDictionary(p => p.Name, p => _exec.ReadValue(p.Name), StringComparer.Ordinal);
    }

    /// <inheritdoc/>
    public void Load(IReadOnlyDictionary<string, Tensor> weights)
    {
        _exec.Synchronize();
        foreach (var p in _p.Graph.Params)
        {
            if (!weights.TryGetValue(p.Name, out var t)) throw new IrException($"the checkpoint has no '{p.Name}'");
            if (!t.Shape.Equals(p.Type.Shape))
            {
                throw new IrException($"'{p.Name}' has shape {t.Shape} in the checkpoint, the model {p.Type.Shape}");
            }
            _exec.WriteValue(p.Name, t);
        }
    }

    /// <inheritdoc/>
    public OptimizerState SaveState()
    {
        var buffers = new SortedDictionary<string, float[]>(StringComparer.Ordinal);
        // the CPU optimizer creates its buffers at the first step: before it there are none
        if (StepCount > 0)
        {
            for (int i = 0; i < _state.Length; i++)
            {
                foreach (var (name, v) in Split(_state[i])) buffers[name + "/" + _p.StateBuffers[i]] = v;
            }
        }
        return new OptimizerState(StepCount, buffers) { LossScale = Scaler?.Save() };
    }

    /// <inheritdoc/>
    public void LoadState(OptimizerState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (state.Step < 0) throw new ArgumentException("negative step counter", nameof(state));
        var sizes = _p.Flat.Segments.ToDictionary(s => s.Name, s => s.Size, StringComparer.Ordinal);
        foreach (var (k, v) in state.Buffers)
        {
            int slash = k.LastIndexOf('/');
            if (slash < 0 || !sizes.TryGetValue(k[..slash], out int size) || v.Length != size
                || !_p.StateBuffers.Contains(k[(slash + 1)..]))
            {
                throw new ArgumentException($"state buffer '{k}' does not fit this optimizer's parameters",
                    nameof(state));
            }
        }
        _exec.Synchronize();
        for (int i = 0; i < _state.Length; i++)
        {
            var all = new float[_p.Flat.Total];
            foreach (var (name, offset, _) in _p.Flat.Segments)
            {
                if (state.Buffers.TryGetValue(name + "/" + _p.StateBuffers[i], out var v)) v.CopyTo(all, offset);
            }
            _state[i].Upload(all);
        }
        StepCount = state.Step;
        if (state.LossScale is { } ls) Scaler?.Load(ls);
    }

    /// <inheritdoc/>
    public IReadOnlyList<KernelTime> Times() => _times
        .Select(kv => new KernelTime(kv.Key.Node, kv.Key.Kind, kv.Key.Kind,
            TimeSpan.FromMilliseconds(kv.Value.Ms), _profiled)).ToArray();

    /// <inheritdoc/>
    public void Dispose()
    {
        if (CudaDevice.Available)
        {
            CudaDevice.MakeCurrent();
            if (_copyStream is not null) CudaDriver.StreamSynchronize(_copyStream.Raw);
        }
        _exec.Dispose();
        foreach (var d in Enumerable.Reverse(_owned)) d.Dispose();
        _owned.Clear();
    }
}
