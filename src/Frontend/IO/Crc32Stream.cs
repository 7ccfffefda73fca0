using System.Buffers.Binary;

namespace ShiftWise.Frontend.IO;

/// <summary>
/// A read-only wrapper that computes the zip CRC-32 (polynomial 0xEDB88320) of everything read through it and,
/// when the inner stream ends, compares it with the checksum the archive recorded. ZipArchive in .NET 10 does not
/// check entry checksums, so without this a flipped bit in a weight would load silently, whereas torch's own
/// reader refuses the file. Slicing-by-8 keeps the check at a few GB/s, well below the cost of the read itself.
/// </summary>
internal sealed class Crc32Stream(Stream inner, uint expected, Func<uint, Exception> mismatch) : Stream
{
    private static readonly uint[] Table = BuildTable();

    private uint _crc = 0xFFFFFFFF;
    private bool _checked;

    /// <inheritdoc/>
    public override bool CanRead => true;

    /// <inheritdoc/>
    public override bool CanSeek => false;

    /// <inheritdoc/>
    public override bool CanWrite => false;

    /// <inheritdoc/>
    public override long Length => throw new NotSupportedException();

    /// <inheritdoc/>
    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    /// <inheritdoc/>
    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    /// <inheritdoc/>
    public override int Read(Span<byte> buffer)
    {
        int got = inner.Read(buffer);
        if (got > 0)
        {
            _crc = Update(_crc, buffer[..got]);
        }
        else if (buffer.Length > 0 && !_checked)
        {
            _checked = true;
            uint actual = _crc ^ 0xFFFFFFFF;
            if (actual != expected)
            {
                throw mismatch(actual);
            }
        }
        return got;
    }

    /// <inheritdoc/>
    public override void Flush()
    {
    }

    /// <inheritdoc/>
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    /// <inheritdoc/>
    public override void SetLength(long value) => throw new NotSupportedException();

    /// <inheritdoc/>
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }
        base.Dispose(disposing);
    }

    private static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        var t = Table;
        while (data.Length >= 8)
        {
            uint one = BinaryPrimitives.ReadUInt32LittleEndian(data) ^ crc;
            uint two = BinaryPrimitives.ReadUInt32LittleEndian(data[4..]);
            crc = t[0x700 + (one & 0xFF)] ^ t[0x600 + ((one >> 8) & 0xFF)] ^ t[0x500 + ((one >> 16) & 0xFF)]
                ^ t[0x400 + (one >> 24)] ^ t[0x300 + (two & 0xFF)] ^ t[0x200 + ((two >> 8) & 0xFF)]
                ^ t[0x100 + ((two >> 16) & 0xFF)] ^ t[two >> 24];
            data = data[8..];
        }
        foreach (byte b in data)
        {
            crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8);
        }
        return crc;
    }

    /// <summary>Table k maps a byte to its CRC contribution k bytes further along, so 8 bytes fold in at once.</summary>
    private static uint[] BuildTable()
    {
        var t = new uint[8 * 256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
            }
            t[i] = c;
        }
        for (int i = 0; i < 256; i++)
        {
            for (int s = 1; s < 8; s++)
            {
                uint prev = t[(s - 1) * 256 + i];
                t[s * 256 + i] = (prev >> 8) ^ t[prev & 0xFF];
            }
        }
        return t;
    }
}
