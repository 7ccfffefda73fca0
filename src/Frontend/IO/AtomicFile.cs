namespace ShiftWise.Frontend.IO;

/// <summary>
/// Replaces a file all at once: the content goes to a temporary file in the same directory, which is then renamed
/// over the target. A crash or an exception mid-write therefore never leaves a half-written weights file behind
/// (a later compile would otherwise read garbage). Same directory, because a rename is only atomic within one file
/// system.
/// </summary>
public static class AtomicFile
{
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
                write(fs);
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
