namespace ShiftWise.Runtime;

/// <summary>
/// The one cache directory of the project ($SWC_CACHE_DIR, default ~/.cache/swc) and its atomic writes: compiled C#
/// kernels (cpu/), NVRTC output (cuda/), and what later issues add. Entries are keyed by content hashes that include
/// the compiler's version, so a stale entry is never read.
/// </summary>
public static class SwcCache
{
    /// <summary>The root directory.</summary>
    public static string Root => Environment.GetEnvironmentVariable("SWC_CACHE_DIR") is { Length: > 0 } d
        ? d
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "swc");

    /// <summary>The directory of one kind of entry.</summary>
    public static string Dir(string kind) => Path.Combine(Root, kind);

    /// <summary>Writes through a temporary file and a rename; a failure is a warning (the cache is an optimisation).</summary>
    public static void TryWrite(string file, byte[] bytes, Action<string>? warn)
    {
        var tmp = file + $".tmp{Environment.ProcessId}.{Environment.CurrentManagedThreadId}";
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            File.WriteAllBytes(tmp, bytes);
            File.Move(tmp, file, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            warn?.Invoke($"warning: cannot write the cache entry {file}: {e.Message}");
            try
            {
                File.Delete(tmp);
            }
            catch (Exception e2) when (e2 is IOException or UnauthorizedAccessException)
            {
                // nothing more to do: the temporary file is named after this process and thread
            }
        }
    }
}
