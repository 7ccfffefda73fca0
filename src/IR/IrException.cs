namespace ShiftWise.IR;

/// <summary>
/// An input was rejected: a model, weights or data file, a graph, or an option's value. The message says what and
/// where (the file, node or option); swc prints it and exits 2. Any other exception is a bug in swc (exit 70, with
/// the stack trace).
/// </summary>
public class IrException : Exception
{
    /// <summary>Creates the exception.</summary>
    public IrException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception with a cause.</summary>
    public IrException(string message, Exception inner) : base(message, inner)
    {
    }
}

/// <summary>
/// An option's value was rejected (a command-line option, or the same setting given through the API); the message
/// starts with the option's name.
/// </summary>
public sealed class OptionException(string message) : IrException(message);

/// <summary>A graph or node broke a verifier rule; the message names the node, its op and its input types.</summary>
public sealed class VerifyException : IrException
{
    /// <summary>Creates the exception.</summary>
    public VerifyException(string message, string? node = null) : base(message) => Node = node;

    /// <summary>The name of the offending node, when one is to blame.</summary>
    public string? Node { get; }
}

/// <summary>A .swir text could not be parsed; <see cref="Exception.Message"/> starts with file:line:column.</summary>
public sealed class SwirParseException : IrException
{
    /// <summary>Creates the exception.</summary>
    public SwirParseException(string file, int line, int column, string what)
        : base($"{file}:{line}:{column}: error: {what}")
    {
        File = file;
        Line = line;
        Column = column;
    }

    /// <summary>The file (or a label such as &lt;string&gt;).</summary>
    public string File { get; }

    /// <summary>1-based line.</summary>
    public int Line { get; }

    /// <summary>1-based column.</summary>
    public int Column { get; }
}
