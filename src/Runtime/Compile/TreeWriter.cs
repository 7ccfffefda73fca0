using System.Diagnostics;
using ShiftWise.Frontend.IO;
using ShiftWise.IR;

namespace ShiftWise.Runtime.Compile;

/// <summary>
/// Folders written whole: built beside their place and swapped in (swc emit's tree, compile's kernels/ and ptx/).
/// </summary>
public static class TreeWriter
{
    /// <summary>
    /// Writes every file (paths relative to the tree, '/' separated) into a fresh folder beside
    /// <paramref name="outDir"/>, then swaps it in for <paramref name="outDir"/>: a failure or a kill leaves the
    /// previous tree as it was.
    /// </summary>
    public static void Replace(string outDir, IEnumerable<(string Path, byte[] Bytes)> files)
    {
        outDir = Path.GetFullPath(outDir);
        var parent = Path.GetDirectoryName(outDir) ?? throw new IrException($"{outDir} has no parent folder");
        Directory.CreateDirectory(parent);
        var name = Path.GetFileName(outDir);
        var tmp = Path.Combine(parent, $".{name}.tmp{Environment.ProcessId}");
        var old = Path.Combine(parent, $".{name}.old{Environment.ProcessId}");
        ClearDeadWriters(parent, name, outDir);
        try
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
            Directory.CreateDirectory(tmp);
            foreach (var f in files)
            {
                if (f.Path.Split('/').Any(p => p is "" or "." or ".."))
                {
                    throw new IrException($"file path '{f.Path}' is not a plain relative path");
                }
                var path = Path.Combine(tmp, f.Path.Replace('/', Path.DirectorySeparatorChar));
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                // no temporary and rename per file: the folder is new, and the swap below makes it appear at once; a
                // path listed twice fails here (the file exists) rather than the later bytes silently winning
                AtomicFile.WriteNew(path, s => s.Write(f.Bytes));
            }
            if (Directory.Exists(outDir)) Directory.Move(outDir, old);
            Directory.Move(tmp, outDir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (!Directory.Exists(outDir) && Directory.Exists(old)) Directory.Move(old, outDir);
            throw new IrException($"cannot write {outDir}: {e.Message}", e);
        }
        finally
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
            if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
        }
    }

    /// <summary>
    /// Removes what a writer killed midway left beside <paramref name="outDir"/> (its .NAME.tmpPID folder), and puts
    /// back the previous tree if that writer was killed between its two renames (.NAME.oldPID with no OUT). Folders of
    /// a process that is still running are left alone.
    /// </summary>
    private static void ClearDeadWriters(string parent, string name, string outDir)
    {
        foreach (var d in Directory.EnumerateDirectories(parent, $".{name}.*").Order(StringComparer.Ordinal).ToArray())
        {
            var m = System.Text.RegularExpressions.Regex.Match(Path.GetFileName(d), @"\.(tmp|old)([0-9]+)$");
            if (!m.Success || Path.GetFileName(d) != $".{name}.{m.Groups[1].Value}{m.Groups[2].Value}") continue;
            int pid = int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
            if (pid == Environment.ProcessId || Alive(pid)) continue;
            if (m.Groups[1].Value == "old" && !Directory.Exists(outDir)) Directory.Move(d, outDir);
            else Directory.Delete(d, recursive: true);
        }
    }

    private static bool Alive(int pid)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }
}
