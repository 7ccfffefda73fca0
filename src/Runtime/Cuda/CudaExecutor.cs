using System.Runtime.InteropServices;
using System.Text;
using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.Runtime.Native;

namespace ShiftWise.Runtime.Cuda;

/// <summary>How a plan runs on the GPU.</summary>
public sealed record CudaRunOptions
{
    /// <summary>Let cuBLAS use TF32 tensor cores for the GEMMs (off by default: results stay fp32).</summary>
    public bool Tf32 { get; init; }

    /// <summary>Capture the plan once as a CUDA graph and replay it (after two eager warm-up runs).</summary>
    public bool Graphs { get; init; }
}

/// <summary>
/// Runs a <see cref="CudaPlan"/> on device 0: every kernel compiled by NVRTC to CUBIN for the device's own arch
/// (through the kernel cache) and loaded once; weights and derived tensors uploaded once; all activations in one arena
/// laid out by the memory plan; scratch buffers in a second allocation; the steps launched in order on one stream,
/// GEMMs through cuBLAS; optionally captured once as a CUDA graph and replayed (CudaExecutor.Graphs.cs). Outputs are
/// copied to fresh host tensors, so a later run never overwrites what an earlier one returned. Event timing lives in
/// CudaExecutor.Timing.cs.
/// </summary>
public sealed unsafe partial class CudaExecutor : Compile.IExecutor
{
    private readonly CudaPlan _plan;
    private readonly Dictionary<string, long> _slots;
    private readonly Dictionary<string, TensorType> _types;
    private readonly Dictionary<string, string[]> _outputsOf;
    private readonly List<CudaHandle> _modules = [];
    private readonly Dictionary<string, IntPtr> _functions = new(StringComparer.Ordinal);
    private readonly List<DeviceBuffer> _buffers = [];
    private readonly Dictionary<string, ulong> _params = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DeviceBuffer> _derived = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DeviceBuffer> _inputs = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (ulong Base, long Floats)> _scratch = new(StringComparer.Ordinal);
    private readonly DeviceBuffer _arena;
    private readonly List<Action> _steps = [];
    private readonly List<IntPtr> _native = [];
    private readonly CudaHandle? _streamHandle;
    private readonly CudaHandle? _cublasHandle;
    private readonly IntPtr _stream;
    private readonly IntPtr _cublas;
    private bool _disposed;

    /// <summary>Compiles, loads and uploads everything the plan needs.</summary>
    /// <param name="plan">The plan.</param>
    /// <param name="g">The graph it was lowered from.</param>
    /// <param name="weights">The parameters' values.</param>
    /// <param name="options">How it runs.</param>
    /// <param name="log">Receives NVRTC warnings.</param>
    /// <param name="flat">
    /// Parameters that live in one buffer at these offsets (the trainer's: a fused optimizer updates them all in one
    /// launch); the others get a buffer each.
    /// </param>
    public CudaExecutor(CudaPlan plan, Graph g, IReadOnlyDictionary<string, Tensor> weights,
        CudaRunOptions? options = null, Action<string>? log = null, FlatParameters? flat = null)
    {
        _plan = plan;
        Graph = g;
        _slots = plan.Memory.Slots.ToDictionary(s => s.Value, s => s.Offset, StringComparer.Ordinal);
        Options = options ?? new CudaRunOptions();
        _types = g.ValueTypes();
        _outputsOf = g.Nodes.ToDictionary(n => n.Name, n => n.Outputs.ToArray(), StringComparer.Ordinal);
        var info = CudaDevice.Info;
        CudaDevice.MakeCurrent();
        try
        {
            if (!CublasApi.Library.Found)
            {
                throw new IrException(CublasApi.Library.Missing("The plan's GEMMs cannot run."));
            }
            var compiled = CudaKernelCompiler.CompileAll(plan.Kernels, info.Arch, warn: log);
            Kernels = compiled;
            foreach (var c in compiled)
            {
                var module = CudaHandle.Module(c.Output.Image, c.Kernel.FileName);
                _modules.Add(module);
                var mod = module.Raw;
                foreach (var e in c.Kernel.Entries)
                {
                    var name = Encoding.UTF8.GetBytes(e + "\0");
                    IntPtr f;
                    fixed (byte* n = name)
                    {
                        CudaDevice.Check(CudaDriver.ModuleGetFunction(out f, mod, n), $"cuModuleGetFunction {e}");
                    }
                    _functions[e] = f;
                }
            }
            if (flat is not null)
            {
                Flat = Track(DeviceBuffer.Alloc(flat.Total * 4, "the trainable parameters"));
                foreach (var (name, offset, _) in flat.Segments) _params[name] = Flat.Ptr + (ulong)(offset * 4);
            }
            foreach (var p in g.Params)
            {
                if (!weights.TryGetValue(p.Name, out var t))
                {
                    throw new IrException($"no weights for parameter '{p.Name}'");
                }
                if (_params.TryGetValue(p.Name, out var at))
                {
                    var data = (float[])t.Cast(DType.F32).Data;
                    if (data.Length != flat!.Segments.First(s => s.Name == p.Name).Size)
                    {
                        throw new IrException($"parameter '{p.Name}' has {data.Length} values, its flat segment "
                            + "another size");
                    }
                    Flat!.Upload(data, (long)(at - Flat.Ptr) / 4);
                }
                else
                {
                    _params[p.Name] = Upload(t, p.Type.DType, "parameter " + p.Name).Ptr;
                }
            }
            foreach (var (name, v) in Derived.ComputeAll(plan, g, weights))
            {
                var b = Track(DeviceBuffer.Alloc(v.Length * 4L, "derived " + name));
                b.Upload(v);
                _derived[name] = b;
            }
            foreach (var i in plan.Inputs)
            {
                _inputs[i.Name] = Track(DeviceBuffer.Alloc(i.Type.Shape.Elements * i.Type.DType.Size(),
                    "input " + i.Name));
            }
            _arena = Track(DeviceBuffer.Alloc(plan.Memory.ArenaBytes, "the activation arena"));
            _arena.Fill(0x7FC00000); // NaN: a read of a value nobody wrote shows in the output
            var (scratchAt, scratchFloats) = plan.ScratchLayout();
            var scratch = Track(DeviceBuffer.Alloc(scratchFloats * 4, "scratch buffers"));
            foreach (var s in plan.Scratch) _scratch[s.Name] = (scratch.Ptr + (ulong)(scratchAt[s.Name] * 4), s.Floats);
            _streamHandle = CudaHandle.Stream();
            _stream = _streamHandle.Raw;
            _cublasHandle = CudaHandle.Cublas();
            _cublas = _cublasHandle.Raw;
            CudaDevice.Check(CublasApi.SetStream(_cublas, _stream), "cublasSetStream");
            CudaDevice.Check(CublasApi.SetMathMode(_cublas, CublasMathMode(Options)), "cublasSetMathMode");
            _gemmLog = log;
            foreach (var step in plan.Steps) _steps.Add(Bind(step));
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The options.</summary>
    public CudaRunOptions Options { get; }

    /// <inheritdoc/>
    public Graph Graph { get; }

    /// <summary>
    /// The <c>cublasMath_t</c> the executor sets on its cuBLAS handle: CUBLAS_TF32_TENSOR_OP_MATH with
    /// <see cref="CudaRunOptions.Tf32"/>, else CUBLAS_DEFAULT_MATH (full fp32).
    /// </summary>
    public static int CublasMathMode(CudaRunOptions options) =>
        options.Tf32 ? CublasApi.MathTf32 : CublasApi.MathDefault;

    /// <summary>The NVRTC results (each kernel's CUBIN and where it came from).</summary>
    public IReadOnlyList<CompiledKernel> Kernels { get; } = [];

    /// <inheritdoc/>
    public IReadOnlyList<CacheOutcome> KernelOutcomes => Kernels.Select(k => k.Outcome).ToArray();

    /// <summary>
    /// Runs step by step, reading every node's outputs back after its last step, and stops at the first NaN or
    /// infinity with a <see cref="NonFiniteException"/> naming the node (swc run --device cuda --check-finite).
    /// </summary>
    public bool CheckFinite { get; set; }

    /// <summary>Copies the inputs in, runs the plan, copies the outputs out.</summary>
    public Dictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs)
    {
        SetInputs(inputs);
        if (CheckFinite)
        {
            foreach (var i in _plan.Inputs)
            {
                NonFiniteException.Check((float[])inputs[i.Name].Cast(DType.F32).Data, $"the input %{i.Name}", i.Type);
            }
        }
        RunSteps();
        Synchronize();
        return ReadOutputs();
    }

    /// <summary>
    /// Enqueues every step on the stream (<see cref="Enqueue"/>); with <see cref="CheckFinite"/> step by step,
    /// reading each node's outputs back and stopping at the first NaN or infinity.
    /// </summary>
    public void RunSteps()
    {
        if (CheckFinite)
        {
            for (int s = 0; s < _steps.Count; s++)
            {
                RunStep(s);
                var node = _plan.Steps[s].Node;
                if (s + 1 < _steps.Count && _plan.Steps[s + 1].Node == node) continue;
                Synchronize();
                foreach (var o in _outputsOf.GetValueOrDefault(node) ?? [])
                {
                    var t = ReadValue(o);
                    NonFiniteException.Check((float[])t.Data, $"node %{node}, output %{o},", _types[o],
                        "every value before it was finite");
                }
            }
        }
        else
        {
            Enqueue();
        }
    }

    /// <summary>Copies the graph inputs to the device.</summary>
    public void SetInputs(IReadOnlyDictionary<string, Tensor> inputs)
    {
        foreach (var i in _plan.Inputs)
        {
            if (!inputs.TryGetValue(i.Name, out var t))
            {
                throw new IrException($"no value given for input '{i.Name}' ({i.Type})");
            }
            if (!t.Shape.Equals(i.Type.Shape))
            {
                throw new IrException(
                    $"input '{i.Name}' has shape {t.Shape}, the plan was compiled for {i.Type.Shape}");
            }
            _inputs[i.Name].UploadBytes(t.Cast(i.Type.DType).Bytes());
        }
    }

    /// <summary>The number of steps of the plan.</summary>
    public int StepCount => _steps.Count;

    /// <summary>
    /// Enqueues step <paramref name="i"/> alone (for checking a plan step by step against a reference).
    /// </summary>
    public void RunStep(int i)
    {
        CudaDevice.MakeCurrent();
        _steps[i]();
    }

    /// <summary>The buffer of the parameters placed flat (null without a flat layout).</summary>
    public DeviceBuffer? Flat { get; }

    /// <summary>Waits for the stream.</summary>
    public void Synchronize()
    {
        CudaDevice.MakeCurrent();
        CudaDevice.Check(CudaDriver.StreamSynchronize(_stream), "cuStreamSynchronize (a kernel of the plan failed)");
    }

    /// <summary>The graph outputs, copied to new host tensors.</summary>
    public Dictionary<string, Tensor> ReadOutputs()
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var o in _plan.Outputs) result[o] = ReadValue(o);
        return result;
    }

    private Action Bind(PlanStep step)
    {
        switch (step)
        {
            case KernelLaunch l:
            {
                if (!_functions.TryGetValue(l.Entry, out var f))
                {
                    throw new IrException($"plan step for %{l.Node}: no kernel entry {l.Entry}");
                }
                int n = l.Args.Count;
                var vals = (ulong*)NativeMemory.Alloc((nuint)Math.Max(1, n) * 8);
                _native.Add((IntPtr)vals);
                var ptrs = (IntPtr*)NativeMemory.Alloc((nuint)Math.Max(1, n) * (nuint)IntPtr.Size);
                _native.Add((IntPtr)ptrs);
                for (int i = 0; i < n; i++)
                {
                    vals[i] = Resolve(l.Args[i]);
                    ptrs[i] = (IntPtr)(vals + i);
                }
                var what = $"launch of {l.Entry} for %{l.Node}";
                return () => CudaDevice.Check(CudaDriver.LaunchKernel(f, (uint)l.Grid.X, (uint)l.Grid.Y, (uint)l.Grid.Z,
                    (uint)l.Block.X, (uint)l.Block.Y, (uint)l.Block.Z, (uint)l.SharedBytes, _stream, ptrs, null), what);
            }
            case GemmCall c:
                return BindGemm(c);
            default:
                throw new IrException($"unknown plan step {step.GetType().Name}");
        }
    }

    // an argument's device address (its offset in elements, see below)
    private ulong Resolve(ArgRef a, int? elementBytes = null)
    {
        ulong p = a.Kind switch
        {
            ArgKind.Value => ValueAddress(a.Name),
            ArgKind.Param => _params.TryGetValue(a.Name, out var pb) ? pb : throw Missing(a),
            ArgKind.Derived => _derived.TryGetValue(a.Name, out var db) ? db.Ptr : throw Missing(a),
            ArgKind.Scratch => _scratch.TryGetValue(a.Name, out var sb) ? sb.Base : throw Missing(a),
            _ => throw Missing(a),
        };
        // offsets count elements: of the given size (a GEMM's storage type), else of the buffer's type (values and
        // parameters have theirs, 16-bit under --precision bf16 / fp16; derived tensors and scratch are float32)
        int size = elementBytes ?? (a.Kind is ArgKind.Value or ArgKind.Param ? _types[a.Name].DType.Size() : 4);
        return p + (ulong)(a.Offset * size);
    }

    private ulong ValueAddress(string v)
    {
        var (b, off) = Value(v);
        return b + (ulong)off;
    }

    private static IrException Missing(ArgRef a) => new($"the plan refers to {a}, which it does not define");

    /// <summary>
    /// A value's device address and byte offset: through the views, then an input, a parameter or the arena.
    /// </summary>
    private (ulong Base, long Bytes) Value(string v)
    {
        v = _plan.Root(v);
        if (_inputs.TryGetValue(v, out var ib)) return (ib.Ptr, 0);
        if (_params.TryGetValue(v, out var pb)) return (pb, 0);
        return _slots.TryGetValue(v, out long offset)
            ? (_arena.Ptr, offset)
            : throw new IrException($"value %{v} has no place in the memory plan");
    }

    /// <summary>A new device buffer holding <paramref name="t"/> converted to <paramref name="type"/>.</summary>
    private DeviceBuffer Upload(Tensor t, DType type, string what)
    {
        var c = t.Cast(type);
        var b = Track(DeviceBuffer.Alloc(c.Shape.Elements * type.Size(), what));
        b.UploadBytes(c.Bytes());
        return b;
    }

    private DeviceBuffer Track(DeviceBuffer b)
    {
        _buffers.Add(b);
        return b;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (CudaDevice.Available) CudaDevice.MakeCurrent();
        if (_stream != IntPtr.Zero) CudaDriver.StreamSynchronize(_stream);
        _graphExec?.Dispose();
        _graph?.Dispose();
        _cublasHandle?.Dispose();
        DisposeLt();
        _streamHandle?.Dispose();
        foreach (var m in _modules) m.Dispose();
        _modules.Clear();
        foreach (var b in _buffers) b.Dispose();
        _buffers.Clear();
        foreach (var p in _native) NativeMemory.Free((void*)p);
        _native.Clear();
    }
}
