namespace ShiftWise.Frontend.IO;

/// <summary>
/// Chooses the state_dict inside an unpickled checkpoint, and says what the checkpoint's entries hold when none fits:
/// <c>'model' (a dict of 172 tensors), 'epoch' (int), 'args' (argparse.Namespace)</c>.
/// </summary>
internal static class CheckpointEntries
{
    /// <summary>
    /// The entries read without a key, in order of preference; the first one present decides. The original's
    /// <c>save_model</c> writes <c>model</c>, and <c>model_ema</c> next to it when training keeps an EMA; its
    /// evaluation loads <c>model</c>, so <c>model</c> wins when both are present (the EMA weights take a key).
    /// Lightning and many others write <c>state_dict</c>.
    /// </summary>
    public static readonly IReadOnlyList<string> Preferred = ["model", "state_dict", "model_ema"];

    /// <summary>How many entries a message lists before "and N more".</summary>
    private const int Listed = 12;

    /// <summary>The longest key a message shows.</summary>
    private const int ShownKey = 60;

    /// <summary>
    /// The dict of tensors to read: the entry <paramref name="key"/> when given; else the first of
    /// <see cref="Preferred"/> present; else the checkpoint itself when it holds tensors (a bare state_dict).
    /// </summary>
    public static (PickleDict Dict, string Where) Select(object? root, string? key, string label)
    {
        if (root is not PickleDict top)
        {
            throw new PthException(label, $"the checkpoint holds a {PickleValues.TypeName(root)}, not a dict of "
                + "tensors (a state_dict)");
        }
        if (key is not null)
        {
            return top.Items.TryGetValue(key, out var asked) ? Entry(top, key, asked, label)
                : throw new PthException(label, $"the checkpoint has no entry '{Show(key)}' (the checkpoint key "
                    + $"asked for); its entries are {List(top)}");
        }
        foreach (string k in Preferred)
        {
            if (top.Items.TryGetValue(k, out var v))
            {
                return Entry(top, k, v, label);
            }
        }
        if (top.Items.Count == 0 || top.Items.Values.Any(IsTensor))
        {
            return (top, "the state_dict");
        }
        throw new PthException(label, $"no state_dict found: the checkpoint's entries are {List(top)}; expected "
            + "tensors, or a dict of them under 'model', 'state_dict' or 'model_ema'; name another entry with "
            + "--checkpoint-key");
    }

    private static (PickleDict, string) Entry(PickleDict top, string key, object? value, string label)
    {
        if (value is PickleDict d)
        {
            return (d, $"checkpoint['{Show(key)}']");
        }
        // torch.save(model) pickles the module's __dict__, whose _parameters a module always has.
        string hint = value is PyObject { State: PickleDict state } && state.Items.ContainsKey("_parameters")
            ? " (the module object itself, pickled whole: save its state_dict() instead)" : "";
        throw new PthException(label, $"checkpoint entry '{Show(key)}' holds {Describe(value)}{hint}, not a dict of "
            + $"tensors; the checkpoint's entries are {List(top)}");
    }

    private static bool IsTensor(object? v) => v is TorchTensor or PyObject { Kind: PyObjectKind.Tensor };

    /// <summary>"'model' (a dict of 172 tensors), 'epoch' (int), ..., and 3 more".</summary>
    public static string List(PickleDict d)
    {
        var shown = d.Items.Take(Listed).Select(e => $"{ShowKey(e.Key)} ({Describe(e.Value)})");
        string more = d.Items.Count > Listed ? $", and {d.Items.Count - Listed} more" : "";
        return d.Items.Count == 0 ? "none" : string.Join(", ", shown) + more;
    }

    /// <summary>What a value is, in a few words: "a dict of 172 tensors", "int", "argparse.Namespace".</summary>
    public static string Describe(object? v) => v switch
    {
        TorchTensor or PyObject { Kind: PyObjectKind.Tensor } => "a tensor",
        PickleDict { Items.Count: 0 } => "an empty dict",
        PickleDict d => Summary(d),
        List<object?> l => $"a list of {Count(l.Count, "item", "items")}",
        PyTuple t => $"a tuple of {Count(t.Items.Count, "item", "items")}",
        _ => PickleValues.TypeName(v),
    };

    private static string Summary(PickleDict d)
    {
        int n = d.Items.Count, tensors = d.Items.Values.Count(IsTensor);
        return tensors == n ? $"a dict of {Count(n, "tensor", "tensors")}"
            : tensors > 0 ? $"a dict of {n} entries, {tensors} of them tensors"
            : $"a dict of {Count(n, "entry", "entries")}";
    }

    private static string Count(int n, string one, string many) => $"{n} {(n == 1 ? one : many)}";

    private static string ShowKey(object key) => key is string s ? $"'{Show(s)}'" : $"{key}";

    private static string Show(string s) => s.Length <= ShownKey ? s : s[..ShownKey] + "...";
}
