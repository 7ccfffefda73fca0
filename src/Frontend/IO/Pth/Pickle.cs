using System.Buffers.Binary;
using System.Text;

namespace ShiftWise.Frontend.IO;

/// <summary>
/// A restricted unpickler for the pickles that <c>torch.save</c> writes (protocol 2, plus the protocol 3-5 opcodes a
/// newer writer may use). It builds plain data (see <see cref="PickleValues"/>) and nothing else: a global on a fixed
/// whitelist maps to a C# construction (tensors, storages, OrderedDict), and any other global, with whatever calls,
/// instantiates or builds it, becomes an inert <see cref="PyObject"/> record (PickleObjects.cs); nothing is ever
/// imported or called, so a hostile file cannot run code. An opcode outside the set read is an error, never
/// skipped. The input is one in-memory buffer whose length bounds every count (strings, memo, stack), and lengths
/// are checked against the bytes left before anything is allocated. The machine is a loop, not a recursion, so
/// nesting cannot overflow the call stack; the finished object graph, inert records included, is then checked for
/// cycles and depth (<see cref="PickleValues.Check"/>).
/// </summary>
internal sealed partial class Unpickler
{
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
                case 0x81: // NEWOBJ: cls.__new__(cls, *args)
                    object? newArgs = Pop(), cls = Pop();
                    Push(NewObj(cls, newArgs, null, ex: false));
                    break;
                case 0x92: // NEWOBJ_EX: cls.__new__(cls, *args, **kwargs)
                    object? exKwargs = Pop(), exArgs = Pop(), exCls = Pop();
                    Push(NewObj(exCls, exArgs, exKwargs, ex: true));
                    break;
                case (byte)'i': // INST: "module\nname\n", then cls(*items since the MARK)
                    string instModule = Line();
                    var instCls = Global(instModule, Line());
                    Push(Instantiate(instCls, PopMark()));
                    break;
                case (byte)'o': Push(Obj()); break; // OBJ
                case 0x82: Push(Extension(Take(1)[0])); break; // EXT1
                case 0x83: Push(Extension(BinaryPrimitives.ReadUInt16LittleEndian(Take(2)))); break; // EXT2
                case 0x84: Push(Extension(BinaryPrimitives.ReadInt32LittleEndian(Take(4)))); break; // EXT4
                case 0x8f: Push(new PySet(frozen: false)); break; // EMPTY_SET
                case 0x90: AddItems(); break; // ADDITEMS
                case 0x91: // FROZENSET
                    var frozen = new PySet(frozen: true);
                    frozen.Items.AddRange(PopMark());
                    Push(frozen);
                    break;
                case 0x96: Push(Take(BinaryPrimitives.ReadInt64LittleEndian(Take(8))).ToArray()); break; // BYTEARRAY8
                case (byte)'b': Build(); break;
                case (byte)'Q': Push(PersistentLoad(Pop())); break; // BINPERSID
                case (byte)'.': return Stop();
                default:
                    throw Fail($"pickle opcode {PickleOps.Name(_op)} at byte {_opAt} is not allowed (only the subset "
                        + "torch.save writes is read)");
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

    private object PersistentLoad(object? pid)
    {
        // torch.save's persistent id: ('storage', storage_type, key, location, numel).
        if (pid is not PyTuple { Items: [string kind, var type, string key, string location, var numel] }
            || kind != "storage")
        {
            throw Fail($"BINPERSID at byte {_opAt}: expected ('storage', type, key, location, numel), got a "
                + PickleValues.TypeName(pid));
        }
        if (type is PickleGlobal { Kind: GlobalKind.Inert, Module: "torch" } other
            && other.Name.EndsWith("Storage", StringComparison.Ordinal))
        {
            // torch.BoolStorage and friends: an error only if a tensor of it is among the weights read.
            return PyObject.Of(other, PyObjectKind.Storage, pid);
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
}
