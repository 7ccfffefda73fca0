using System.IO.Hashing;

namespace ShiftWise.Frontend.IO;

/// <summary>
/// A read-only wrapper that computes the zip CRC-32 (polynomial 0xEDB88320) of everything read through it and,
/// when the inner stream ends, compares it with the checksum the archive recorded. ZipArchive in .NET 10 does not
/// check entry checksums, so without this a flipped bit in a weight would load silently, whereas torch's own
/// reader refuses the file. (<see cref="Crc32"/> is System.IO.Hashing's, far cheaper than the read itself.)
/// </summary>
internal sealed class Crc32Stream(Stream inner, uint expected, Func<uint, Exception> mismatch) : Stream
{
    private readonly Crc32 _crc = new();
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
            _crc.Append(buffer[..got]);
        }
        else if (buffer.Length > 0 && !_checked)
        {
            _checked = true;
            uint actual = _crc.GetCurrentHashAsUInt32();
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
}
