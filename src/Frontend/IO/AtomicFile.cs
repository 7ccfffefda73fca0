using System.Globalization;

namespace ShiftWise.Frontend.IO;

/// <summary>
/// Replaces a file all at once: the content goes to a temporary file in the same directory, which is then renamed
/// over the target. A crash or an exception mid-write therefore never leaves a half-written weights file behind
/// (a later compile would otherwise read garbage). Same directory, because a rename is only atomic within one file
/// system.
/// </summary>
public static class AtomicFile
{
    /// <summary>The fault-injection hook's variable (see <see cref="WriteContent"/>).</summary>
    private const string PauseVariable = "SWC_TEST_PAUSE_WRITE";

    /// <summary>Long enough for the test to see the pause and kill; bounded, so that an orphan still ends.</summary>
    private static readonly TimeSpan TestPause = TimeSpan.FromMinutes(10);

    private static int _writesOfPausedName;

    /// <summary>
    /// Runs <paramref name="write"/> against a temporary file and moves it to <paramref name="path"/>.
    /// </summary>
    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? throw new IOException($"{path} has no parent directory");
        // A dot prefix hides the temporary from casual listings; the random part lets two writers coexist.
        string tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                WriteContent(fs, full, write);
                // Flush to disk before the rename, or a power cut could leave the new name pointing at empty data.
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            TryDelete(tmp);
            throw;
        }
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
