using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace ShiftWise.IR.Ops;

/// <summary>Collects an op's attributes as canonical text, in order.</summary>
public sealed class AttrWriter
{
    private readonly List<(string Name, string Text)> _items = [];

    /// <summary>The attributes written so far.</summary>
    public IReadOnlyList<(string Name, string Text)> Items => _items;

    /// <summary>An integer.</summary>
    public void Int(string name, long v) => _items.Add((name, v.ToString(CultureInfo.InvariantCulture)));

    /// <summary>A float, printed so that it parses back to the same double.</summary>
    public void Float(string name, double v) => _items.Add((name, FormatFloat(v)));

    /// <summary>A boolean.</summary>
    public void Bool(string name, bool v) => _items.Add((name, v ? "true" : "false"));

    /// <summary>An enum value as a lower-case word (ChannelsFirst becomes channels_first).</summary>
    public void Enum<T>(string name, T v) where T : struct, System.Enum => _items.Add((name, EnumWord(v)));

    /// <summary>A bare word.</summary>
    public void Word(string name, string word) => _items.Add((name, word));

    /// <summary>A list of integers.</summary>
    public void Ints(string name, IEnumerable<int> v) => _items.Add((name, "[" + string.Join(",", v) + "]"));

    /// <summary>A row-major table of integers, printed as a list of rows.</summary>
    public void Table(string name, IReadOnlyList<int> flat, int columns)
    {
        var sb = new StringBuilder("[");
        for (int r = 0; r * columns < flat.Count; r++)
        {
            if (r > 0) sb.Append(',');
            sb.Append('[');
            for (int c = 0; c < columns; c++)
            {
                if (c > 0) sb.Append(',');
                sb.Append(flat[r * columns + c].ToString(CultureInfo.InvariantCulture));
            }
            sb.Append(']');
        }
        _items.Add((name, sb.Append(']').ToString()));
    }

    /// <summary>
    /// Shortest round-trip text of a double, always with a '.' or exponent so it reads back as a float.
    /// </summary>
    public static string FormatFloat(double v)
    {
        if (!double.IsFinite(v))
        {
            throw new IrException($"attribute value {v} is not finite");
        }
        string s = v.ToString("R", CultureInfo.InvariantCulture);
        return s.Contains('.') || s.Contains('E') ? s : s + ".0";
    }

    /// <summary>The word for an enum value: PascalCase to snake_case.</summary>
    public static string EnumWord<T>(T v) where T : struct, System.Enum
    {
        var s = v.ToString();
        var sb = new StringBuilder();
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsUpper(s[i]) && i > 0) sb.Append('_');
            sb.Append(char.ToLowerInvariant(s[i]));
        }
        return sb.ToString();
    }
}

/// <summary>A parsed attribute value with its source position.</summary>
public abstract record AttrValue(int Line, int Column);

/// <summary>An integer literal.</summary>
public sealed record IntValue(long Value, int Line, int Column) : AttrValue(Line, Column);

/// <summary>A float literal.</summary>
public sealed record FloatValue(double Value, int Line, int Column) : AttrValue(Line, Column);

/// <summary>A bare word (true, false, enum values).</summary>
public sealed record WordValue(string Value, int Line, int Column) : AttrValue(Line, Column);

/// <summary>A bracketed list.</summary>
public sealed record ListValue(IReadOnlyList<AttrValue> Items, int Line, int Column) : AttrValue(Line, Column);

/// <summary>
/// The items of a list of integer literals as the parser keeps them: values and positions in arrays, an
/// <see cref="IntValue"/> made only when an item is looked at (an SW network's shift tables are a million integers).
/// </summary>
public sealed class IntItems : IReadOnlyList<AttrValue>
{
    private readonly List<long> _values = [];
    private readonly List<(int Line, int Column)> _at = [];

    /// <summary>Appends an integer read at a position.</summary>
    public void Add(long value, int line, int column)
    {
        _values.Add(value);
        _at.Add((line, column));
    }

    /// <summary>The value of item <paramref name="i"/>, without making its <see cref="IntValue"/>.</summary>
    public long Value(int i) => _values[i];

    /// <inheritdoc/>
    public int Count => _values.Count;

    /// <inheritdoc/>
    public AttrValue this[int index] => new IntValue(_values[index], _at[index].Line, _at[index].Column);

    /// <inheritdoc/>
    public IEnumerator<AttrValue> GetEnumerator()
    {
        for (int i = 0; i < Count; i++) yield return this[i];
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>Reads typed attributes for an op's factory; every error carries file:line:column.</summary>
public sealed class AttrReader
{
    private readonly string _file;
    private readonly string _op;
    private readonly int _line;
    private readonly int _column;
    private readonly Dictionary<string, AttrValue> _values;
    private readonly HashSet<string> _used = [];

    /// <summary>Creates a reader over parsed attributes of one op.</summary>
    public AttrReader(string file, string op, int line, int column, Dictionary<string, AttrValue> values)
    {
        _file = file;
        _op = op;
        _line = line;
        _column = column;
        _values = values;
    }

    /// <summary>True when the attribute is present.</summary>
    public bool Has(string name) => _values.ContainsKey(name);

    /// <summary>An integer attribute.</summary>
    public long Int(string name) => AsInt(Get(name), name);

    /// <summary>An integer attribute that fits an int.</summary>
    public int Int32(string name)
    {
        var v = Get(name);
        long x = AsInt(v, name);
        if (x is < int.MinValue or > int.MaxValue) throw Error(v, $"attribute '{name}' = {x} does not fit 32 bits");
        return (int)x;
    }

    /// <summary>A float attribute (an integer literal is accepted).</summary>
    public double Float(string name)
    {
        var v = Get(name);
        return v switch
        {
            FloatValue f => f.Value,
            IntValue i => i.Value,
            _ => throw Error(v, $"attribute '{name}' of {_op} must be a number"),
        };
    }

    /// <summary>A boolean attribute.</summary>
    public bool Bool(string name)
    {
        var v = Get(name);
        return v is WordValue { Value: "true" or "false" } w
            ? w.Value == "true"
            : throw Error(v, $"attribute '{name}' of {_op} must be true or false");
    }

    /// <summary>An enum attribute written as its snake_case word.</summary>
    public T Enum<T>(string name) where T : struct, System.Enum
    {
        var v = Get(name);
        if (v is WordValue w)
        {
            foreach (var c in System.Enum.GetValues<T>())
            {
                if (AttrWriter.EnumWord(c) == w.Value) return c;
            }
        }
        var words = string.Join(", ", System.Enum.GetValues<T>().Select(c => AttrWriter.EnumWord(c)));
        throw Error(v, $"attribute '{name}' of {_op} must be one of {words}");
    }

    /// <summary>True (and the attribute consumed) when it is the given bare word.</summary>
    public bool IsWord(string name, string word)
    {
        if (!_values.TryGetValue(name, out var v) || v is not WordValue w || w.Value != word) return false;
        _used.Add(name);
        return true;
    }

    /// <summary>A bare-word attribute.</summary>
    public string Word(string name)
    {
        var v = Get(name);
        return v is WordValue w ? w.Value : throw Error(v, $"attribute '{name}' of {_op} must be a word");
    }

    /// <summary>An error located at an attribute's value (at the op when the attribute is absent).</summary>
    public SwirParseException ErrorAt(string name, string what) =>
        _values.TryGetValue(name, out var v) ? Error(v, what) : new SwirParseException(_file, _line, _column, what);

    /// <summary>A list of integers.</summary>
    public int[] Ints(string name)
    {
        var v = Get(name);
        if (v is not ListValue l) throw Error(v, $"attribute '{name}' of {_op} must be a list of integers");
        var r = new int[l.Items.Count];
        AppendInt32s(l.Items, name, r);
        return r;
    }

    /// <summary>A list of equal-length integer rows, flattened; returns the row length.</summary>
    public int[] Table(string name, out int columns)
    {
        var v = Get(name);
        if (v is not ListValue l) throw Error(v, $"attribute '{name}' of {_op} must be a list of rows");
        columns = -1;
        var flat = new List<int>();
        foreach (var row in l.Items)
        {
            if (row is not ListValue r) throw Error(row, $"attribute '{name}' of {_op}: each row must be a list");
            if (columns >= 0 && r.Items.Count != columns)
            {
                throw Error(row, $"attribute '{name}' of {_op}: rows have {columns} and {r.Items.Count} entries");
            }
            columns = r.Items.Count;
            int at = flat.Count;
            CollectionsMarshal.SetCount(flat, at + columns);
            AppendInt32s(r.Items, name, CollectionsMarshal.AsSpan(flat)[at..]);
        }
        columns = Math.Max(columns, 0);
        return flat.ToArray();
    }

    /// <summary>Throws on attributes the op did not read.</summary>
    public void EnsureAllUsed()
    {
        foreach (var (k, v) in _values)
        {
            if (!_used.Contains(k)) throw Error(v, $"unknown attribute '{k}' for {_op}");
        }
    }

    private AttrValue Get(string name)
    {
        if (!_values.TryGetValue(name, out var v))
        {
            throw new SwirParseException(_file, _line, _column, $"{_op} is missing attribute '{name}'");
        }
        _used.Add(name);
        return v;
    }

    // the items as 32-bit integers into `into`, straight from the values of a parser's integer list
    private void AppendInt32s(IReadOnlyList<AttrValue> items, string name, Span<int> into)
    {
        if (items is IntItems ints)
        {
            for (int i = 0; i < into.Length; i++)
            {
                long x = ints.Value(i);
                into[i] = x is < int.MinValue or > int.MaxValue ? AsInt32(ints[i], name) : (int)x;
            }
            return;
        }
        for (int i = 0; i < into.Length; i++) into[i] = AsInt32(items[i], name);
    }

    private int AsInt32(AttrValue v, string name)
    {
        long x = AsInt(v, name);
        return x is < int.MinValue or > int.MaxValue ? throw Error(v,
            $"attribute '{name}' of {_op}: {x} does not fit 32 bits") : (int)x;
    }

    private long AsInt(AttrValue v, string name) =>
        v is IntValue i ? i.Value : throw Error(v, $"attribute '{name}' of {_op} must be an integer");

    private SwirParseException Error(AttrValue v, string what) => new(_file, v.Line, v.Column, what);
}
