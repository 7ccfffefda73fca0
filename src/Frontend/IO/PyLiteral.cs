using System.Globalization;
using System.Text;

namespace ShiftWise.Frontend.IO;

/// <summary>
/// A parser for the small subset of Python literals that .npy headers use: dicts with string keys, strings,
/// integers, True/False/None, tuples and lists. Hand-written so that a header is never evaluated as code, and
/// bounded (depth, integer size) so that a hostile header fails fast instead of exhausting the stack.
/// Values come back as <see cref="string"/>, <see cref="long"/>, <see cref="bool"/>, null (None),
/// <see cref="PyTuple"/>, <see cref="List{T}"/> of object (a list) and <see cref="Dictionary{TKey,TValue}"/>.
/// </summary>
internal sealed class PyLiteral
{
    private const int MaxDepth = 32;

    private readonly string _text;
    private int _pos;

    private PyLiteral(string text) => _text = text;

    /// <summary>Parses one literal followed only by whitespace; throws <see cref="FormatException"/>.</summary>
    public static object? Parse(string text)
    {
        var p = new PyLiteral(text);
        p.SkipSpace();
        var v = p.Value(0);
        p.SkipSpace();
        if (p._pos != text.Length)
        {
            throw p.Error($"unexpected {p.Describe()} after the literal");
        }
        return v;
    }

    /// <summary>Python's repr-like name of a parsed value's type, for error messages.</summary>
    public static string TypeName(object? v) => v switch
    {
        null => "None",
        string => "str",
        long => "int",
        bool => "bool",
        PyTuple => "tuple",
        List<object?> => "list",
        Dictionary<string, object?> => "dict",
        _ => v.GetType().Name,
    };

    private object? Value(int depth)
    {
        if (depth > MaxDepth)
        {
            throw Error($"nesting deeper than {MaxDepth} levels");
        }
        if (_pos >= _text.Length)
        {
            throw Error("the header ends where a value should start");
        }
        char c = _text[_pos];
        switch (c)
        {
            case '{':
                return Dict(depth);
            case '(':
                return Paren(depth);
            case '[':
                _pos++;
                return Items(']', depth, out _);
            case '\'' or '"':
                return Str();
        }
        if (c is '-' or '+' || char.IsAsciiDigit(c))
        {
            return Int();
        }
        if (char.IsAsciiLetter(c) || c == '_')
        {
            int start = _pos;
            while (_pos < _text.Length && (char.IsAsciiLetterOrDigit(_text[_pos]) || _text[_pos] == '_'))
            {
                _pos++;
            }
            string word = _text[start.._pos];
            switch (word)
            {
                case "True":
                    return true;
                case "False":
                    return false;
                case "None":
                    return null;
            }
            _pos = start;
            throw Error($"unexpected name '{word}' (only literals are allowed)");
        }
        throw Error($"unexpected {Describe()}");
    }

    private Dictionary<string, object?> Dict(int depth)
    {
        _pos++; // '{'
        var d = new Dictionary<string, object?>(StringComparer.Ordinal);
        while (true)
        {
            SkipSpace();
            if (Eat('}'))
            {
                return d;
            }
            int keyAt = _pos;
            if (Value(depth + 1) is not string key)
            {
                _pos = keyAt;
                throw Error("dict keys must be strings");
            }
            SkipSpace();
            Expect(':');
            SkipSpace();
            // Python keeps the last duplicate silently; a header with two 'shape' entries is corrupt, so say so.
            if (!d.TryAdd(key, Value(depth + 1)))
            {
                _pos = keyAt;
                throw Error($"duplicate key '{key}'");
            }
            SkipSpace();
            if (Eat('}'))
            {
                return d;
            }
            Expect(',');
        }
    }

    /// <summary>'(' starts a tuple, or just groups one value when there is no comma, as in Python.</summary>
    private object? Paren(int depth)
    {
        _pos++;
        var items = Items(')', depth, out bool sawComma);
        return items.Count == 1 && !sawComma ? items[0] : new PyTuple(items);
    }

    private List<object?> Items(char close, int depth, out bool sawComma)
    {
        var items = new List<object?>();
        sawComma = false;
        while (true)
        {
            SkipSpace();
            if (Eat(close))
            {
                return items;
            }
            items.Add(Value(depth + 1));
            SkipSpace();
            if (Eat(close))
            {
                return items;
            }
            Expect(',');
            sawComma = true;
        }
    }

    private string Str()
    {
        char quote = _text[_pos++];
        var sb = new StringBuilder();
        while (true)
        {
            if (_pos >= _text.Length || _text[_pos] == '\n')
            {
                throw Error("unterminated string");
            }
            char c = _text[_pos++];
            if (c == quote)
            {
                return sb.ToString();
            }
            if (c != '\\')
            {
                sb.Append(c);
                continue;
            }
            if (_pos >= _text.Length)
            {
                throw Error("unterminated string");
            }
            char e = _text[_pos++];
            switch (e)
            {
                case '\\' or '\'' or '"':
                    sb.Append(e);
                    break;
                case 'n':
                    sb.Append('\n');
                    break;
                case 't':
                    sb.Append('\t');
                    break;
                case 'r':
                    sb.Append('\r');
                    break;
                case '0':
                    sb.Append('\0');
                    break;
                case 'x':
                    sb.Append(Hex(2));
                    break;
                case 'u':
                    sb.Append(Hex(4));
                    break;
                default:
                    _pos -= 2;
                    throw Error($"unsupported escape '\\{e}' in string");
            }
        }
    }

    private char Hex(int digits)
    {
        if (_pos + digits > _text.Length
            || !int.TryParse(_text.AsSpan(_pos, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture,
                out int v))
        {
            throw Error("bad hex escape in string");
        }
        _pos += digits;
        return (char)v;
    }

    private long Int()
    {
        int start = _pos;
        if (_text[_pos] is '-' or '+')
        {
            _pos++;
        }
        int digitsAt = _pos;
        while (_pos < _text.Length && char.IsAsciiDigit(_text[_pos]))
        {
            _pos++;
        }
        if (_pos == digitsAt)
        {
            _pos = start;
            throw Error("expected digits after the sign");
        }
        var span = _text.AsSpan(start, _pos - start);
        // Python 2 era numpy wrote shapes such as (3L, 4L); numpy itself still strips that suffix when loading.
        if (_pos < _text.Length && _text[_pos] is 'L' or 'l')
        {
            _pos++;
        }
        if (_pos < _text.Length && (char.IsAsciiLetterOrDigit(_text[_pos]) || _text[_pos] is '.' or '_'))
        {
            throw Error("only plain integers are allowed");
        }
        if (!long.TryParse(span, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v))
        {
            _pos = start;
            throw Error($"integer {span} is too large");
        }
        return v;
    }

    private void SkipSpace()
    {
        while (_pos < _text.Length && _text[_pos] is ' ' or '\t' or '\n' or '\r')
        {
            _pos++;
        }
    }

    private bool Eat(char c)
    {
        if (_pos < _text.Length && _text[_pos] == c)
        {
            _pos++;
            return true;
        }
        return false;
    }

    private void Expect(char c)
    {
        if (!Eat(c))
        {
            throw Error($"expected '{c}' but found {Describe()}");
        }
    }

    private string Describe() =>
        _pos >= _text.Length ? "the end of the header"
        : char.IsControl(_text[_pos]) ? $"character U+{(int)_text[_pos]:X4}"
        : $"'{_text[_pos]}'";

    private FormatException Error(string what) => new($"{what} at offset {_pos}");
}

/// <summary>A Python tuple value: (2, 3), (5,) or ().</summary>
internal sealed class PyTuple(List<object?> items)
{
    /// <summary>The elements, in order.</summary>
    public IReadOnlyList<object?> Items { get; } = items;
}
