using System.Buffers.Binary;
using System.IO.Hashing;
using System.Security.Cryptography;
using System.Text;
using ShiftWise.IR;

namespace ShiftWise.CodegenCuda.Standalone;

/// <summary>
/// One tensor of weights.bin: its name (for tools; never part of generated code), start and size in floats.
/// </summary>
public sealed record WeightsEntry(string Name, long Offset, long Floats);

/// <summary>
/// The layout of an emitted model's <c>weights.bin</c> (format 1, all integers little-endian):
/// <code>
///   0  char[8]   magic "SWCWEIGH"
///   8  u32       format version (1)
///  12  u32       tensor count N
///  16  u64       table bytes T
///  24  u64       payload bytes P (a multiple of 256)
///  32  u8[16]    model id: the first 16 bytes of SHA-256 over the kernels, steps, layout and shapes the
///                library bakes in
///  48  u32       CRC-32 (IEEE, as zlib) of everything after the 64-byte header: the table, its padding and the payload
///  52  u32       CRC-32 of header bytes 0..51
///  56  u8[8]     zero
///  64  table     N rows: u64 offset (floats from the payload's start), u64 floats, u32 name bytes, the name (UTF-8)
///      padding   zeros up to the next multiple of 256 bytes
///      payload   P bytes of float32: the graph's parameters in order, then the derived tensors, each starting on a
///                256-byte boundary (zeros between)
/// </code>
/// The generated launcher knows N, P, the model id and every row's offset and size, and rejects any file that differs.
/// </summary>
public static class WeightsBin
{
    /// <summary>The file's first 8 bytes.</summary>
    public static ReadOnlySpan<byte> Magic => "SWCWEIGH"u8;

    /// <summary>The format version this code writes and the generated launcher reads.</summary>
    public const uint Format = 1;

    /// <summary>Header bytes.</summary>
    public const int HeaderBytes = 64;

    /// <summary>Alignment of the payload and of every tensor in it, in bytes.</summary>
    public const int Alignment = 256;

    /// <summary>
    /// Places <paramref name="tensors"/> (name, floats) one after another, each aligned; returns the rows and the
    /// payload floats.
    /// </summary>
    public static (IReadOnlyList<WeightsEntry> Rows, long PayloadFloats) Layout(IEnumerable<(string Name,
        long Floats)> tensors)
    {
        var rows = new List<WeightsEntry>();
        long at = 0;
        const long step = Alignment / 4;
        foreach (var (name, floats) in tensors)
        {
            if (floats < 0) throw new IrException($"weights.bin: tensor '{name}' has a negative size");
            rows.Add(new WeightsEntry(name, at, floats));
            at += (floats + step - 1) / step * step;
        }
        return (rows, at);
    }

    /// <summary>The bytes of the table (before padding).</summary>
    public static byte[] Table(IReadOnlyList<WeightsEntry> rows)
    {
        using var ms = new MemoryStream();
        Span<byte> b = stackalloc byte[20];
        foreach (var r in rows)
        {
            var name = Encoding.UTF8.GetBytes(r.Name);
            BinaryPrimitives.WriteUInt64LittleEndian(b, (ulong)r.Offset);
            BinaryPrimitives.WriteUInt64LittleEndian(b[8..], (ulong)r.Floats);
            BinaryPrimitives.WriteUInt32LittleEndian(b[16..], (uint)name.Length);
            ms.Write(b);
            ms.Write(name);
        }
        return ms.ToArray();
    }

    /// <summary>
    /// The model id: the first 16 bytes of SHA-256 over <paramref name="model"/> (what the library bakes in) and the
    /// table's offsets and sizes.
    /// </summary>
    public static byte[] ModelId(string model, IReadOnlyList<WeightsEntry> rows)
    {
        var sb = new StringBuilder(model);
        foreach (var r in rows) sb.Append('\n').Append(r.Offset).Append(' ').Append(r.Floats);
        return SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString()))[..16];
    }

    /// <summary>
    /// Writes the whole file: header, table, padding, payload (<paramref name="data"/> gives each row's floats).
    /// </summary>
    public static byte[] Write(IReadOnlyList<WeightsEntry> rows, long payloadFloats, byte[] modelId,
        Func<WeightsEntry, float[]> data)
    {
        if (modelId.Length != 16) throw new ArgumentException("the model id is 16 bytes", nameof(modelId));
        var table = Table(rows);
        long tableEnd = Align(HeaderBytes + table.LongLength);
        long total = tableEnd + payloadFloats * 4;
        if (total > int.MaxValue)
        {
            throw new IrException($"weights.bin would be {total} bytes; over 2 GiB is not supported");
        }
        var file = new byte[total];
        var span = file.AsSpan();
        Magic.CopyTo(span);
        BinaryPrimitives.WriteUInt32LittleEndian(span[8..], Format);
        BinaryPrimitives.WriteUInt32LittleEndian(span[12..], (uint)rows.Count);
        BinaryPrimitives.WriteUInt64LittleEndian(span[16..], (ulong)table.Length);
        BinaryPrimitives.WriteUInt64LittleEndian(span[24..], (ulong)(payloadFloats * 4));
        modelId.CopyTo(span[32..]);
        table.CopyTo(span[HeaderBytes..]);
        foreach (var r in rows)
        {
            var v = data(r);
            if (v.LongLength != r.Floats)
            {
                throw new IrException($"weights.bin: tensor '{r.Name}' has {v.LongLength} floats, {r.Floats} planned");
            }
            var dst = span.Slice((int)(tableEnd + r.Offset * 4), v.Length * 4);
            for (int i = 0; i < v.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(dst[(i * 4)..], v[i]);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(span[48..], Crc32.HashToUInt32(span[HeaderBytes..]));
        BinaryPrimitives.WriteUInt32LittleEndian(span[52..], Crc32.HashToUInt32(span[..52]));
        return file;
    }

    /// <summary>What <see cref="Read"/> found in a file.</summary>
    public sealed record Contents(byte[] ModelId, IReadOnlyList<WeightsEntry> Rows, long PayloadOffset,
        long PayloadBytes);

    /// <summary>
    /// Parses and checks a weights.bin (the same checks as the generated launcher, for tools and tests).
    /// </summary>
    public static Contents Read(ReadOnlySpan<byte> file, string what = "weights.bin")
    {
        if (file.Length < HeaderBytes || !file[..8].SequenceEqual(Magic))
        {
            throw new IrException($"{what} is not a ShiftWise weights file (no SWCWEIGH header)");
        }
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(file[8..]);
        if (version != Format)
        {
            throw new IrException($"{what} has format version {version}; this reader knows {Format}");
        }
        if (BinaryPrimitives.ReadUInt32LittleEndian(file[52..]) != Crc32.HashToUInt32(file[..52]))
        {
            throw new IrException($"{what}: the header checksum does not match (the file is corrupt)");
        }
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(file[12..]);
        ulong tableBytes = BinaryPrimitives.ReadUInt64LittleEndian(file[16..]);
        ulong payloadBytes = BinaryPrimitives.ReadUInt64LittleEndian(file[24..]);
        if (tableBytes > (ulong)file.Length || payloadBytes > (ulong)file.Length || payloadBytes % Alignment != 0)
        {
            throw new IrException($"{what}: the header's sizes (table {tableBytes}, payload {payloadBytes} bytes) do "
                + $"not fit a {file.Length}-byte file");
        }
        long payloadOffset = Align(HeaderBytes + (long)tableBytes);
        if (payloadOffset + (long)payloadBytes != file.Length)
        {
            throw new IrException($"{what} is {file.Length} bytes; its header says "
                + $"{payloadOffset + (long)payloadBytes} (truncated or padded)");
        }
        if (BinaryPrimitives.ReadUInt32LittleEndian(file[48..]) != Crc32.HashToUInt32(file[HeaderBytes..]))
        {
            throw new IrException($"{what}: the checksum does not match (the file is corrupt)");
        }
        var rows = new List<WeightsEntry>();
        var t = file.Slice(HeaderBytes, (int)tableBytes);
        for (uint i = 0; i < count; i++)
        {
            if (t.Length < 20) throw new IrException($"{what}: the table ends inside row {i}");
            long off = (long)BinaryPrimitives.ReadUInt64LittleEndian(t);
            long floats = (long)BinaryPrimitives.ReadUInt64LittleEndian(t[8..]);
            uint nameBytes = BinaryPrimitives.ReadUInt32LittleEndian(t[16..]);
            if (nameBytes > t.Length - 20) throw new IrException($"{what}: the name of row {i} runs past the table");
            if (off < 0 || floats < 0 || off + floats > (long)payloadBytes / 4)
            {
                throw new IrException($"{what}: row {i} lies outside the payload");
            }
            rows.Add(new WeightsEntry(Encoding.UTF8.GetString(t.Slice(20, (int)nameBytes)), off, floats));
            t = t[(20 + (int)nameBytes)..];
        }
        if (t.Length != 0) throw new IrException($"{what}: {t.Length} bytes after the table's last row");
        return new Contents(file.Slice(32, 16).ToArray(), rows, payloadOffset, (long)payloadBytes);
    }

    private static long Align(long b) => (b + Alignment - 1) / Alignment * Alignment;
}
