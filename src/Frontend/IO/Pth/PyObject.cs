namespace ShiftWise.Frontend.IO;

/// <summary>How an inert <see cref="PyObject"/> came about.</summary>
internal enum PyObjectKind
{
    /// <summary>An instance of a class (NEWOBJ, NEWOBJ_EX, OBJ, INST): <c>argparse.Namespace</c>.</summary>
    Instance,
    /// <summary>The result of a call (REDUCE): <c>posix.system(...)</c>, never made.</summary>
    Call,
    /// <summary>A torch storage of a dtype this reader does not read (<c>torch.BoolStorage</c>).</summary>
    Storage,
    /// <summary>A tensor over such a storage.</summary>
    Tensor,
}

/// <summary>
/// An object of a class outside the whitelist, kept as plain data: the class (or function) by module and name, and
/// what the pickle gave it: the arguments of the call or constructor, the state of BUILD, and the items that
/// APPEND(S) and SETITEM(S) added. Nothing is imported, called or built; the record only lets a checkpoint's other
/// entries (an <c>argparse.Namespace</c> of training arguments, a scaler, hooks) be parsed past, and lets messages
/// say what an entry holds.
/// </summary>
internal sealed class PyObject(string module, string name, PyObjectKind kind, object? args)
{
    /// <summary>The longest class name a message shows; pickled names are bounded only by the pickle.</summary>
    private const int ShownName = 80;

    /// <summary>The class's (or function's) module, as pickled.</summary>
    public string Module { get; } = module;

    /// <summary>The class's (or function's) name, as pickled.</summary>
    public string Name { get; } = name;

    /// <summary>Instance, call result, or unreadable storage or tensor.</summary>
    public PyObjectKind Kind { get; } = kind;

    /// <summary>The arguments (a tuple; for a storage its persistent id; NEWOBJ_EX adds a dict of keywords).</summary>
    public object? Args { get; } = args;

    /// <summary>NEWOBJ_EX's keyword arguments; null otherwise.</summary>
    public object? Kwargs { get; set; }

    /// <summary>The state BUILD set (usually the instance's <c>__dict__</c>); null when none.</summary>
    public object? State { get; set; }

    /// <summary>Items APPEND(S) or ADDITEMS added (a list or set subclass); null when none.</summary>
    public List<object?>? ListItems { get; set; }

    /// <summary>Entries SETITEM(S) added (a dict subclass); null when none.</summary>
    public PickleDict? DictItems { get; set; }

    /// <summary>An instance or call of the global <paramref name="g"/>.</summary>
    public static PyObject Of(PickleGlobal g, PyObjectKind kind, object? args) => new(g.Module, g.Name, kind, args);

    /// <summary>A call on an object that is itself inert (a REDUCE whose callable came from a REDUCE): named after
    /// that object's class, so names never grow with the nesting.</summary>
    public static PyObject CallOn(PyObject callable, object? args) =>
        new(callable.Module, callable.Name, PyObjectKind.Call, args);

    /// <summary>"argparse.Namespace", "posix.system(...)", "torch.BoolStorage tensor": for messages.</summary>
    public override string ToString()
    {
        string cls = $"{Module}.{Name}";
        if (cls.Length > ShownName)
        {
            cls = cls[..ShownName] + "...";
        }
        return Kind switch
        {
            PyObjectKind.Call => cls + "(...)",
            PyObjectKind.Storage => cls + " storage",
            PyObjectKind.Tensor => cls + " tensor",
            _ => cls,
        };
    }

    /// <summary>Every value the record holds, for the depth and cycle check.</summary>
    public IEnumerable<object?> Values()
    {
        yield return Args;
        yield return Kwargs;
        yield return State;
        yield return ListItems;
        yield return DictItems;
    }
}

/// <summary>A pickled set or frozenset (protocol 4): its items in pickle order; never hashed, never used.</summary>
internal sealed class PySet(bool frozen)
{
    /// <summary>True for a frozenset.</summary>
    public bool Frozen { get; } = frozen;

    /// <summary>The items.</summary>
    public List<object?> Items { get; } = [];
}
