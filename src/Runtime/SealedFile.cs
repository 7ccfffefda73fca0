using System.Security.Cryptography;
using ShiftWise.IR;

namespace ShiftWise.Runtime;

/// <summary>
/// Sealed cache entries (<see cref="SwcCache"/>'s format: magic, the payload's SHA-256, the payload) written and read
/// as streams, for entries too large to hold twice in memory (the graph cache's folded weights): the payload is
/// hashed while it is written, and the whole file is checked against its hash before a byte of it is parsed, so a
/// tampered entry never sizes an allocation.
/// </summary>
public static class SealedFile
{
    private const int Chunk = 1 << 20;

    /// <summary>
    /// Writes a sealed entry through a temporary file and a rename, the payload streamed by
    /// <paramref name="payload"/>; a failure is a warning (the cache is an optimisation), as in
    /// <see cref="SwcCache.TryWrite"/>. Returns whether the entry was written.
    /// </summary>
    public static bool TryWrite(string file, Action<Stream> payload, Action<string>? warn)
    {
        try
        {
            SwcCache.CreatePrivateDir(Path.GetDirectoryName(Path.GetFullPath(file))!);
            AtomicFile.Write(file, s =>
            {
                long start = s.Position;
                s.Write(SwcCache.Magic);
                s.Write(new byte[32]);
                var hashing = new HashingWriter(s);
                payload(hashing);
                var hash = hashing.Finish();
                long end = s.Position;
                s.Position = start + SwcCache.Magic.Length;
                s.Write(hash);
                s.Position = end;
            }, flushToDisk: false);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            warn?.Invoke($"warning: cannot write the cache entry {file}: {e.Message}");
            return false;
        }
    }

    /// <summary>
    /// Opens entry <paramref name="file"/> positioned at its payload after checking the whole payload against its
    /// content hash: null when it does not exist, cannot be read or is not a sealed entry, and null with a warning
    /// (the file deleted) when it does not match its hash. The caller reads the payload from the stream it owns.
    /// </summary>
    public static FileStream? TryOpen(string file, Action<string>? warn)
    {
        FileStream? fs = null;
        try
        {
            if (!File.Exists(file)) return null;
            fs = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16);
            Span<byte> head = stackalloc byte[SwcCache.HeaderBytes];
            if (fs.ReadAtLeast(head, head.Length, throwOnEndOfStream: false) != head.Length
                || !head[..8].SequenceEqual(SwcCache.Magic))
            {
                fs.Dispose();
                return null;
            }
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buf = new byte[Chunk];
            int got;
            while ((got = fs.Read(buf)) > 0) sha.AppendData(buf, 0, got);
            if (!sha.GetHashAndReset().AsSpan().SequenceEqual(head[8..]))
            {
                fs.Dispose();
                Damaged(file, warn);
                return null;
            }
            fs.Position = SwcCache.HeaderBytes;
            return fs;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            fs?.Dispose();
            warn?.Invoke($"warning: cannot read the cache entry {file}: {e.Message}");
            return null;
        }
    }

    /// <summary>Says that an entry does not match its content hash (or cannot be parsed) and deletes it.</summary>
    public static void Damaged(string file, Action<string>? warn)
    {
        warn?.Invoke($"warning: the cache entry {file} does not match its content hash (tampered with or damaged); "
            + "discarded, rebuilding it");
        SwcCache.TryDelete(file);
    }

    // a write-only stream that hashes what passes through it to the file
    private sealed class HashingWriter(Stream inner) : Stream
    {
        private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        public byte[] Finish()
        {
            var h = _sha.GetHashAndReset();
            _sha.Dispose();
            return h;
        }

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            _sha.AppendData(buffer);
            inner.Write(buffer);
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
