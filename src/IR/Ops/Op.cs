using System.Runtime.CompilerServices;

namespace ShiftWise.IR.Ops;

/// <summary>
/// An operation with its typed attributes. Records give structural equality, so two graphs compare by value.
/// Each op states its text name, infers its output types from its input types (checking its attributes and
/// inputs on the way), and writes its attributes for the .swir printer.
/// </summary>
public abstract record Op
{
    /// <summary>The .swir name (conv2d, shift_add, ...).</summary>
    public abstract string Name { get; }

    /// <summary>
    /// Output types for the given input types. Throws <see cref="IrException"/> with a message saying what is
    /// wrong; the verifier adds the node's name, op and input types.
    /// </summary>
    public abstract TensorType[] Infer(IReadOnlyList<TensorType> inputs);

    /// <summary>Writes the attributes in their canonical order.</summary>
    public virtual void WriteAttrs(AttrWriter w)
    {
    }

    /// <summary>Suffixes appended to a node's base name for each output ("" = the base name itself).</summary>
    public virtual IReadOnlyList<string> OutputSuffixes => Single;

    /// <summary>The usual single output.</summary>
    protected static readonly string[] Single = [""];

    /// <summary>
    /// Throws an <see cref="IrException"/> with <paramref name="message"/> unless the condition holds.
    /// </summary>
    protected static void Check(bool condition, string message)
    {
        if (!condition)
        {
            throw new IrException(message);
        }
    }

    /// <summary>
    /// Throws an <see cref="IrException"/> with the interpolated <paramref name="message"/> unless the condition holds;
    /// the message is formatted only when it fails (the table checks of an SW layer run per entry, a million times
    /// over an SW network).
    /// </summary>
    protected static void Check(bool condition,
        [InterpolatedStringHandlerArgument(nameof(condition))] ref CheckMessage message)
    {
        if (!condition)
        {
            throw new IrException(message.ToStringAndClear());
        }
    }

    /// <summary>Checks the input count.</summary>
    protected static void Arity(IReadOnlyList<TensorType> inputs, int min, int max)
    {
        if (inputs.Count < min || inputs.Count > max)
        {
            string want = min == max ? $"{min}" : $"{min} to {max}";
            throw new IrException($"expects {want} inputs, got {inputs.Count}");
        }
    }

    /// <summary>Checks that every given input is floating point with the same element type; returns it.</summary>
    protected static DType SameFloat(IReadOnlyList<TensorType> inputs, params int[] which)
    {
        var d = inputs[which.Length > 0 ? which[0] : 0].DType;
        Check(d.IsFloat(), $"input {(which.Length > 0 ? which[0] : 0)} must be floating point, got {d.Name()}");
        IEnumerable<int> idx = which.Length > 0 ? which : Enumerable.Range(0, inputs.Count);
        foreach (var i in idx)
        {
            Check(inputs[i].DType == d, $"input {i} has element type {inputs[i].DType.Name()}, expected {d.Name()}");
        }
        return d;
    }

    /// <summary>Checks the rank of one input.</summary>
    protected static void Rank(IReadOnlyList<TensorType> inputs, int i, int rank, string what)
    {
        Check(inputs[i].Shape.Rank == rank, $"{what} (input {i}) must have rank {rank}, got {inputs[i]}");
    }
}

/// <summary>Train or eval behaviour of ops that differ between the two (BatchNorm, DropPath).</summary>
public enum Mode
{
    /// <summary>Inference: running statistics, no randomness.</summary>
    Eval,
    /// <summary>Training: batch statistics, random drops.</summary>
    Train,
}

/// <summary>
/// The message of a failed <see cref="Op"/> check, formatted only when the check fails (an interpolated string
/// handler: the compiler skips the formatting calls when the condition holds).
/// </summary>
[InterpolatedStringHandler]
public ref struct CheckMessage
{
    private DefaultInterpolatedStringHandler _inner;

    /// <summary>Starts a message that is formatted only when <paramref name="condition"/> is false.</summary>
    public CheckMessage(int literalLength, int formattedCount, bool condition, out bool format)
    {
        format = !condition;
        _inner = format ? new DefaultInterpolatedStringHandler(literalLength, formattedCount) : default;
    }

    /// <summary>Appends literal text.</summary>
    public void AppendLiteral(string s) => _inner.AppendLiteral(s);

    /// <summary>Appends a formatted value.</summary>
    public void AppendFormatted<T>(T value) => _inner.AppendFormatted(value);

    /// <summary>Appends a formatted value with a format string.</summary>
    public void AppendFormatted<T>(T value, string? format) => _inner.AppendFormatted(value, format);

    /// <summary>The message.</summary>
    public string ToStringAndClear() => _inner.ToStringAndClear();
}
