using ShiftWise.IR;

namespace ShiftWise.Frontend.IO;

/// <summary>
/// The opcodes of <see cref="Unpickler"/> that name, call or fill objects (its opcode loop is in Pickle.cs). A global
/// on the whitelist maps to a C# construction; any other global is only a name (<see cref="GlobalKind.Inert"/>), and
/// calling, instantiating, building or filling it yields an inert <see cref="PyObject"/> record. Nothing is imported,
/// looked up or called, so a file's <c>os.system</c> REDUCE is a record that says so, and reading it runs nothing.
/// </summary>
internal sealed partial class Unpickler
{
    private static readonly Dictionary<string, PickleGlobal> Allowed = new PickleGlobal[]
    {
        new("collections", "OrderedDict", GlobalKind.OrderedDict),
        new("torch._utils", "_rebuild_tensor_v2", GlobalKind.RebuildTensorV2),
        new("torch._utils", "_rebuild_tensor", GlobalKind.RebuildTensor),
        new("torch._utils", "_rebuild_parameter", GlobalKind.RebuildParameter),
        new("torch._utils", "_rebuild_parameter_with_state", GlobalKind.RebuildParameter),
        new("torch", "FloatStorage", GlobalKind.Storage, DType.F32),
        new("torch", "DoubleStorage", GlobalKind.Storage, DType.F64),
        new("torch", "HalfStorage", GlobalKind.Storage, DType.F16),
        new("torch", "BFloat16Storage", GlobalKind.Storage, DType.BF16),
        new("torch", "IntStorage", GlobalKind.Storage, DType.I32),
        new("torch", "LongStorage", GlobalKind.Storage, DType.I64),
    }.ToDictionary(g => g.ToString(), StringComparer.Ordinal);

    private static PickleGlobal Global(string module, string name) =>
        Allowed.TryGetValue($"{module} {name}", out var g) ? g : new PickleGlobal(module, name, GlobalKind.Inert);

    private object Reduce(object? callable, object? argsValue)
    {
        if (callable is not (PickleGlobal or PyObject))
        {
            throw Fail($"REDUCE at byte {_opAt} calls a {PickleValues.TypeName(callable)}, not a global");
        }
        if (argsValue is not PyTuple { Items: var args } tuple)
        {
            throw Fail($"REDUCE of a {PickleValues.TypeName(callable)} at byte {_opAt} has a "
                + $"{PickleValues.TypeName(argsValue)} of arguments, not a tuple");
        }
        if (callable is not PickleGlobal g)
        {
            return PyObject.CallOn((PyObject)callable, tuple);
        }
        switch (g.Kind)
        {
            case GlobalKind.Inert:
                return PyObject.Of(g, PyObjectKind.Call, tuple);
            case GlobalKind.OrderedDict when args.Count == 0:
                return new PickleDict(ordered: true);
            // A view of a storage this reader cannot read (torch.BoolStorage): fine anywhere but among the weights.
            case GlobalKind.RebuildTensorV2 or GlobalKind.RebuildTensor when args is [PyObject { Kind:
                PyObjectKind.Storage } s, ..]:
                return new PyObject(s.Module, s.Name, PyObjectKind.Tensor, tuple);
            // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]): autograd and
            // the optional metadata do not affect the values, so they are ignored.
            case GlobalKind.RebuildTensorV2 when args.Count is 6 or 7:
            case GlobalKind.RebuildTensor when args.Count == 4:
                return TorchTensor.Create(args[0], args[1], args[2], args[3], g, Fail);
            // (data, requires_grad, backward_hooks[, state]): a Parameter is its data as far as weights go.
            case GlobalKind.RebuildParameter when args.Count is 3 or 4
                && args[0] is TorchTensor or PyObject { Kind: PyObjectKind.Tensor }:
                return args[0]!;
            default:
                throw Fail($"REDUCE of {g} at byte {_opAt} with {args.Count} arguments "
                    + $"({string.Join(", ", args.Select(PickleValues.TypeName))}) is not supported");
        }
    }

    /// <summary>NEWOBJ (<paramref name="kwargs"/> null) and NEWOBJ_EX: <c>cls.__new__(cls, *args, **kwargs)</c>.
    /// Only an empty OrderedDict is built; any other class gives an inert instance.</summary>
    private object NewObj(object? cls, object? args, object? kwargs, bool ex)
    {
        if (args is not PyTuple tuple)
        {
            throw Fail($"{PickleOps.Name(_op)} at byte {_opAt} has a {PickleValues.TypeName(args)} of arguments, "
                + "not a tuple");
        }
        if (ex && kwargs is not PickleDict)
        {
            throw Fail($"{PickleOps.Name(_op)} at byte {_opAt} has a {PickleValues.TypeName(kwargs)} of keyword "
                + "arguments, not a dict");
        }
        if (cls is PickleGlobal { Kind: GlobalKind.OrderedDict } && tuple.Items.Count == 0
            && kwargs is null or PickleDict { Items.Count: 0 })
        {
            return new PickleDict(ordered: true);
        }
        var o = Instance(cls, tuple)
            ?? throw Fail($"{PickleOps.Name(_op)} at byte {_opAt} on a {PickleValues.TypeName(cls)} is not allowed");
        o.Kwargs = kwargs;
        return o;
    }

    /// <summary>INST and OBJ: <c>cls(*args)</c> of the protocol 0 and 1 pickles. An empty OrderedDict is built;
    /// anything else, even a whitelisted function, is an inert instance: these opcodes are not torch.save's.</summary>
    private object Instantiate(object? cls, List<object?> args)
    {
        if (cls is PickleGlobal { Kind: GlobalKind.OrderedDict } && args.Count == 0)
        {
            return new PickleDict(ordered: true);
        }
        return Instance(cls, new PyTuple(args))
            ?? throw Fail($"{PickleOps.Name(_op)} at byte {_opAt} instantiates a {PickleValues.TypeName(cls)}, "
                + "not a class");
    }

    private static PyObject? Instance(object? cls, PyTuple args) => cls switch
    {
        PickleGlobal g => PyObject.Of(g, PyObjectKind.Instance, args),
        PyObject o => new PyObject(o.Module, o.Name, PyObjectKind.Instance, args),
        _ => null,
    };

    /// <summary>OBJ: MARK, the class, its arguments.</summary>
    private object Obj()
    {
        var items = PopMark();
        return items.Count > 0 ? Instantiate(items[0], items[1..])
            : throw Fail($"OBJ (0x6f) at byte {_opAt} has no class after its MARK");
    }

    /// <summary>EXT1, EXT2, EXT4: a global by its code in copyreg's extension registry, which this reader does not
    /// consult: an inert name.</summary>
    private PickleGlobal Extension(long code) => code > 0 ? new PickleGlobal("copyreg", $"extension {code}",
        GlobalKind.Inert) : throw Fail($"{PickleOps.Name(_op)} at byte {_opAt} has extension code {code}, not > 0");

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
        if (target is PyObject o)
        {
            o.State = state; // __setstate__ or __dict__.update, recorded rather than run
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
        var items = PopMark(); // first: the list is below the MARK
        List().AddRange(items);
    }

    /// <summary>ADDITEMS: into a set, or the items of an inert set subclass.</summary>
    private void AddItems()
    {
        var items = PopMark();
        var target = Peek();
        var list = target switch
        {
            PySet { Frozen: false } s => s.Items,
            PyObject o => o.ListItems ??= [],
            _ => throw Fail($"ADDITEMS (0x90) at byte {_opAt} targets a {PickleValues.TypeName(target)}, not a set"),
        };
        list.AddRange(items);
    }

    /// <summary>The dict that SETITEM(S) fills: a dict, or the entries of an inert dict subclass.</summary>
    private PickleDict Dict() => Peek() switch
    {
        PickleDict d => d,
        PyObject o => o.DictItems ??= new PickleDict(ordered: false),
        var v => throw Fail($"{PickleOps.Name(_op)} at byte {_opAt} targets a {PickleValues.TypeName(v)}, not a dict"),
    };

    /// <summary>The list that APPEND(S) fills: a list, or the items of an inert list subclass.</summary>
    private List<object?> List() => Peek() switch
    {
        List<object?> l => l,
        PyObject o => o.ListItems ??= [],
        var v => throw Fail($"{PickleOps.Name(_op)} at byte {_opAt} targets a {PickleValues.TypeName(v)}, not a list"),
    };
}
