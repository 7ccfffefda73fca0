using System.Buffers.Binary;
using System.Text;
using ShiftWise.IR;

namespace ShiftWise.Frontend.IO;

/// <summary>
/// A restricted unpickler for the state_dict pickles that <c>torch.save</c> writes (protocol 2, plus the protocol
/// 3-5 opcodes a newer writer may use). It builds plain data (see <see cref="PickleValues"/>) and nothing else:
/// each global must be on a fixed whitelist and maps to a C# construction, never to a call, so a hostile file
/// cannot run code. Every other opcode or global is an error, never skipped. The input is one in-memory
/// buffer whose length bounds every count (strings, memo, stack), and lengths are checked against the bytes
/// left before anything is allocated. The machine is a loop, not a recursion, so nesting cannot overflow the
/// call stack; the finished object graph is then checked for cycles and depth (<see cref="PickleValues.Check"/>).
/// </summary>
internal sealed partial class Unpickler
{
    private static readonly Dictionary<string, PickleGlobal> Allowed = new PickleGlobal[]
    {
        new("collections", "OrderedDict", GlobalKind.OrderedDict),
        new("torch._utils", "_rebuild_tensor_v2", GlobalKind.RebuildTensorV2),
        new("torch._utils", "_rebuild_tensor", GlobalKind.RebuildTensor),
        new("torch._utils", "_rebuild_parameter", GlobalKind.RebuildParameter),
        new("torch", "FloatStorage", GlobalKind.Storage, DType.F32),
        new("torch", "DoubleStorage", GlobalKind.Storage, DType.F64),
        new("torch", "HalfStorage", GlobalKind.Storage, DType.F16),
        new("torch", "BFloat16Storage", GlobalKind.Storage, DType.BF16),
        new("torch", "IntStorage", GlobalKind.Storage, DType.I32),
        new("torch", "LongStorage", GlobalKind.Storage, DType.I64),
    }.ToDictionary(g => g.ToString(), StringComparer.Ordinal);

    private readonly byte[] _data;
    private readonly string _label;
    private readonly List<object?> _stack = [];
    private readonly List<int> _marks = [];
    private readonly Dictionary<long, object?> _memo = [];
    private readonly Dictionary<string, TorchStorage> _storages = new(StringComparer.Ordinal);
    private int _pos;
    private int _opAt;
    private byte _op;

    private Unpickler(byte[] data, string label)
    {
        _data = data;
        _label = label;
    }

    /// <summary>Unpickles <paramref name="data"/>; every failure is a <see cref="PthException"/> naming
    /// <paramref name="label"/>.</summary>
    public static object? Load(byte[] data, string label)
    {
        var root = new Unpickler(data, label).Run();
        PickleValues.Check(root, label);
        return root;
    }

    private object? Run()
    {
        while (true)
        {
            if (_pos >= _data.Length)
            {
                throw Fail($"truncated: the pickle ends after {_data.Length} bytes without a STOP opcode");
            }
            _opAt = _pos;
            _op = _data[_pos++];
            switch (_op)
            {
                case 0x80: // PROTO
                    int proto = Take(1)[0];
                    if (proto is < 2 or > 5)
                    {
                        throw Fail($"unsupported pickle protocol {proto} (torch.save writes 2; 2 to 5 are read)");
                    }
                    break;
                case 0x95: // FRAME: only a read-ahead hint; the data is already in memory.
                    long frame = BinaryPrimitives.ReadInt64LittleEndian(Take(8));
                    if (frame < 0 || frame > _data.Length - _pos)
                    {
                        throw Fail($"FRAME of {frame} bytes at byte {_opAt} runs past the end of the pickle");
                    }
                    break;
                case (byte)'}': Push(new PickleDict(ordered: false)); break;
                case (byte)']': Push(new List<object?>()); break;
                case (byte)')': Push(new PyTuple([])); break;
                case (byte)'(': _marks.Add(_stack.Count); break;
                case (byte)'q': Put(Take(1)[0]); break; // BINPUT
                case (byte)'r': Put(BinaryPrimitives.ReadUInt32LittleEndian(Take(4))); break; // LONG_BINPUT
                case 0x94: Put(_memo.Count); break; // MEMOIZE
                case (byte)'h': Push(Get(Take(1)[0])); break; // BINGET
                case (byte)'j': Push(Get(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))); break; // LONG_BINGET
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4))); break; // BININT
                case (byte)'K': Push((long)Take(1)[0]); break; // BININT1
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2))); break; // BININT2
                case 0x8a: Push(Long1()); break;
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Take(8))); break; // BINFLOAT
                case 0x88: Push(true); break; // NEWTRUE
                case 0x89: Push(false); break; // NEWFALSE
                case (byte)'N': Push(null); break; // NONE
                case 0x8c: Push(Utf8(Take(Take(1)[0]))); break; // SHORT_BINUNICODE
                case (byte)'X': Push(Utf8(Take(BinaryPrimitives.ReadUInt32LittleEndian(Take(4))))); break;
                case 0x8d: Push(Utf8(Take(BinaryPrimitives.ReadInt64LittleEndian(Take(8))))); break; // BINUNICODE8
                // Python 2 str: Python 3 decodes it with the encoding passed to load; latin-1 maps every byte.
                case (byte)'U': Push(Encoding.Latin1.GetString(Take(Take(1)[0]))); break; // SHORT_BINSTRING
                case (byte)'T': // BINSTRING
                    Push(Encoding.Latin1.GetString(Take(BinaryPrimitives.ReadInt32LittleEndian(Take(4)))));
                    break;
                case (byte)'C': Push(Take(Take(1)[0]).ToArray()); break; // SHORT_BINBYTES
                case (byte)'B': Push(Take(BinaryPrimitives.ReadUInt32LittleEndian(Take(4))).ToArray()); break;
                case 0x8e: Push(Take(BinaryPrimitives.ReadInt64LittleEndian(Take(8))).ToArray()); break; // BINBYTES8
                case (byte)'t': Push(new PyTuple(PopMark())); break; // TUPLE
                case 0x85: Push(Tuple(1)); break;
                case 0x86: Push(Tuple(2)); break;
                case 0x87: Push(Tuple(3)); break;
                case (byte)'s': SetItem(); break;
                case (byte)'u': SetItems(); break;
                case (byte)'a': Append(); break;
                case (byte)'e': Appends(); break;
                case (byte)'c': // GLOBAL: "module\nname\n"
                    string module = Line();
                    Push(Global(module, Line()));
                    break;
                case 0x93: // STACK_GLOBAL
                    object? name = Pop(), mod = Pop();
                    if (mod is not string m || name is not string n)
                    {
                        throw Fail($"STACK_GLOBAL at byte {_opAt} needs two str, got a {PickleValues.TypeName(mod)} "
                            + $"and a {PickleValues.TypeName(name)}");
                    }
                    Push(Global(m, n));
                    break;
                case (byte)'R': // REDUCE
                    object? args = Pop();
                    Push(Reduce(Pop(), args));
                    break;
                case 0x81: // NEWOBJ: cls.__new__(cls, *args); only an empty OrderedDict is ever built this way.
                    object? newArgs = Pop(), cls = Pop();
                    Push(cls is PickleGlobal { Kind: GlobalKind.OrderedDict } && newArgs is PyTuple { Items.Count: 0 }
                        ? new PickleDict(ordered: true)
                        : throw Fail($"NEWOBJ at byte {_opAt} on a {PickleValues.TypeName(cls)} is not allowed"));
                    break;
                case (byte)'b': Build(); break;
                case (byte)'Q': Push(PersistentLoad(Pop())); break; // BINPERSID
                case (byte)'.': return Stop();
                default:
                    throw Fail($"pickle opcode {PickleOps.Name(_op)} at byte {_opAt} is not allowed (only the subset "
                        + "torch.save uses for tensors and plain data is read)");
            }
        }
    }

    private object? Stop()
    {
        if (_marks.Count > 0)
        {
            throw Fail($"STOP at byte {_opAt} inside an unclosed MARK");
        }
        if (_stack.Count != 1)
        {
            throw Fail($"STOP at byte {_opAt} with {_stack.Count} values on the stack instead of 1");
        }
        if (_pos != _data.Length)
        {
            throw Fail($"{_data.Length - _pos} unexpected bytes after STOP at byte {_opAt}");
        }
        return _stack[0];
    }

    private PickleGlobal Global(string module, string name)
    {
        if (Allowed.TryGetValue($"{module} {name}", out var g))
        {
            return g;
        }
        if (module == "torch" && name.EndsWith("Storage", StringComparison.Ordinal))
        {
            throw Fail($"pickle global '{module} {name}' is not supported: only float32, float64, float16, "
                + "bfloat16, int32 and int64 tensors are read");
        }
        throw Fail($"pickle global '{module} {name}' is not allowed: only tensors, storages and OrderedDict are "
            + "read, so that loading never runs code from the file; if the checkpoint stores other objects next "
            + "to its weights, re-export them with tools/export_pytorch.py");
    }

    private object Reduce(object? callable, object? argsValue)
    {
        if (callable is not PickleGlobal g)
        {
            throw Fail($"REDUCE at byte {_opAt} calls a {PickleValues.TypeName(callable)}, not a whitelisted global");
        }
        if (argsValue is not PyTuple { Items: var args })
        {
            throw Fail($"REDUCE of {g} at byte {_opAt} has a {PickleValues.TypeName(argsValue)} of arguments, "
                + "not a tuple");
        }
        switch (g.Kind)
        {
            case GlobalKind.OrderedDict when args.Count == 0:
                return new PickleDict(ordered: true);
            // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]): autograd and
            // the optional metadata do not affect the values, so they are ignored.
            case GlobalKind.RebuildTensorV2 when args.Count is 6 or 7:
            case GlobalKind.RebuildTensor when args.Count == 4:
                return TorchTensor.Create(args[0], args[1], args[2], args[3], g, Fail);
            // (data, requires_grad, backward_hooks): a Parameter is its data as far as weights go.
            case GlobalKind.RebuildParameter when args.Count == 3 && args[0] is TorchTensor data:
                return data;
            default:
                throw Fail($"REDUCE of {g} at byte {_opAt} with {args.Count} arguments "
                    + $"({string.Join(", ", args.Select(PickleValues.TypeName))}) is not supported");
        }
    }

    private TorchStorage PersistentLoad(object? pid)
    {
        // torch.save's persistent id: ('storage', storage_type, key, location, numel).
        if (pid is not PyTuple { Items: [string kind, var type, string key, string location, var numel] }
            || kind != "storage")
        {
            throw Fail($"BINPERSID at byte {_opAt}: expected ('storage', type, key, location, numel), got a "
                + PickleValues.TypeName(pid));
        }
        if (type is not PickleGlobal { Kind: GlobalKind.Storage } storageType)
        {
            throw Fail($"BINPERSID at byte {_opAt}: storage type is a {PickleValues.TypeName(type)}");
        }
        if (numel is not long count || count < 0)
        {
            throw Fail($"BINPERSID at byte {_opAt}: storage '{key}' has element count {numel ?? "None"}");
        }
        if (key.Length == 0 || key.Contains('/') || key.Contains('\\'))
        {
            throw Fail($"BINPERSID at byte {_opAt}: storage key '{key}' is not a plain entry name");
        }
        var storage = new TorchStorage(storageType.DType, key, location, count);
        if (_storages.TryGetValue(key, out var seen))
        {
            // torch refuses to save one storage under two dtypes; a file that does so is not from torch.save.
            return seen == storage ? seen
                : throw Fail($"storage '{key}' is declared twice, as {seen} and as {storage}");
        }
        _storages[key] = storage;
        return storage;
    }

    private void Build()
    {
        object? state = Pop();
        object? target = Peek();
        // OrderedDict.__reduce__ passes the instance __dict__ (a state_dict's _metadata) as BUILD state.
        if (target is PickleDict { Ordered: true } od && state is PickleDict attrs)
        {
            od.State = attrs;
            return;
        }
        if (state is not null)
        {
            throw Fail($"BUILD at byte {_opAt} sets a {PickleValues.TypeName(state)} state on a "
                + $"{PickleValues.TypeName(target)}, which is not supported");
        }
    }

    private void SetItem()
    {
        object? value = Pop(), key = Pop();
        Dict().Set(Key(key), value);
    }

    private void SetItems()
    {
        var items = PopMark();
        if (items.Count % 2 != 0)
        {
            throw Fail($"SETITEMS at byte {_opAt} has an odd number ({items.Count}) of keys and values");
        }
        var dict = Dict();
        for (int i = 0; i < items.Count; i += 2)
        {
            dict.Set(Key(items[i]), items[i + 1]);
        }
    }

    private void Append()
    {
        object? value = Pop();
        List().Add(value);
    }

    private void Appends()
    {
        var items = PopMark();
        List().AddRange(items);
    }
}
