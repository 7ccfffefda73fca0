using ShiftWise.IR;

namespace ShiftWise.Frontend.IO.Images;

/// <summary>
/// An image file (or an image argument: a folder, a glob) was rejected; the message is one sentence that starts with
/// the file, e.g. "photos/x.png: truncated: the PNG data ends early".
/// </summary>
public sealed class ImageException : IrException
{
    /// <summary>Creates the exception; the message is "<paramref name="file"/>: <paramref name="what"/>".</summary>
    public ImageException(string file, string what) : base($"{file}: {what}")
    {
        File = file;
    }

    /// <summary>Creates the exception with a cause.</summary>
    public ImageException(string file, string what, Exception inner) : base($"{file}: {what}", inner)
    {
        File = file;
    }

    /// <summary>The file, folder or pattern that was rejected.</summary>
    public string File { get; }
}
