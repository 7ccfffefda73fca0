using System.Numerics;
using ShiftWise.IR;

namespace ShiftWise.Frontend.IO;

/// <summary>What a whitelisted pickle global turns into.</summary>
internal enum GlobalKind
{
    /// <summary>collections.OrderedDict: an empty ordered dict.</summary>
    OrderedDict,
    /// <summary>torch._utils._rebuild_tensor_v2: a tensor view of a storage.</summary>
    RebuildTensorV2,
    /// <summary>torch._utils._rebuild_tensor (the pre-1.0 form, without autograd arguments).</summary>
    RebuildTensor,
    /// <summary>torch._utils._rebuild_parameter: a Parameter, which is just its tensor here.</summary>
    RebuildParameter,
    /// <summary>torch.FloatStorage and friends: only a type tag inside a persistent id.</summary>
    Storage,
    /// <summary>Any other class or function: a name only, never imported; calling or instantiating it yields an
    /// inert <see cref="PyObject"/>.</summary>
    Inert,
}

/// <summary>A global as it sits on the pickle stack: a whitelisted one, or an <see cref="GlobalKind.Inert"/> name;
/// <see cref="DType"/> is set for storages.</summary>
internal sealed record PickleGlobal(string Module, string Name, GlobalKind Kind, DType DType = default)
{
    /// <inheritdoc/>
    public override string ToString() => $"{Module} {Name}";
}

/// <summary>A pickled dict or OrderedDict: insertion-ordered, with str or int keys.</summary>
internal sealed class PickleDict(bool ordered)
{
    /// <summary>True for a collections.OrderedDict (a module's state_dict), false for a plain dict.</summary>
    public bool Ordered { get; } = ordered;

    /// <summary>The entries, in insertion order; a repeated key overwrites in place, as in Python.</summary>
    public OrderedDictionary<object, object?> Items { get; } = [];

    /// <summary>Instance attributes set by BUILD (a state_dict's <c>_metadata</c>); null when none.</summary>
    public PickleDict? State { get; set; }

    /// <summary>Sets one entry.</summary>
    public void Set(object key, object? value) => Items[key] = value;
}

/// <summary>One <c>data/&lt;key&gt;</c> entry of the archive: <see cref="Numel"/> elements of
/// <see cref="DType"/>; <see cref="Location"/> is the device it was saved from (informational only).</summary>
internal sealed record TorchStorage(DType DType, string Key, string Location, long Numel)
{
    /// <inheritdoc/>
    public override string ToString() => $"{Numel} {DType.Name()} elements";
}

/// <summary>A strided view of a storage, checked to lie inside it: element (i0, i1, ...) is storage element
/// <c>Offset + i0*Stride[0] + i1*Stride[1] + ...</c>.</summary>
internal sealed record TorchTensor(TorchStorage Storage, long Offset, int[] Size, long[] Stride)
{
    /// <summary>Number of elements of the view.</summary>
    public long Elements => Size.Aggregate(1L, (n, d) => n * d);

    /// <summary>True when the view is the row-major layout of its elements (dims of size 1 may have any stride,
    /// as in torch), so it is one run of storage starting at <see cref="Offset"/>.</summary>
    public bool IsContiguous
    {
        get
        {
            if (Size.Contains(0))
            {
                return true;
            }
            long expected = 1;
            for (int i = Size.Length - 1; i >= 0; i--)
            {
                if (Size[i] != 1 && Stride[i] != expected)
                {
                    return false;
                }
                expected *= Size[i];
            }
            return true;
        }
    }

    /// <summary>Validates the arguments of _rebuild_tensor(_v2) and builds the view.</summary>
    public static TorchTensor Create(object? storage, object? offset, object? size, object? stride,
        PickleGlobal by, Func<string, PthException> fail)
    {
        if (storage is not TorchStorage s)
        {
            throw fail($"{by}: the storage argument is a {PickleValues.TypeName(storage)}, not a storage");
        }
        if (offset is not long off || off < 0)
        {
            throw fail($"{by}: storage_offset {Show(offset)} is not a non-negative int");
        }
        if (size is not PyTuple { Items: var sizes } || stride is not PyTuple { Items: var strides }
            || sizes.Count != strides.Count)
        {
            throw fail($"{by}: size and stride must be tuples of one length, got a {PickleValues.TypeName(size)} "
                + $"and a {PickleValues.TypeName(stride)}");
        }
        var dims = new int[sizes.Count];
        var steps = new long[sizes.Count];
        for (int i = 0; i < dims.Length; i++)
        {
            if (sizes[i] is not long d || d < 0 || d > int.MaxValue)
            {
                throw fail($"{by}: size[{i}] = {Show(sizes[i])} is not an int between 0 and {int.MaxValue}");
            }
            if (strides[i] is not long st || st < 0)
            {
                throw fail($"{by}: stride[{i}] = {Show(strides[i])} is not a non-negative int");
            }
            (dims[i], steps[i]) = ((int)d, st);
        }
        var t = new TorchTensor(s, off, dims, steps);
        t.CheckInside(fail);
        return t;
    }

    /// <summary>Rejects a view that reads past the end of its storage (torch would refuse it too). Int128 keeps
    /// the arithmetic exact for any int64 offset, int32 sizes and int64 strides.</summary>
    private void CheckInside(Func<string, PthException> fail)
    {
        string view = $"a view (offset {Offset}, size ({string.Join(", ", Size)}), stride "
            + $"({string.Join(", ", Stride)})) of storage '{Storage.Key}' ({Storage})";
        if (Size.Contains(0))
        {
            if (Offset > Storage.Numel)
            {
                throw fail($"{view} starts past the end of the storage");
            }
            return;
        }
        Int128 last = Offset;
        Int128 elements = 1;
        for (int i = 0; i < Size.Length; i++)
        {
            last += (Int128)(Size[i] - 1) * Stride[i];
            elements *= Size[i];
        }
        if (last >= Storage.Numel)
        {
            throw fail($"{view} reads element {last}, past the end of the storage");
        }
        if (elements * Storage.DType.Size() > Array.MaxLength)
        {
            throw fail($"{view} is too large: one tensor holds at most {Array.MaxLength} bytes");
        }
    }

    private static string Show(object? v) => v is long or BigInteger ? $"{v}" : PickleValues.TypeName(v);
}

/// <summary>Type names for messages, and the check of a finished object graph.</summary>
internal static class PickleValues
{
    /// <summary>Deepest nesting accepted. A checkpoint nests a few levels (checkpoint, optimizer, state, param
    /// id, tensor); anything near this limit is malformed or hostile.</summary>
    public const int MaxDepth = 100;

    /// <summary>Python's name for a value's type, for error messages.</summary>
    public static string TypeName(object? v) => v switch
    {
        null => "None",
        bool => "bool",
        long or BigInteger => "int",
        double => "float",
        string => "str",
        byte[] => "bytes",
        PyTuple => "tuple",
        List<object?> => "list",
        PickleDict { Ordered: true } => "OrderedDict",
        PickleDict => "dict",
        TorchTensor => "tensor",
        TorchStorage => "storage",
        PickleGlobal g => $"global '{g}'",
        PyObject o => o.ToString(),
        PySet { Frozen: true } => "frozenset",
        PySet => "set",
        _ => v.GetType().Name,
    };

    /// <summary>
    /// Rejects cycles and nesting deeper than <see cref="MaxDepth"/> in the graph under <paramref name="root"/>.
    /// A pickle can build both (a list appended to itself through the memo), and although this reader never
    /// recurses into values, its callers might; state_dicts are shallow trees, so nothing real is lost. One
    /// iterative post-order walk: a container reached again while on the current path is a cycle; heights are
    /// memoised, so shared sub-objects (memo references) are walked once and the walk is linear.
    /// </summary>
    public static void Check(object? root, string label)
    {
        if (Children(root) is not { } rootChildren)
        {
            return;
        }
        var height = new Dictionary<object, int>(ReferenceEqualityComparer.Instance);
        var onPath = new HashSet<object>(ReferenceEqualityComparer.Instance) { root! };
        var path = new Stack<Frame>();
        path.Push(new Frame(root!, rootChildren.GetEnumerator()));
        while (path.TryPeek(out var top))
        {
            if (!top.Children.MoveNext())
            {
                path.Pop();
                onPath.Remove(top.Node);
                int h = top.Height + 1;
                if (h > MaxDepth)
                {
                    throw new PthException(label, $"the pickled data nests deeper than {MaxDepth} levels");
                }
                height[top.Node] = h;
                if (path.TryPeek(out var parent))
                {
                    parent.Height = Math.Max(parent.Height, h);
                }
                continue;
            }
            object? child = top.Children.Current;
            if (Children(child) is not { } grandChildren)
            {
                continue;
            }
            if (onPath.Contains(child!))
            {
                throw new PthException(label, $"the pickled data is cyclic: a {TypeName(child)} contains itself");
            }
            if (height.TryGetValue(child!, out int known))
            {
                top.Height = Math.Max(top.Height, known);
            }
            else if (path.Count >= MaxDepth)
            {
                throw new PthException(label, $"the pickled data nests deeper than {MaxDepth} levels");
            }
            else
            {
                onPath.Add(child!);
                path.Push(new Frame(child!, grandChildren.GetEnumerator()));
            }
        }
    }

    /// <summary>The values a container holds, or null for a leaf (keys are str or int, so never containers). An inert
    /// object is a container of its arguments, state and items.</summary>
    private static IEnumerable<object?>? Children(object? v) => v switch
    {
        PyTuple t => t.Items,
        List<object?> l => l,
        PickleDict d => d.State is null ? d.Items.Values : d.Items.Values.Append(d.State),
        PyObject o => o.Values(),
        PySet s => s.Items,
        _ => null,
    };

    private sealed class Frame(object node, IEnumerator<object?> children)
    {
        public object Node { get; } = node;

        public IEnumerator<object?> Children { get; } = children;

        /// <summary>The greatest height among the children finished so far.</summary>
        public int Height { get; set; }
    }
}

/// <summary>Opcode names for error messages.</summary>
internal static class PickleOps
{
    private static readonly string[] HighOps =
    [
        "PROTO", "NEWOBJ", "EXT1", "EXT2", "EXT4", "TUPLE1", "TUPLE2", "TUPLE3", "NEWTRUE", "NEWFALSE", "LONG1",
        "LONG4", "SHORT_BINUNICODE", "BINUNICODE8", "BINBYTES8", "EMPTY_SET", "ADDITEMS", "FROZENSET", "NEWOBJ_EX",
        "STACK_GLOBAL", "MEMOIZE", "FRAME", "BYTEARRAY8", "NEXT_BUFFER", "READONLY_BUFFER",
    ];

    private static readonly Dictionary<char, string> LowOps = new[]
    {
        "(MARK", ".STOP", "0POP", "1POP_MARK", "2DUP", "FFLOAT", "IINT", "JBININT", "KBININT1", "LLONG", "MBININT2",
        "NNONE", "PPERSID", "QBINPERSID", "RREDUCE", "SSTRING", "TBINSTRING", "USHORT_BINSTRING", "VUNICODE",
        "XBINUNICODE", "aAPPEND", "bBUILD", "cGLOBAL", "dDICT", "}EMPTY_DICT", "eAPPENDS", "gGET", "hBINGET",
        "iINST", "jLONG_BINGET", "lLIST", "]EMPTY_LIST", "oOBJ", "pPUT", "qBINPUT", "rLONG_BINPUT", "sSETITEM",
        "tTUPLE", ")EMPTY_TUPLE", "uSETITEMS", "GBINFLOAT", "BBINBYTES", "CSHORT_BINBYTES",
    }.ToDictionary(s => s[0], s => s[1..]);

    /// <summary>"INST (0x69)": the name pickletools uses, so a message can be matched against a disassembly.</summary>
    public static string Name(byte op)
    {
        string? name = op >= 0x80 && op - 0x80 < HighOps.Length ? HighOps[op - 0x80]
            : LowOps.TryGetValue((char)op, out var n) ? n : null;
        return name is null ? $"0x{op:x2} (unknown)" : $"{name} (0x{op:x2})";
    }
}
