using System.Globalization;
using System.Text;

namespace ShiftWise.IR;

/// <summary>
/// Replaces a file all at once: the content goes to a temporary file in the same directory, which is then renamed
/// over the target. A crash or an exception mid-write therefore never leaves a half-written weights file behind
/// (a later compile would otherwise read garbage). Same directory, because a rename is only atomic within one file
/// system. This is the project's one file writer of that kind: weights, checkpoints, compile outputs, the tuning
/// cache and the kernel cache entries all go through it, and <see cref="WriteNew"/> is the step a folder swap
/// (TreeWriter) uses for the files of the folder it swaps in.
/// </summary>
public static class AtomicFile
{
    /// <summary>The fault-injection hook's variable (see <see cref="WriteContent"/>).</summary>
    private const string PauseVariable = "SWC_TEST_PAUSE_WRITE";

    /// <summary>Long enough for the test to see the pause and kill; bounded, so that an orphan still ends.</summary>
    private static readonly TimeSpan TestPause = TimeSpan.FromMinutes(10);

    // File.WriteAllText's encoding: UTF-8 without a byte-order mark.
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    private static int _writesOfPausedName;

    /// <summary>
    /// Runs <paramref name="write"/> against a temporary file and moves it to <paramref name="path"/>. The temporary is
    /// flushed to disk before the rename unless <paramref name="flushToDisk"/> is false, which is only for files whose
    /// reader checks what it reads, so that a lost or torn file costs a rebuild, not data (the kernel cache's sealed
    /// entries, see SwcCache.TryWrite).
    /// </summary>
    public static void Write(string path, Action<Stream> write, bool flushToDisk = true)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? throw new IOException($"{path} has no parent directory");
        // A dot prefix hides the temporary from casual listings; the random part lets two writers of the same file,
        // threads or processes, coexist: each renames its own complete file, and the last rename wins.
        string tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            Create(tmp, full, write, flushToDisk);
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            TryDelete(tmp);
            throw;
        }
    }

    /// <summary>Writes <paramref name="bytes"/> as the whole content of <paramref name="path"/>, atomically.</summary>
    public static void WriteBytes(string path, byte[] bytes, bool flushToDisk = true) =>
        Write(path, s => s.Write(bytes), flushToDisk);

    /// <summary>Writes <paramref name="text"/> as UTF-8 without a byte-order mark, atomically.</summary>
    public static void WriteText(string path, string text) => WriteBytes(path, Utf8.GetBytes(text));

    /// <summary>
    /// Creates <paramref name="path"/>, which must not exist yet (an IOException if it does), runs
    /// <paramref name="write"/> on it and flushes it to disk. No rename: this is the first half of
    /// <see cref="Write"/>, and the whole of writing a file into a staging folder that is swapped in afterwards
    /// (TreeWriter), where the folder swap is what makes the files appear at once.
    /// </summary>
    public static void WriteNew(string path, Action<Stream> write) =>
        Create(path, Path.GetFullPath(path), write, flushToDisk: true);

    /// <summary>
    /// Creates <paramref name="file"/> and writes it; <paramref name="target"/> is the name the test hook matches
    /// (the file the caller means, not its temporary).
    /// </summary>
    private static void Create(string file, string target, Action<Stream> write, bool flushToDisk)
    {
        using var fs = new FileStream(file, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16);
        WriteContent(fs, target, write);
        // Flush to disk before the rename, or a power cut could leave the new name pointing at empty data.
        if (flushToDisk) fs.Flush(flushToDisk: true);
    }

    /// <summary>
    /// Fault-injection hook for tests/Cli.Tests/KillResumeTests.cs, which must kill swc while a checkpoint is half
    /// written, deterministically rather than by a lucky race: with SWC_TEST_PAUSE_WRITE="NAME:N" the N-th write of a
    /// file named NAME in this process puts the first half of its bytes in the temporary file (flushed), says so on
    /// stderr and sleeps <see cref="TestPause"/> before writing the rest. The bytes, the flush and the rename are
    /// those of every other write, so the file written is the same; with the variable unset (everywhere but that
    /// test) the content is written straight through.
    /// </summary>
    private static void WriteContent(FileStream fs, string full, Action<Stream> write)
    {
        if (Environment.GetEnvironmentVariable(PauseVariable) is not { Length: > 0 } spec || !PausesHere(spec, full))
        {
            write(fs);
            return;
        }
        using var buffer = new MemoryStream();
        write(buffer);
        var bytes = buffer.GetBuffer().AsSpan(0, (int)buffer.Length);
        int half = bytes.Length / 2;
        fs.Write(bytes[..half]);
        fs.Flush();
        Console.Error.WriteLine($"{PauseVariable}: {fs.Name}: {half} of {bytes.Length} bytes written, pausing");
        Thread.Sleep(TestPause);
        fs.Write(bytes[half..]);
    }

    private static bool PausesHere(string spec, string full)
    {
        int colon = spec.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(spec.AsSpan(colon + 1), CultureInfo.InvariantCulture, out int n) || n < 1)
        {
            throw new ArgumentException($"{PauseVariable}='{spec}' is not NAME:N (N >= 1)");
        }
        return spec[..colon] == Path.GetFileName(full) && Interlocked.Increment(ref _writesOfPausedName) == n;
    }

    private static void TryDelete(string tmp)
    {
        try
        {
            File.Delete(tmp);
        }
        catch (IOException)
        {
            // Best effort: the original error matters more than a leftover temporary.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
