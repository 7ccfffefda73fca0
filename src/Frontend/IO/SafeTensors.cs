using System.Buffers.Binary;
using System.Text.Json;
using ShiftWise.IR;

namespace ShiftWise.Frontend.IO;

/// <summary>A .safetensors file could not be read or written; the message starts with the file (or label).</summary>
public sealed class SafeTensorsException : IrException
{
    /// <summary>Creates the exception; the message is "<paramref name="file"/>: <paramref name="what"/>".</summary>
    public SafeTensorsException(string file, string what) : base($"{file}: {what}")
    {
        File = file;
    }

    /// <summary>Creates the exception with a cause.</summary>
    public SafeTensorsException(string file, string what, Exception inner) : base($"{file}: {what}", inner)
    {
        File = file;
    }

    /// <summary>The file path or stream label.</summary>
    public string File { get; }
}

/// <summary>
/// Reads and writes the safetensors format: an 8-byte little-endian header length, a JSON header mapping names
/// to dtype, shape and [begin, end) byte offsets, then the raw little-endian data. The whole header is
/// validated (bounds, sizes, overlaps) before any tensor is allocated, as the reference implementation does.
/// </summary>
public static partial class SafeTensors
{
    /// <summary>The largest JSON header accepted; the same limit as the reference Rust implementation.</summary>
    public const long MaxHeaderLength = 100_000_000;

    private const string MetadataKey = "__metadata__";

    private sealed record Entry(string Name, TensorType Type, long Begin, long End);

    /// <summary>Reads every tensor of a .safetensors file, keyed by name (in ordinal name order).</summary>
    public static IReadOnlyDictionary<string, Tensor> Read(string path) => WithFile(path, s => Read(s, path));

    /// <summary>Reads every tensor from the current position of <paramref name="s"/> to its end.</summary>
    /// <param name="s">The stream; when it can seek, all offsets are checked against its length first.</param>
    /// <param name="label">Names the source in error messages (usually the path).</param>
    public static IReadOnlyDictionary<string, Tensor> Read(Stream s, string label) =>
        ReadWithMetadata(s, label).Tensors;

    /// <summary>
    /// Reads every tensor and the "__metadata__" string map (empty when absent) from the current position of
    /// <paramref name="s"/> to its end, in one pass: each tensor's bytes go straight into its array.
    /// <paramref name="onMetadata"/>, when given, sees the metadata as soon as the header is validated, before the
    /// tensors are read (to start work on it meanwhile).
    /// </summary>
    public static (IReadOnlyDictionary<string, Tensor> Tensors, IReadOnlyDictionary<string, string> Metadata)
        ReadWithMetadata(Stream s, string label, Action<IReadOnlyDictionary<string, string>>? onMetadata = null)
    {
        ArgumentNullException.ThrowIfNull(s);
        ArgumentNullException.ThrowIfNull(label);
        return Guard(label, () =>
        {
            var (entries, metadata) = ReadHeader(s, label);
            onMetadata?.Invoke(metadata);
            var result = new SortedDictionary<string, Tensor>(StringComparer.Ordinal);
            // The header check guarantees the entries tile the data section in this order, so reading them
            // sequentially needs no seeking and works on pipes.
            foreach (var e in entries)
            {
                long bytes = e.End - e.Begin;
                result[e.Name] = BoundedReader.ReadTensor(s, e.Type, (int)bytes,
                    n => Fail(label, e.Name, $"truncated: data_offsets [{e.Begin}, {e.End}] need {bytes} bytes "
                        + $"but only {n} remain"));
            }
            if (!s.CanSeek && !BoundedReader.AtEnd(s))
            {
                throw Fail(label, null, "unexpected bytes after the last tensor's data");
            }
            return ((IReadOnlyDictionary<string, Tensor>)result, metadata);
        });
    }

    /// <summary>Reads the "__metadata__" string map of a .safetensors file (empty when absent).</summary>
    public static IReadOnlyDictionary<string, string> ReadMetadata(string path) =>
        WithFile(path, s => ReadMetadata(s, path));

    /// <summary>Reads the metadata map from a stream; the header is fully validated but no tensor is read.</summary>
    public static IReadOnlyDictionary<string, string> ReadMetadata(Stream s, string label)
    {
        ArgumentNullException.ThrowIfNull(s);
        ArgumentNullException.ThrowIfNull(label);
        return Guard(label, () => ReadHeader(s, label).Metadata);
    }

    private static T WithFile<T>(string path, Func<Stream, T> read)
    {
        ArgumentNullException.ThrowIfNull(path);
        FileStream fs;
        try
        {
            fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SafeTensorsException(path, $"cannot open: {e.Message}", e);
        }
        using (fs)
        {
            return read(fs);
        }
    }

    private static T Guard<T>(string label, Func<T> body)
    {
        try
        {
            return body();
        }
        catch (IOException e)
        {
            throw new SafeTensorsException(label, $"read failed: {e.Message}", e);
        }
    }

    private static (List<Entry> Entries, IReadOnlyDictionary<string, string> Metadata) ReadHeader(Stream s,
        string label)
    {
        Span<byte> lenBytes = stackalloc byte[8];
        int got = BoundedReader.ReadUpTo(s, lenBytes);
        if (got < 8)
        {
            throw Fail(label, null, $"truncated: {got} bytes is too short for the 8-byte header length");
        }
        ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
        if (headerLen > MaxHeaderLength)
        {
            throw Fail(label, null, $"header length {headerLen} exceeds the {MaxHeaderLength}-byte limit");
        }
        if (BoundedReader.Remaining(s) is long left && (long)headerLen > left)
        {
            throw Fail(label, null, $"header length {headerLen} is longer than the {left} bytes that follow it");
        }
        if (headerLen < 2)
        {
            throw Fail(label, null, $"header length {headerLen} is too short for a JSON object");
        }
        var json = BoundedReader.ReadBytes(s, (int)headerLen,
            n => Fail(label, null, $"truncated: the header claims {headerLen} bytes but only {n} remain"));
        long? dataLength = BoundedReader.Remaining(s);

        if (!System.Text.Unicode.Utf8.IsValid(json))
        {
            throw Fail(label, null, "header is not valid UTF-8 text");
        }
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw Fail(label, null, $"header is not valid JSON: {e.Message}");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw Fail(label, null, $"header must be a JSON object, found {doc.RootElement.ValueKind}");
            }
            var metadata = new SortedDictionary<string, string>(StringComparer.Ordinal);
            var entries = new List<Entry>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                // System.Text.Json keeps duplicate keys; two entries for one name would be ambiguous.
                if (!seen.Add(prop.Name))
                {
                    throw Fail(label, prop.Name, "appears twice in the header");
                }
                if (prop.Name == MetadataKey)
                {
                    ReadMetadataObject(prop.Value, metadata, label);
                }
                else
                {
                    entries.Add(ParseEntry(prop.Name, prop.Value, label));
                }
            }
            CheckLayout(entries, dataLength, label);
            return (entries, metadata);
        }
    }

    private static void ReadMetadataObject(JsonElement value, SortedDictionary<string, string> into, string label)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Fail(label, null, $"{MetadataKey} must be an object of strings, found {value.ValueKind}");
        }
        foreach (var m in value.EnumerateObject())
        {
            if (m.Value.ValueKind != JsonValueKind.String)
            {
                throw Fail(label, null, $"{MetadataKey} entry '{m.Name}' must be a string, found {m.Value.ValueKind}");
            }
            if (!into.TryAdd(m.Name, m.Value.GetString()!))
            {
                throw Fail(label, null, $"{MetadataKey} entry '{m.Name}' appears twice");
            }
        }
    }

    private static Entry ParseEntry(string name, JsonElement v, string label)
    {
        if (v.ValueKind != JsonValueKind.Object)
        {
            throw Fail(label, name, $"entry must be an object, found {v.ValueKind}");
        }
        if (!v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
        {
            throw Fail(label, name, "missing or non-string 'dtype'");
        }
        string dtypeText = dt.GetString()!;
        DType dtype = dtypeText switch
        {
            "F32" => DType.F32,
            "F64" => DType.F64,
            "F16" => DType.F16,
            "BF16" => DType.BF16,
            "I32" => DType.I32,
            "I64" => DType.I64,
            _ => throw Fail(label, name, $"unsupported dtype '{dtypeText}' (supported: F32, F64, F16, BF16, I32, I64)"),
        };

        if (!v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
        {
            throw Fail(label, name, "missing or non-array 'shape'");
        }
        var dims = new int[sh.GetArrayLength()];
        long elements = 1;
        int i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim) || dim < 0 || dim > int.MaxValue)
            {
                throw Fail(label, name, $"shape entry {i} ({d.GetRawText()}) is not an integer between 0 and "
                    + int.MaxValue);
            }
            dims[i++] = (int)dim;
            // Dims are at most int.MaxValue, so once past the limit we can stop multiplying before long overflows.
            elements = elements > Array.MaxLength ? elements : elements * dim;
        }
        long bytes = elements > Array.MaxLength ? long.MaxValue : elements * dtype.Size();
        if (bytes > Array.MaxLength)
        {
            throw Fail(label, name, $"shape [{string.Join(",", dims)}] of {dtypeText} is too large: one tensor holds "
                + $"at most {Array.MaxLength} bytes");
        }

        if (!v.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array
            || off.GetArrayLength() != 2
            || off[0].ValueKind != JsonValueKind.Number || off[1].ValueKind != JsonValueKind.Number
            || !off[0].TryGetInt64(out long begin) || !off[1].TryGetInt64(out long end)
            || begin < 0 || end < begin)
        {
            throw Fail(label, name, "'data_offsets' must be [begin, end] with 0 <= begin <= end");
        }
        if (end - begin != bytes)
        {
            throw Fail(label, name, $"data_offsets [{begin}, {end}] span {end - begin} bytes but shape "
                + $"[{string.Join(",", dims)}] of {dtypeText} needs {bytes}");
        }
        return new Entry(name, new TensorType(dtype, new Shape(dims)), begin, end);
    }

    /// <summary>
    /// Sorts <paramref name="entries"/> by offset and checks that they tile the data section exactly: no overlap
    /// (two tensors aliasing bytes), no gap and nothing past the end, as the reference implementation requires.
    /// </summary>
    private static void CheckLayout(List<Entry> entries, long? dataLength, string label)
    {
        entries.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        long pos = 0;
        Entry? prev = null;
        foreach (var e in entries)
        {
            if (dataLength is long len && e.End > len)
            {
                throw Fail(label, e.Name, $"data_offsets [{e.Begin}, {e.End}] extend past the end of the "
                    + $"{len}-byte data section");
            }
            if (e.Begin < pos)
            {
                throw Fail(label, e.Name, $"data_offsets [{e.Begin}, {e.End}] overlap tensor '{prev!.Name}' "
                    + $"[{prev.Begin}, {prev.End}]");
            }
            if (e.Begin > pos)
            {
                throw Fail(label, e.Name, $"data_offsets [{e.Begin}, {e.End}] leave a gap: the previous data "
                    + $"ends at {pos}");
            }
            pos = e.End;
            prev = e;
        }
        if (dataLength is long total && total != pos)
        {
            throw Fail(label, null, $"the data section has {total} bytes but the tensors cover only {pos}");
        }
    }

    private static SafeTensorsException Fail(string label, string? tensor, string what) =>
        new(label, tensor is null ? what : $"tensor '{tensor}': {what}");
}
