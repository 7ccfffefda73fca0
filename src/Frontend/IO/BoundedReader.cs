using ShiftWise.IR;

namespace ShiftWise.Frontend.IO;

/// <summary>
/// Stream reads whose allocations are bounded by what the stream really holds, not by what a header claims.
/// A seekable stream's length is checked by the caller before anything is allocated; a pipe cannot be measured,
/// so its bytes are gathered in chunks and the full buffer is allocated only once they have all arrived.
/// </summary>
internal static class BoundedReader
{
    /// <summary>Chunk size for non-seekable streams: small enough that a lying header costs little.</summary>
    private const int ChunkSize = 1 << 20;

    /// <summary>Bytes left in a seekable stream, or null when the stream cannot tell.</summary>
    public static long? Remaining(Stream s) => s.CanSeek ? Math.Max(0, s.Length - s.Position) : null;

    /// <summary>Reads up to <c>buffer.Length</c> bytes; returns how many arrived before the stream ended.</summary>
    public static int ReadUpTo(Stream s, Span<byte> buffer) =>
        s.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);

    /// <summary>
    /// Reads exactly <paramref name="count"/> bytes; <paramref name="truncated"/> gets the number that did arrive
    /// and makes the exception to throw.
    /// </summary>
    public static byte[] ReadBytes(Stream s, int count, Func<long, Exception> truncated)
    {
        if (s.CanSeek || count <= ChunkSize)
        {
            var all = new byte[count];
            int got = ReadUpTo(s, all);
            return got == count ? all : throw truncated(got);
        }
        var chunks = ReadChunks(s, count, truncated);
        var result = new byte[count];
        Concat(chunks, result);
        return result;
    }

    /// <summary>Reads <paramref name="byteCount"/> bytes of raw little-endian storage into a new tensor.</summary>
    public static Tensor ReadTensor(Stream s, TensorType type, int byteCount, Func<long, Exception> truncated)
    {
        // Tensor storage is the host's byte order; the formats are little-endian.
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("tensor file I/O needs a little-endian host");
        }
        if (s.CanSeek)
        {
            var t = Tensor.Zeros(type);
            int got = ReadUpTo(s, t.Bytes());
            return got == byteCount ? t : throw truncated(got);
        }
        var chunks = ReadChunks(s, byteCount, truncated);
        var tensor = Tensor.Zeros(type);
        Concat(chunks, tensor.Bytes());
        return tensor;
    }

    /// <summary>True when nothing is left; on a non-seekable stream this may consume one byte.</summary>
    public static bool AtEnd(Stream s) => s.CanSeek ? s.Position >= s.Length : s.ReadByte() < 0;

    private static List<byte[]> ReadChunks(Stream s, int count, Func<long, Exception> truncated)
    {
        var chunks = new List<byte[]>();
        long have = 0;
        while (have < count)
        {
            var chunk = new byte[(int)Math.Min(ChunkSize, count - have)];
            int got = ReadUpTo(s, chunk);
            have += got;
            if (got < chunk.Length)
            {
                throw truncated(have);
            }
            chunks.Add(chunk);
        }
        return chunks;
    }

    private static void Concat(List<byte[]> chunks, Span<byte> dest)
    {
        int offset = 0;
        foreach (var c in chunks)
        {
            c.CopyTo(dest[offset..]);
            offset += c.Length;
        }
    }
}
