namespace ShiftWise.IR;

/// <summary>
/// Base of every error the compiler raises on bad input; the CLI prints its message and exits non-zero.
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
