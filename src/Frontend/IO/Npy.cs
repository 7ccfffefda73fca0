using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using ShiftWise.IR;

namespace ShiftWise.Frontend.IO;

/// <summary>A .npy file could not be read or written; the message starts with the file (or stream label).</summary>
public sealed class NpyException : IrException
{
    /// <summary>Creates the exception; the message is "<paramref name="file"/>: <paramref name="what"/>".</summary>
    public NpyException(string file, string what) : base($"{file}: {what}")
    {
        File = file;
    }

    /// <summary>Creates the exception with a cause.</summary>
    public NpyException(string file, string what, Exception inner) : base($"{file}: {what}", inner)
    {
        File = file;
    }

    /// <summary>The file path or stream label.</summary>
    public string File { get; }
}

/// <summary>
/// Reads and writes NumPy's .npy format (header versions 1.0, 2.0 and 3.0) for little-endian f2, f4, f8, i4 and
/// i8 arrays in C order. Every header field is checked before any data buffer is allocated, so a corrupt or
/// hostile file fails with an <see cref="NpyException"/> instead of an out-of-memory crash.
/// </summary>
public static class Npy
{
    /// <summary>The largest header accepted. NumPy writes well under 1 KiB for plain dtypes (it refuses to load
    /// headers over 10000 bytes by default); 64 KiB leaves room for any rank while keeping the read cheap.</summary>
    public const int MaxHeaderLength = 1 << 16;

    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Reads a .npy file.</summary>
    public static Tensor Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        FileStream fs;
        try
        {
            fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new NpyException(path, $"cannot open: {e.Message}", e);
        }
        using (fs)
        {
            return Read(fs, path);
        }
    }

    /// <summary>Reads a .npy image from the current position of <paramref name="s"/> to its end.</summary>
    /// <param name="s">The stream; when it can seek, its length is checked against the header first.</param>
    /// <param name="label">Names the source in error messages (usually the path).</param>
    public static Tensor Read(Stream s, string label)
    {
        ArgumentNullException.ThrowIfNull(s);
        ArgumentNullException.ThrowIfNull(label);
        try
        {
            return ReadCore(s, label);
        }
        catch (IOException e)
        {
            throw new NpyException(label, $"read failed: {e.Message}", e);
        }
    }

    /// <summary>Writes a .npy file atomically (a temporary file renamed over <paramref name="path"/>).</summary>
    public static void Write(string path, Tensor t)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(t);
        // Validate first so that an unsupported dtype leaves no temporary file behind.
        var header = Header(t, path);
        try
        {
            AtomicFile.Write(path, fs => WriteCore(fs, t, header));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new NpyException(path, $"cannot write: {e.Message}", e);
        }
    }

    /// <summary>Writes a .npy image (header version 1.0, as NumPy does) to <paramref name="s"/>.</summary>
    public static void Write(Stream s, Tensor t)
    {
        ArgumentNullException.ThrowIfNull(s);
        ArgumentNullException.ThrowIfNull(t);
        WriteCore(s, t, Header(t, "<stream>"));
    }

    private static Tensor ReadCore(Stream s, string label)
    {
        Span<byte> pre = stackalloc byte[8];
        int got = BoundedReader.ReadUpTo(s, pre);
        if (got == 0)
        {
            throw Fail(label, "the file is empty, not a .npy file");
        }
        if (!pre[..Math.Min(got, Magic.Length)].SequenceEqual(Magic.AsSpan(0, Math.Min(got, Magic.Length))))
        {
            throw Fail(label, "not a .npy file (bad magic bytes; expected \\x93NUMPY)");
        }
        if (got < pre.Length)
        {
            throw Fail(label, $"truncated: the file ends after {got} bytes, inside the preamble");
        }
        int major = pre[6], minor = pre[7];
        if (major is < 1 or > 3 || minor != 0)
        {
            throw Fail(label, $"unsupported .npy format version {major}.{minor} (supported: 1.0, 2.0, 3.0)");
        }

        // Version 1.0 has a 2-byte header length; 2.0 and 3.0 widened it to 4 bytes.
        Span<byte> lenBytes = stackalloc byte[major == 1 ? 2 : 4];
        if (BoundedReader.ReadUpTo(s, lenBytes) < lenBytes.Length)
        {
            throw Fail(label, "truncated: the file ends inside the header length field");
        }
        long headerLen = major == 1
            ? BinaryPrimitives.ReadUInt16LittleEndian(lenBytes)
            : BinaryPrimitives.ReadUInt32LittleEndian(lenBytes);
        if (headerLen > MaxHeaderLength)
        {
            throw Fail(label, $"header length {headerLen} exceeds the {MaxHeaderLength}-byte limit");
        }
        if (BoundedReader.Remaining(s) is long left && headerLen > left)
        {
            throw Fail(label, $"truncated: the header claims {headerLen} bytes but only {left} remain");
        }
        var headerBytes = BoundedReader.ReadBytes(s, (int)headerLen,
            n => Fail(label, $"truncated: the header claims {headerLen} bytes but only {n} remain"));

        var (dtype, shape) = ParseHeader(DecodeHeader(headerBytes, major, label), label);
        long elements = 1;
        foreach (var d in shape)
        {
            // Dims are at most int.MaxValue, so once past the byte limit we can stop before long overflows.
            elements *= d;
            if (elements > Array.MaxLength)
            {
                break;
            }
        }
        long bytes = elements * dtype.Size();
        string shapeText = "(" + string.Join(", ", shape) + ")";
        if (elements > Array.MaxLength || bytes > Array.MaxLength)
        {
            throw Fail(label, $"shape {shapeText} of {dtype.Name()} is too large: one tensor holds at most "
                + $"{Array.MaxLength} bytes");
        }
        if (BoundedReader.Remaining(s) is long remain && remain != bytes)
        {
            throw Fail(label, remain < bytes
                ? $"truncated: shape {shapeText} of {dtype.Name()} needs {bytes} data bytes but only {remain} remain"
                : $"{remain - bytes} unexpected bytes after the {bytes} data bytes of shape {shapeText}");
        }
        var type = new TensorType(dtype, new Shape(shape));
        var t = BoundedReader.ReadTensor(s, type, (int)bytes,
            n => Fail(label, $"truncated: shape {shapeText} of {dtype.Name()} needs {bytes} data bytes but only "
                + $"{n} remain"));
        if (!s.CanSeek && !BoundedReader.AtEnd(s))
        {
            throw Fail(label, $"unexpected bytes after the {bytes} data bytes of shape {shapeText}");
        }
        return t;
    }

    private static string DecodeHeader(byte[] bytes, int major, string label)
    {
        // 1.0 and 2.0 headers are latin-1; 3.0 exists only to allow UTF-8 (for structured field names).
        if (major < 3)
        {
            return Encoding.Latin1.GetString(bytes);
        }
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw Fail(label, "the version 3.0 header is not valid UTF-8");
        }
    }

    private static (DType DType, int[] Shape) ParseHeader(string text, string label)
    {
        object? parsed;
        try
        {
            parsed = PyLiteral.Parse(text);
        }
        catch (FormatException e)
        {
            throw Fail(label, $"malformed header dict: {e.Message}");
        }
        if (parsed is not Dictionary<string, object?> dict)
        {
            throw Fail(label, $"malformed header: expected a dict, found a {PyLiteral.TypeName(parsed)}");
        }
        foreach (var key in dict.Keys)
        {
            if (key is not ("descr" or "fortran_order" or "shape"))
            {
                throw Fail(label, $"malformed header: unexpected key '{key}' (expected descr, fortran_order, shape)");
            }
        }
        var descr = Field(dict, "descr", label);
        var fortran = Field(dict, "fortran_order", label);
        var shapeValue = Field(dict, "shape", label);

        if (descr is List<object?>)
        {
            throw Fail(label, "structured (record) dtypes are not supported");
        }
        if (descr is not string descrText)
        {
            throw Fail(label, $"malformed header: 'descr' must be a str, found a {PyLiteral.TypeName(descr)}");
        }
        var dtype = MapDescr(descrText, label);

        if (fortran is not bool isFortran)
        {
            throw Fail(label, $"malformed header: 'fortran_order' must be True or False, found a "
                + PyLiteral.TypeName(fortran));
        }
        if (isFortran)
        {
            // Reordering would need a transpose copy; NumPy only writes True for genuinely column-major arrays.
            throw Fail(label, "fortran_order True (column-major data) is not supported; save "
                + "np.ascontiguousarray(a) instead");
        }

        if (shapeValue is not PyTuple tuple)
        {
            throw Fail(label, $"malformed header: 'shape' must be a tuple, found a {PyLiteral.TypeName(shapeValue)}");
        }
        var dims = new int[tuple.Items.Count];
        for (int i = 0; i < dims.Length; i++)
        {
            if (tuple.Items[i] is not long d)
            {
                throw Fail(label, $"malformed header: shape entry {i} is a {PyLiteral.TypeName(tuple.Items[i])}, "
                    + "not an int");
            }
            if (d < 0 || d > int.MaxValue)
            {
                throw Fail(label, $"shape entry {i} is {d}; dimensions must be between 0 and {int.MaxValue}");
            }
            dims[i] = (int)d;
        }
        return (dtype, dims);
    }

    private static object? Field(Dictionary<string, object?> dict, string key, string label) =>
        dict.TryGetValue(key, out var v) ? v : throw Fail(label, $"malformed header: no '{key}' key");

    private static DType MapDescr(string descr, string label)
    {
        char order = descr.Length > 0 ? descr[0] : '\0';
        string body = order is '<' or '>' or '|' or '=' or '!' ? descr[1..] : descr;
        if (body.StartsWith('O'))
        {
            throw Fail(label, $"object arrays (dtype '{descr}') are not supported: they hold pickled Python "
                + "objects, not numbers");
        }
        DType? t = body switch
        {
            "f2" => DType.F16,
            "f4" => DType.F32,
            "f8" => DType.F64,
            "i4" => DType.I32,
            "i8" => DType.I64,
            _ => null,
        };
        if (t is null || body == descr)
        {
            throw Fail(label, $"unsupported dtype '{descr}' (supported: <f2, <f4, <f8, <i4, <i8)");
        }
        if (order is '>' or '!')
        {
            throw Fail(label, $"big-endian data (dtype '{descr}') is not supported; save a.astype('<{body}') "
                + "instead");
        }
        // '|' means "byte order not applicable" and '=' means native; this reader only runs little-endian.
        return t.Value;
    }

    private static byte[] Header(Tensor t, string label)
    {
        string descr = t.DType switch
        {
            DType.F16 => "<f2",
            DType.F32 => "<f4",
            DType.F64 => "<f8",
            DType.I32 => "<i4",
            DType.I64 => "<i8",
            _ => throw Fail(label, $"{t.DType.Name()} has no .npy dtype; cast the tensor to f32 first"),
        };
        var dims = t.Shape.Select(d => d.ToString(CultureInfo.InvariantCulture)).ToArray();
        // Python's tuple repr: (), (5,), (2, 3).
        string shape = dims.Length == 1 ? $"({dims[0]},)" : "(" + string.Join(", ", dims) + ")";
        string dict = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}";

        // Like NumPy: pad with spaces and end with '\n' so the data starts on a 64-byte boundary (lets readers
        // memory-map aligned data). Fall back to version 2.0 only if the header outgrows a 2-byte length.
        int major = 1, prefix = 10;
        int pad = (64 - (prefix + dict.Length + 1) % 64) % 64;
        if (dict.Length + pad + 1 > ushort.MaxValue)
        {
            (major, prefix) = (2, 12);
            pad = (64 - (prefix + dict.Length + 1) % 64) % 64;
        }
        int headerLen = dict.Length + pad + 1;
        var result = new byte[prefix + headerLen];
        Magic.CopyTo(result, 0);
        result[6] = (byte)major;
        result[7] = 0;
        if (major == 1)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(result.AsSpan(8, 2), (ushort)headerLen);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(result.AsSpan(8, 4), (uint)headerLen);
        }
        Encoding.Latin1.GetBytes(dict, result.AsSpan(prefix));
        result.AsSpan(prefix + dict.Length, pad).Fill((byte)' ');
        result[^1] = (byte)'\n';
        return result;
    }

    private static void WriteCore(Stream s, Tensor t, byte[] header)
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException(".npy I/O needs a little-endian host");
        }
        s.Write(header);
        s.Write(t.Bytes());
    }

    private static NpyException Fail(string label, string what) => new(label, what);
}
