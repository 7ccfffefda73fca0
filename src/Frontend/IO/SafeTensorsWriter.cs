using System.Buffers;
using System.Buffers.Binary;
using System.Text.Encodings.Web;
using System.Text.Json;
using ShiftWise.IR;

namespace ShiftWise.Frontend.IO;

/// <summary>The writing half of <see cref="SafeTensors"/>: the padded JSON header, then the data of the tensors
/// in ordinal name order.</summary>
public static partial class SafeTensors
{
    /// <summary>
    /// Writes a .safetensors file atomically: tensors sorted by name with contiguous offsets, the header padded
    /// with spaces so that the data section starts on an 8-byte boundary.
    /// </summary>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        var header = Header(tensors, metadata, path);
        try
        {
            AtomicFile.Write(path, fs => WriteCore(fs, tensors, header));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SafeTensorsException(path, $"cannot write: {e.Message}", e);
        }
    }

    /// <summary>Writes a .safetensors image to <paramref name="s"/>.</summary>
    public static void Write(Stream s, IReadOnlyDictionary<string, Tensor> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(s);
        WriteCore(s, tensors, Header(tensors, metadata, "<stream>"));
    }

    private static byte[] Header(IReadOnlyDictionary<string, Tensor> tensors,
        IReadOnlyDictionary<string, string>? metadata, string label)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var buffer = new ArrayBufferWriter<byte>();
        // Relaxed escaping keeps non-ASCII names readable; the output is still strict JSON.
        var options = new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        using (var w = new Utf8JsonWriter(buffer, options))
        {
            w.WriteStartObject();
            if (metadata is not null)
            {
                w.WriteStartObject(MetadataKey);
                foreach (var (k, v) in metadata.OrderBy(p => p.Key, StringComparer.Ordinal))
                {
                    w.WriteString(k, v);
                }
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, t) in tensors.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                if (name == MetadataKey)
                {
                    throw new ArgumentException($"'{MetadataKey}' is reserved and cannot name a tensor",
                        nameof(tensors));
                }
                ArgumentNullException.ThrowIfNull(t, $"{nameof(tensors)}[{name}]");
                w.WriteStartObject(name);
                w.WriteString("dtype", t.DType.Name().ToUpperInvariant());
                w.WriteStartArray("shape");
                foreach (var d in t.Shape)
                {
                    w.WriteNumberValue(d);
                }
                w.WriteEndArray();
                long bytes = t.Bytes().Length;
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + bytes);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += bytes;
            }
            w.WriteEndObject();
        }
        if (buffer.WrittenCount > MaxHeaderLength)
        {
            throw Fail(label, null,
                $"the header would be {buffer.WrittenCount} bytes, over the {MaxHeaderLength}-byte limit");
        }
        // 8-byte alignment of the data section lets readers map f64/i64 tensors without copying.
        int padded = (buffer.WrittenCount + 7) / 8 * 8;
        var header = new byte[8 + padded];
        BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)padded);
        buffer.WrittenSpan.CopyTo(header.AsSpan(8));
        header.AsSpan(8 + buffer.WrittenCount).Fill((byte)' ');
        return header;
    }

    private static void WriteCore(Stream s, IReadOnlyDictionary<string, Tensor> tensors, byte[] header)
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("safetensors I/O needs a little-endian host");
        }
        s.Write(header);
        foreach (var (_, t) in tensors.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            s.Write(t.Bytes());
        }
    }
}
