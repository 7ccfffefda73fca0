using System.Diagnostics;
using System.Runtime.InteropServices;
using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Runtime.Cuda;

namespace ShiftWise.CudaEmu;

/// <summary>
/// Runs a <see cref="CudaPlan"/> in emulation: kernels through <see cref="CudaEmulator"/>, GEMM calls as the argument
/// list the runtime passes to cuBLAS (<see cref="SgemmStridedBatchedArgs"/>) run by <see cref="CublasInterpreter"/>
/// (cuBLAS's documented semantics, not cuBLAS), every buffer guarded. After each step it checks the guards of every
/// buffer, that the arena changed only inside the step's value arguments, and that parameters and derived tensors did
/// not change, so a kernel that writes where it should not fails at its own step.
/// </summary>
public static class EmuPlanRunner
{
    /// <summary>
    /// Runs <paramref name="plan"/> (lowered from <paramref name="g"/>) on <paramref name="inputs"/> and
    /// <paramref name="weights"/> (both uploaded as float32); returns the graph outputs by name, in their declared
    /// element types. <paramref name="log"/> gets one line per step.
    /// </summary>
    public static Dictionary<string, Tensor> Run(CudaPlan plan, Graph g, IReadOnlyDictionary<string, Tensor> weights,
        IReadOnlyDictionary<string, Tensor> inputs, Action<string>? log = null)
    {
        using var mem = new PlanMemory(plan, g, weights, inputs);
        log?.Invoke($"emulating plan {plan.Graph}: {plan.Steps.Count} steps, {plan.Kernels.Count} kernels, " +
            $"arena {plan.Memory.ArenaBytes} bytes");
        for (int i = 0; i < plan.Steps.Count; i++)
        {
            var step = plan.Steps[i];
            var what = step switch
            {
                KernelLaunch k => $"step {i} (node %{step.Node}, kernel {k.Kernel} entry {k.Entry})",
                _ => $"step {i} (node %{step.Node}, GEMM)",
            };
            var watch = Stopwatch.StartNew();
            var arenaBefore = mem.Arena.ToArray();
            try
            {
                switch (step)
                {
                    case KernelLaunch k:
                    {
                        var module = CudaEmulator.Compile(plan.Kernel(k.Kernel));
                        var args = k.Args.Select(a => mem.Pointer(a)).ToArray();
                        module.Launch(k.Entry, k.Grid, k.Block, k.SharedBytes, args);
                        log?.Invoke($"{what}: grid {k.Grid} block {k.Block} smem {k.SharedBytes}: " +
                            $"{watch.Elapsed.TotalMilliseconds:F1} ms");
                        break;
                    }
                    case GemmCall c:
                    {
                        var call = Gemm(c, mem);
                        log?.Invoke($"{what}: emulated GEMM (reference, not cuBLAS): {call} interpreted: " +
                            $"{watch.Elapsed.TotalMilliseconds:F1} ms");
                        break;
                    }
                    default:
                        throw new EmuException($"unknown plan step {step.GetType().Name}");
                }
            }
            catch (Exception e) when (e is EmuException or IrException)
            {
                throw new EmuException($"{what}: {e.Message}");
            }
            mem.CheckAfter(what, step, arenaBefore);
        }
        return g.Outputs.ToDictionary(o => o, mem.Output, StringComparer.Ordinal);
    }

    // the argument list the runtime passes to cuBLAS for the step, interpreted by cuBLAS's documented semantics
    private static unsafe string Gemm(GemmCall c, PlanMemory mem)
    {
        var s = SgemmStridedBatchedArgs.Of(c);
        var (a, aFloats) = mem.Region(s.A);
        var (b, bFloats) = mem.Region(s.B);
        var (cc, cFloats) = mem.Region(s.C);
        var status = CublasInterpreter.Run(s, (float*)a, aFloats, (float*)b, bFloats, (float*)cc, cFloats);
        if (status.Code != 0) throw new EmuException($"cublasSgemmStridedBatched returned {status}");
        return $"cublasSgemmStridedBatched(transa {s.TransA}, transb {s.TransB}, m {s.M}, n {s.N}, k {s.K}, " +
            $"alpha {s.Alpha}, lda {s.Lda}, strideA {s.StrideA}, ldb {s.Ldb}, strideB {s.StrideB}, beta {s.Beta}, " +
            $"ldc {s.Ldc}, strideC {s.StrideC}, batchCount {s.BatchCount})";
    }

    /// <summary>All buffers of one run: inputs, parameters, derived tensors, scratch, and the arena.</summary>
    private sealed class PlanMemory : IDisposable
    {
        private readonly Graph _g;
        private readonly Dictionary<string, TensorType> _types;
        private readonly List<(string Name, EmuBuffer Buf)> _all = [];
        private readonly Dictionary<string, EmuBuffer> _params = new(StringComparer.Ordinal);
        private readonly Dictionary<string, EmuBuffer> _derived = new(StringComparer.Ordinal);
        private readonly Dictionary<string, EmuBuffer> _scratch = new(StringComparer.Ordinal);
        private readonly Dictionary<string, (EmuBuffer Buf, long Off, long Floats)> _values =
            new(StringComparer.Ordinal);
        private readonly List<(string Name, uint[] Bits)> _frozen = [];

        public PlanMemory(CudaPlan plan, Graph g, IReadOnlyDictionary<string, Tensor> weights,
            IReadOnlyDictionary<string, Tensor> inputs)
        {
            _g = g;
            _types = g.ValueTypes();
            try
            {
                foreach (var d in g.Inputs)
                {
                    _values[d.Name] = (Add("input " + d.Name, Upload(d, inputs, "input")), 0, Elements(d.Name));
                }
                foreach (var d in g.Params)
                {
                    var buf = _params[d.Name] = Add("param " + d.Name, Upload(d, weights, "param"));
                    _frozen.Add(("param " + d.Name, buf.Bits.ToArray()));
                }
                if (plan.Memory.ArenaBytes % 4 != 0)
                {
                    throw new EmuException($"arena of {plan.Memory.ArenaBytes} bytes is not whole floats");
                }
                Arena = Add("arena", EmuBuffer.Alloc(plan.Memory.ArenaBytes / 4));
                foreach (var s in plan.Memory.Slots)
                {
                    if (s.Offset % 4 != 0)
                    {
                        throw new EmuException($"value %{s.Value} at arena byte {s.Offset} is not float-aligned");
                    }
                    _values[s.Value] = (Arena, s.Offset / 4, Elements(s.Value));
                }
                ResolveViews(plan);
                foreach (var (name, data) in ShiftWise.CodegenCuda.Derived.ComputeAll(plan, g, weights))
                {
                    var buf = _derived[name] = Add("derived " + name, EmuBuffer.From(data));
                    _frozen.Add(("derived " + name, buf.Bits.ToArray()));
                }
                foreach (var s in plan.Scratch) _scratch[s.Name] = Add("scratch " + s.Name, EmuBuffer.Alloc(s.Floats));
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        public EmuBuffer Arena { get; } = null!;

        // The plan's views (the memory plan's aliases plus reshapes of graph inputs and parameters), resolved
        // recursively to the buffer of the value at the end of the chain.
        private void ResolveViews(CudaPlan plan)
        {
            foreach (var n in _g.Nodes)
            {
                var o = n.Outputs[0];
                if (!plan.Views.ContainsKey(o)) continue;
                var (buf, off, _) = Root(plan.Views, o);
                _values[o] = (buf, off, Elements(o));
            }
        }

        private (EmuBuffer Buf, long Off, long Floats) Root(IReadOnlyDictionary<string, string> aliases, string v) =>
            aliases.TryGetValue(v, out var a) ? Root(aliases, a)
            : _values.TryGetValue(v, out var r) ? r
            : _params.TryGetValue(v, out var p) ? (p, 0, Elements(v))
            : throw new EmuException($"alias chain ends at %{v}, which has no buffer");

        private long Elements(string v) => _types[v].Shape.Elements;

        private EmuBuffer Add(string name, EmuBuffer b)
        {
            _all.Add((name, b));
            return b;
        }

        private static EmuBuffer Upload(ValueDecl d, IReadOnlyDictionary<string, Tensor> from, string kind)
        {
            if (!from.TryGetValue(d.Name, out var t))
            {
                throw new EmuException($"no value given for {kind} '{d.Name}' ({d.Type})");
            }
            if (!t.Shape.Equals(d.Type.Shape))
            {
                throw new EmuException($"{kind} '{d.Name}' has shape {t.Shape}, expected {d.Type.Shape}");
            }
            return EmuBuffer.From((float[])t.Cast(DType.F32).Data);
        }

        /// <summary>The pointer an argument names and the floats behind it.</summary>
        public (IntPtr Ptr, long Floats) Region(ArgRef a)
        {
            EmuException Missing(string what) => new($"argument {a}: no such {what}");
            (EmuBuffer Buf, long Off, long Floats) r = a.Kind switch
            {
                ArgKind.Value => _values.TryGetValue(a.Name, out var v) ? v : throw Missing("value"),
                ArgKind.Param => _params.TryGetValue(a.Name, out var p) ? (p, 0, p.Floats) : throw Missing("parameter"),
                ArgKind.Derived => _derived.TryGetValue(a.Name, out var d) ? (d, 0, d.Floats) : throw Missing("derived"),
                ArgKind.Scratch => _scratch.TryGetValue(a.Name, out var s) ? (s, 0, s.Floats) : throw Missing("scratch"),
                _ => throw Missing("kind of argument"),
            };
            if (a.Offset < 0 || a.Offset > r.Floats)
            {
                throw new EmuException($"argument {a}: offset outside its {r.Floats} floats");
            }
            return (r.Buf.Ptr + (nint)((r.Off + a.Offset) * sizeof(float)), r.Floats - a.Offset);
        }

        public IntPtr Pointer(ArgRef a) => Region(a).Ptr;

        public void CheckAfter(string what, PlanStep step, float[] arenaBefore)
        {
            foreach (var (name, b) in _all) b.CheckGuards($"{what}: {name}");
            // the arena may change only inside the values the step was given
            var args = step switch
            {
                KernelLaunch k => k.Args,
                GemmCall c => new[] { c.A, c.B, c.C },
                _ => [],
            };
            var allowed = args
                .Where(a => a.Kind == ArgKind.Value && _values.TryGetValue(a.Name, out var v) && v.Buf == Arena)
                .Select(a => _values[a.Name])
                .Select(v => (Start: v.Off, End: v.Off + v.Floats))
                .OrderBy(r => r.Start).ToList();
            var now = MemoryMarshal.Cast<float, uint>(Arena.Span);
            var before = MemoryMarshal.Cast<float, uint>(arenaBefore.AsSpan());
            long at = 0;
            foreach (var (start, end) in allowed.Append((Arena.Floats, Arena.Floats)))
            {
                if (start > at)
                {
                    int same = now[(int)at..(int)start].CommonPrefixLength(before[(int)at..(int)start]);
                    if (same < start - at)
                    {
                        throw new EmuException($"{what} wrote the arena at float {at + same}, outside its arguments " +
                            $"({Owner(at + same)})");
                    }
                }
                at = Math.Max(at, end);
            }
            foreach (var (name, bits) in _frozen)
            {
                var buf = name.StartsWith("param ", StringComparison.Ordinal)
                    ? _params[name["param ".Length..]]
                    : _derived[name["derived ".Length..]];
                if (!buf.Bits.SequenceEqual(bits)) throw new EmuException($"{what} changed {name}, which is read-only");
            }
        }

        private string Owner(long f)
        {
            var owners = _values
                .Where(kv => kv.Value.Buf == Arena && kv.Value.Off <= f && f < kv.Value.Off + kv.Value.Floats)
                .Select(kv => "%" + kv.Key).ToList();
            return owners.Count == 0 ? "no value's slot" : "in the slot of " + string.Join(", ", owners);
        }

        public Tensor Output(string name)
        {
            if (!_values.TryGetValue(name, out var v)) throw new EmuException($"output %{name} has no buffer");
            var src = v.Buf.Span.Slice(checked((int)v.Off), checked((int)v.Floats)).ToArray();
            var type = _types[name];
            return type.DType == DType.F32
                ? Tensor.Wrap(type, src)
                : Tensor.FromDoubles(type, src.Select(f => (double)f).ToArray());
        }

        public void Dispose()
        {
            foreach (var (_, b) in _all) b.Dispose();
        }
    }
}
