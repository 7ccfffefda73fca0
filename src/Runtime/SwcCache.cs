using ShiftWise.IR;
using System.Security.Cryptography;
using ShiftWise.Frontend.IO;

namespace ShiftWise.Runtime;

/// <summary>
/// The one cache directory of the project ($SWC_CACHE_DIR, default ~/.cache/swc) and its entries: compiled C#
/// kernels (cpu/), NVRTC output (cuda/), tuning results (tune/). Entries are keyed by hashes of what produced them
/// (source, compiler version, options), so a stale entry is never looked up; each entry file also carries the SHA-256
/// of its own content, checked before use, so a tampered or damaged PTX, CUBIN or assembly is discarded (with a
/// warning) and rebuilt rather than loaded. Folders are created private to the user (0700); entries are written
/// through a temporary file and a rename, so concurrent writers and a killed process never leave a partial entry.
/// </summary>
public static class SwcCache
{
    /// <summary>The first 8 bytes of every entry file.</summary>
    public static ReadOnlySpan<byte> Magic => "SWCENTRY"u8;

    /// <summary>Magic and SHA-256 before the payload.</summary>
    public const int HeaderBytes = 8 + 32;

    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    // A root set for one flow of work (and the tasks and threads it starts), over SWC_CACHE_DIR: lets a host that runs
    // independent jobs in one process, such as the test runner, give each its own cache without touching the
    // process-wide environment that parallel jobs share.
    private static readonly AsyncLocal<string?> ScopedRoot = new();

    /// <summary>
    /// The root directory: <see cref="UseRoot"/>'s while one is in effect, else <see cref="ProcessRoot"/>.
    /// </summary>
    public static string Root => ScopedRoot.Value ?? ProcessRoot;

    /// <summary>
    /// The whole process's root, whatever <see cref="UseRoot"/> says: $SWC_CACHE_DIR, else ~/.cache/swc.
    /// </summary>
    public static string ProcessRoot => Environment.GetEnvironmentVariable("SWC_CACHE_DIR") is { Length: > 0 } d
        ? d
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "swc");

    /// <summary>
    /// Makes <paramref name="dir"/> the root for the calling flow of work (async-local: the tasks and threads it starts
    /// see it, other flows do not) until the result is disposed, when the previous root returns.
    /// </summary>
    public static IDisposable UseRoot(string dir)
    {
        var previous = ScopedRoot.Value;
        ScopedRoot.Value = Path.GetFullPath(dir);
        return new Restore(() => ScopedRoot.Value = previous);
    }

    private sealed class Restore(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }

    /// <summary>The directory of one kind of entry.</summary>
    public static string Dir(string kind) => Path.Combine(Root, kind);

    /// <summary>
    /// Creates <paramref name="dir"/> and every missing folder above it readable, writable and searchable by the user
    /// alone (0700); folders that exist keep their mode.
    /// </summary>
    public static void CreatePrivateDir(string dir)
    {
        var full = Path.GetFullPath(dir);
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(full);
            return;
        }
        var missing = new Stack<string>();
        for (var d = full; !string.IsNullOrEmpty(d) && !Directory.Exists(d); d = Path.GetDirectoryName(d))
        {
            missing.Push(d);
        }
        while (missing.TryPop(out var d))
        {
            try
            {
                Directory.CreateDirectory(d, Private);
            }
            catch (IOException) when (Directory.Exists(d))
            {
                // another process created it meanwhile
            }
        }
    }

    /// <summary>The bytes of an entry file: magic, the payload's SHA-256, the payload.</summary>
    public static byte[] Seal(ReadOnlySpan<byte> payload)
    {
        var file = new byte[HeaderBytes + payload.Length];
        Magic.CopyTo(file);
        SHA256.HashData(payload, file.AsSpan(8, 32));
        payload.CopyTo(file.AsSpan(HeaderBytes));
        return file;
    }

    /// <summary>
    /// The payload of an entry file's bytes, or null when the magic or the content hash does not match.
    /// </summary>
    public static byte[]? Unseal(ReadOnlySpan<byte> file)
    {
        if (file.Length < HeaderBytes || !file[..8].SequenceEqual(Magic)) return null;
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(file[HeaderBytes..], hash);
        return hash.SequenceEqual(file.Slice(8, 32)) ? file[HeaderBytes..].ToArray() : null;
    }

    /// <summary>
    /// The payload of entry <paramref name="file"/>: null when it does not exist, cannot be read or is not a sealed
    /// entry (an older swc's), and null with a warning (the file deleted) when it does not match its content hash.
    /// </summary>
    public static byte[]? TryRead(string file, Action<string>? warn)
    {
        byte[] bytes;
        try
        {
            if (!File.Exists(file)) return null;
            bytes = File.ReadAllBytes(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            warn?.Invoke($"warning: cannot read the cache entry {file}: {e.Message}");
            return null;
        }
        var payload = Unseal(bytes);
        if (payload is not null) return payload;
        // an entry of an older swc (no seal) is a plain miss, rebuilt and overwritten without a word; a sealed entry
        // whose content no longer matches its hash was changed after it was written: say so
        if (bytes.Length < HeaderBytes || !bytes.AsSpan(0, 8).SequenceEqual(Magic)) return null;
        SealedFile.Damaged(file, warn);
        return null;
    }

    /// <summary>
    /// Writes a sealed entry through a temporary file and a rename; a failure is a warning (the cache is an
    /// optimisation).
    /// </summary>
    /// <remarks>
    /// Differs from the other atomic writes on purpose in two ways. Threads and processes race to write the same
    /// entry (the same key, so the same bytes): each writes its own temporary and renames it over the entry, and a
    /// rename that fails because another writer or a reader holds the file (Windows) is a warning, not an error, as
    /// is any other I/O failure. And the temporary is not flushed to disk: a power cut that tears an entry is caught
    /// by its content hash on the next read (<see cref="TryRead"/>) and costs one rebuild, so the flush would only
    /// slow down every compile that fills the cache.
    /// </remarks>
    public static void TryWrite(string file, byte[] payload, Action<string>? warn)
    {
        try
        {
            CreatePrivateDir(Path.GetDirectoryName(file)!);
            // AtomicFile deletes its temporary when the write or the rename fails
            AtomicFile.WriteBytes(file, Seal(payload), flushToDisk: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            warn?.Invoke($"warning: cannot write the cache entry {file}: {e.Message}");
        }
    }

    /// <summary>
    /// Deletes a file if it can (the cache is an optimisation: a file that stays is only a missed hit).
    /// </summary>
    public static void TryDelete(string file)
    {
        try
        {
            File.Delete(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // another process may hold or have replaced it
        }
    }
}
