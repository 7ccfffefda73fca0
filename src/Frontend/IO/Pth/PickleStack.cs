using System.Numerics;
using System.Text;

namespace ShiftWise.Frontend.IO;

/// <summary>
/// The input and stack primitives of <see cref="Unpickler"/> (its opcode loop is in Pickle.cs): bounded reads
/// of the buffer, memo and stack access with MARK levels, and the error every failure turns into.
/// </summary>
internal sealed partial class Unpickler
{
    /// <summary>The longest GLOBAL or INST line accepted; real module and class names are far shorter.</summary>
    private const int MaxLineLength = 1024;

    private static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);

    /// <summary>Only str and int keys: they hash by value without recursion (a tuple key could nest without
    /// bound), and they are all that state_dicts and optimizer states use.</summary>
    private object Key(object? key) => key is string or long or BigInteger ? key
        : throw Fail($"{PickleOps.Name(_op)} at byte {_opAt}: a {PickleValues.TypeName(key)} dict key is not supported "
            + "(only str and int keys)");

    private PyTuple Tuple(int n)
    {
        var items = new List<object?>(n);
        for (int i = 0; i < n; i++)
        {
            items.Add(Pop());
        }
        items.Reverse();
        return new PyTuple(items);
    }

    private object Long1()
    {
        var bytes = Take(Take(1)[0]);
        var v = new BigInteger(bytes, isUnsigned: false, isBigEndian: false);
        return v >= long.MinValue && v <= long.MaxValue ? (object)(long)v : v;
    }

    private string Utf8(ReadOnlySpan<byte> bytes)
    {
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw Fail($"{PickleOps.Name(_op)} at byte {_opAt} holds invalid UTF-8");
        }
    }

    private string Line()
    {
        int end = Array.IndexOf(_data, (byte)'\n', _pos, Math.Min(MaxLineLength, _data.Length - _pos));
        if (end < 0)
        {
            throw Fail($"{PickleOps.Name(_op)} at byte {_opAt}: no newline within {MaxLineLength} bytes");
        }
        string s = Utf8(_data.AsSpan(_pos, end - _pos));
        _pos = end + 1;
        return s;
    }

    /// <summary>The next <paramref name="n"/> bytes, after checking that many remain (so a forged length
    /// fails here, before any buffer of that size exists).</summary>
    private ReadOnlySpan<byte> Take(long n)
    {
        long left = _data.Length - _pos;
        if (n < 0 || n > left)
        {
            throw Fail($"truncated: {PickleOps.Name(_op)} at byte {_opAt} needs {n} more bytes but only {left} remain");
        }
        var span = _data.AsSpan(_pos, (int)n);
        _pos += (int)n;
        return span;
    }

    private void Put(long index) => _memo[index] = Peek();

    private object? Get(long index) => _memo.TryGetValue(index, out var v) ? v
        : throw Fail($"{PickleOps.Name(_op)} at byte {_opAt} reads memo entry {index}, which was never stored");

    private void Push(object? v) => _stack.Add(v);

    /// <summary>The lowest stack index that is not behind the innermost MARK (Python keeps marked items out of
    /// reach the same way, so underflow is caught per mark level).</summary>
    private int Floor => _marks.Count > 0 ? _marks[^1] : 0;

    private object? Peek() => _stack.Count > Floor ? _stack[^1]
        : throw Fail($"{PickleOps.Name(_op)} at byte {_opAt} needs a value but the stack is empty");

    private object? Pop()
    {
        var v = Peek();
        _stack.RemoveAt(_stack.Count - 1);
        return v;
    }

    private List<object?> PopMark()
    {
        if (_marks.Count == 0)
        {
            throw Fail($"{PickleOps.Name(_op)} at byte {_opAt} needs a MARK but none is open");
        }
        int from = _marks[^1];
        _marks.RemoveAt(_marks.Count - 1);
        var items = _stack.GetRange(from, _stack.Count - from);
        _stack.RemoveRange(from, _stack.Count - from);
        return items;
    }

    private PthException Fail(string what) => new(_label, what);
}
