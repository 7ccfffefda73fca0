using System.Runtime.InteropServices;
using ShiftWise.CodegenCuda;
using ShiftWise.IR;

namespace ShiftWise.CudaEmu;

/// <summary>
/// All buffers of one <see cref="EmuPlanRunner"/> run: inputs, parameters, derived tensors, scratch, and the arena.
/// Every value lives in its declared type: bf16 and fp16 as packed 16-bit patterns (2 bytes an element), anything else
/// as float32 (4 bytes; integer labels are uploaded as floats, as the kernels read them). Derived tensors and scratch
/// are float32. Arena slots are byte offsets (the memory plan's, on 256-byte boundaries); an argument's offset counts
/// elements of its buffer's type.
/// </summary>
internal sealed unsafe class EmuPlanMemory : IDisposable
{
    private readonly Graph _g;
    private readonly Dictionary<string, TensorType> _types;
    private readonly List<(string Name, EmuBuffer Buf)> _all = [];
    private readonly Dictionary<string, Place> _params = new(StringComparer.Ordinal);
    private readonly Dictionary<string, EmuBuffer> _derived = new(StringComparer.Ordinal);
    private readonly Dictionary<string, EmuBuffer> _scratch = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Place> _values = new(StringComparer.Ordinal);
    private readonly List<(string Name, uint[] Bits)> _frozen = [];
    // buffers of an odd number of 16-bit values: the half float after the last must keep the fill pattern
    private readonly List<(string Name, Place At)> _padded = [];

    /// <summary>Where a tensor lives: its buffer, its first byte there, its elements and their type.</summary>
    private readonly record struct Place(EmuBuffer Buf, long Offset, long Elements, DType Type)
    {
        public int Bytes => SizeOf(Type);

        public long End => Offset + Elements * Bytes;
    }

    /// <summary>Uploads the inputs and parameters, computes the derived tensors and lays out the arena.</summary>
    public EmuPlanMemory(CudaPlan plan, Graph g, IReadOnlyDictionary<string, Tensor> weights,
        IReadOnlyDictionary<string, Tensor> inputs)
    {
        _g = g;
        _types = g.ValueTypes();
        try
        {
            foreach (var d in g.Inputs) _values[d.Name] = Upload("input", d, inputs);
            foreach (var d in g.Params)
            {
                var at = _params[d.Name] = Upload("param", d, weights);
                _frozen.Add(("param " + d.Name, at.Buf.Bits.ToArray()));
            }
            if (plan.Memory.ArenaBytes % 4 != 0)
            {
                throw new EmuException($"arena of {plan.Memory.ArenaBytes} bytes is not whole floats");
            }
            Arena = Add("arena", EmuBuffer.Alloc(plan.Memory.ArenaBytes / 4));
            foreach (var s in plan.Memory.Slots)
            {
                var type = _types[s.Value].DType;
                if (s.Offset % SizeOf(type) != 0)
                {
                    throw new EmuException($"value %{s.Value} at arena byte {s.Offset} is not aligned to its " +
                        $"{type.Name()} elements");
                }
                _values[s.Value] = new(Arena, s.Offset, Elements(s.Value), type);
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

    /// <summary>The activation arena.</summary>
    public EmuBuffer Arena { get; } = null!;

    /// <summary>The arena's bytes (a view).</summary>
    public Span<byte> ArenaBytes() => MemoryMarshal.AsBytes(Arena.Span);

    private static bool Is16(DType t) => t is DType.BF16 or DType.F16;

    private static int SizeOf(DType t) => Is16(t) ? 2 : 4;

    // The plan's views (the memory plan's aliases plus reshapes of graph inputs and parameters), resolved
    // recursively to the buffer of the value at the end of the chain, each under its own shape.
    private void ResolveViews(CudaPlan plan)
    {
        foreach (var n in _g.Nodes)
        {
            var o = n.Outputs[0];
            if (!plan.Views.ContainsKey(o)) continue;
            _values[o] = Root(plan.Views, o) with { Elements = Elements(o), Type = _types[o].DType };
        }
    }

    private Place Root(IReadOnlyDictionary<string, string> aliases, string v) =>
        aliases.TryGetValue(v, out var a) ? Root(aliases, a)
        : _values.TryGetValue(v, out var r) ? r
        : _params.TryGetValue(v, out var p) ? p
        : throw new EmuException($"alias chain ends at %{v}, which has no buffer");

    private long Elements(string v) => _types[v].Shape.Elements;

    private EmuBuffer Add(string name, EmuBuffer b)
    {
        _all.Add((name, b));
        return b;
    }

    private Place Upload(string kind, ValueDecl d, IReadOnlyDictionary<string, Tensor> from)
    {
        if (!from.TryGetValue(d.Name, out var t))
        {
            throw new EmuException($"no value given for {kind} '{d.Name}' ({d.Type})");
        }
        if (!t.Shape.Equals(d.Type.Shape))
        {
            throw new EmuException($"{kind} '{d.Name}' has shape {t.Shape}, expected {d.Type.Shape}");
        }
        var type = d.Type.DType;
        string name = $"{kind} {d.Name}";
        if (!Is16(type))
        {
            return new(Add(name, EmuBuffer.From((float[])t.Cast(DType.F32).Data)), 0, t.Shape.Elements, type);
        }
        var bits = Bits16(t, type);
        var buf = Add(name, EmuBuffer.Alloc((bits.Length + 1L) / 2));
        bits.CopyTo(MemoryMarshal.Cast<float, ushort>(buf.Span));
        var at = new Place(buf, 0, bits.Length, type);
        if (bits.Length % 2 == 1) _padded.Add((name, at));
        return at;
    }

    // a tensor's values as patterns of the 16-bit type: its own bits when it has that type, else rounded to nearest
    // even from float32 as a kernel storing them would
    private static ushort[] Bits16(Tensor t, DType type) => (t.Data, type) switch
    {
        (ushort[] bf, DType.BF16) when t.DType == DType.BF16 => bf,
        (Half[] h, DType.F16) => h.Select(BitConverter.HalfToUInt16Bits).ToArray(),
        _ => ((float[])t.Cast(DType.F32).Data).Select(f => Float16Bits.Round(f, type)).ToArray(),
    };

    /// <summary>
    /// The pointer an argument names and the elements behind it; <paramref name="type"/>, when given, is the element
    /// type the caller reads there (a GEMM's storage), which the buffer must hold.
    /// </summary>
    public (IntPtr Ptr, long Elements) Region(ArgRef a, DType? type = null)
    {
        EmuException Missing(string what) => new($"argument {a}: no such {what}");
        Place Whole(EmuBuffer b) => new(b, 0, b.Floats, DType.F32);
        var r = a.Kind switch
        {
            ArgKind.Value => _values.TryGetValue(a.Name, out var v) ? v : throw Missing("value"),
            ArgKind.Param => _params.TryGetValue(a.Name, out var p) ? p : throw Missing("parameter"),
            ArgKind.Derived => _derived.TryGetValue(a.Name, out var d) ? Whole(d) : throw Missing("derived"),
            // scratch is untyped: a GEMM may read 16-bit values a kernel wrote there (a conv's unfolded input)
            ArgKind.Scratch => !_scratch.TryGetValue(a.Name, out var s) ? throw Missing("scratch")
                : type is { } t && Is16(t) ? new Place(s, 0, s.Floats * 2, t) : Whole(s),
            _ => throw Missing("kind of argument"),
        };
        if (a.Offset < 0 || a.Offset > r.Elements)
        {
            throw new EmuException($"argument {a}: offset outside its {r.Elements} {Unit(r.Type)}");
        }
        if (type is { } want && want != r.Type)
        {
            throw new EmuException($"argument {a} holds {r.Type.Name()} values, read as {want.Name()}");
        }
        return (r.Buf.Ptr + (nint)(r.Offset + a.Offset * r.Bytes), r.Elements - a.Offset);
    }

    private static string Unit(DType t) => Is16(t) ? t.Name() + " values" : "floats";

    /// <summary>The pointer an argument names.</summary>
    public IntPtr Pointer(ArgRef a) => Region(a).Ptr;

    /// <summary>
    /// Checks every guard, that the arena changed only inside the step's value arguments (to the byte: a 16-bit value
    /// ends mid-float), and that no parameter or derived tensor changed.
    /// </summary>
    public void CheckAfter(string what, PlanStep step, byte[] arenaBefore)
    {
        foreach (var (name, b) in _all) b.CheckGuards($"{what}: {name}");
        foreach (var (name, at) in _padded)
        {
            ushort pad = MemoryMarshal.Cast<float, ushort>(at.Buf.Span)[(int)at.Elements];
            if (pad != unchecked((ushort)EmuBuffer.FillBits))
            {
                throw new EmuException($"{what}: out-of-bounds write past the end of {name} ({at.Elements} " +
                    $"{Unit(at.Type)}: the pad after the last changed)");
            }
        }
        var args = step switch
        {
            KernelLaunch k => k.Args,
            GemmCall c => new[] { c.A, c.B, c.C },
            _ => [],
        };
        var allowed = args
            .Where(a => a.Kind == ArgKind.Value && _values.TryGetValue(a.Name, out var v) && v.Buf == Arena)
            .Select(a => _values[a.Name])
            .Select(v => (Start: v.Offset, v.End))
            .OrderBy(r => r.Start).ToList();
        var now = ArenaBytes();
        var before = arenaBefore.AsSpan();
        long at0 = 0;
        foreach (var (start, end) in allowed.Append((now.Length, now.Length)))
        {
            if (start > at0)
            {
                int same = now[(int)at0..(int)start].CommonPrefixLength(before[(int)at0..(int)start]);
                if (same < start - at0)
                {
                    throw new EmuException($"{what} wrote the arena at byte {at0 + same}, outside its arguments " +
                        $"({Owner(at0 + same)})");
                }
            }
            at0 = Math.Max(at0, end);
        }
        foreach (var (name, bits) in _frozen)
        {
            var buf = name.StartsWith("param ", StringComparison.Ordinal)
                ? _params[name["param ".Length..]].Buf
                : _derived[name["derived ".Length..]];
            if (!buf.Bits.SequenceEqual(bits)) throw new EmuException($"{what} changed {name}, which is read-only");
        }
    }

    private string Owner(long b)
    {
        var owners = _values
            .Where(kv => kv.Value.Buf == Arena && kv.Value.Offset <= b && b < kv.Value.End)
            .Select(kv => "%" + kv.Key).ToList();
        return owners.Count == 0 ? "no value's slot" : "in the slot of " + string.Join(", ", owners);
    }

    /// <summary>A graph output, copied, in its declared type (bf16 and fp16 as their patterns).</summary>
    public Tensor Output(string name)
    {
        if (!_values.TryGetValue(name, out var v)) throw new EmuException($"output %{name} has no buffer");
        var type = _types[name];
        if (Is16(v.Type))
        {
            var bits = new ReadOnlySpan<ushort>((void*)(v.Buf.Ptr + (nint)v.Offset), checked((int)v.Elements))
                .ToArray();
            return v.Type == DType.BF16 ? Tensor.Wrap(type, bits)
                : Tensor.Wrap(type, bits.Select(BitConverter.UInt16BitsToHalf).ToArray());
        }
        var src = v.Buf.Span.Slice(checked((int)(v.Offset / 4)), checked((int)v.Elements)).ToArray();
        return type.DType == DType.F32
            ? Tensor.Wrap(type, src)
            : Tensor.FromDoubles(type, src.Select(f => (double)f).ToArray());
    }

    /// <summary>Frees every buffer.</summary>
    public void Dispose()
    {
        foreach (var (_, b) in _all) b.Dispose();
    }
}
