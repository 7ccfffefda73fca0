using System.IO.Compression;
using ShiftWise.IR;

namespace ShiftWise.Frontend.IO;

/// <summary>
/// NumPy's .npz (what <c>np.savez</c> writes): a zip archive of one NAME.npy entry per array, stored uncompressed,
/// through .NET's ZipArchive. Written atomically; <c>np.load</c> reads it back as a dict of the names.
/// </summary>
public static class Npz
{
    /// <summary>Writes <paramref name="arrays"/> (name → tensor, in order) to <paramref name="path"/>.</summary>
    public static void Write(string path, IEnumerable<(string Name, Tensor Tensor)> arrays)
    {
        var list = arrays.ToList();
        foreach (var (name, _) in list)
        {
            if (name.Length == 0 || name.IndexOfAny(['/', '\\']) >= 0 || name.StartsWith('.'))
            {
                throw new NpyException(path, $"'{name}' cannot name an .npz entry");
            }
        }
        try
        {
            AtomicFile.Write(path, fs =>
            {
                using var zip = new ZipArchive(fs, ZipArchiveMode.Create, leaveOpen: true);
                foreach (var (name, t) in list)
                {
                    using var e = zip.CreateEntry(name + ".npy", CompressionLevel.NoCompression).Open();
                    Npy.Write(e, t);
                }
            });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new NpyException(path, $"cannot write: {e.Message}", e);
        }
    }

    /// <summary>Reads every array of an .npz file, by entry name without ".npy".</summary>
    public static Dictionary<string, Tensor> Read(string path)
    {
        using var zip = ZipFile.OpenRead(path);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var e in zip.Entries)
        {
            if (!e.FullName.EndsWith(".npy", StringComparison.Ordinal)) continue;
            using var s = e.Open();
            result[e.FullName[..^4]] = Npy.Read(s, $"{path}:{e.FullName}");
        }
        return result;
    }
}
