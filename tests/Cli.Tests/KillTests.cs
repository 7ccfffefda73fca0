using System.Diagnostics;
using System.Security.Cryptography;

namespace ShiftWise.Cli.Tests;

/// <summary>
/// A swc process killed while it writes what the user keeps leaves the previous version intact: the compiled weights
/// (a 110 MB safetensors file written through a temporary file and a rename) and an emitted tree (written beside the
/// old one and swapped in). Each test waits until the write is visibly under way (its temporary appears), then kills.
/// </summary>
public sealed class KillTests
{
    private static Process Start(string cacheDir, params string[] args)
    {
        var p = SwcRun.Start(cacheDir, args);
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    private static void RunToEnd(string cacheDir, params string[] args)
    {
        using var p = Start(cacheDir, args);
        Assert.True(p.WaitForExit(300_000), "swc did not finish in 5 minutes");
        Assert.Equal(0, p.ExitCode);
    }

    /// <summary>Starts swc, waits until <paramref name="writing"/> says the write is under way, and kills it.</summary>
    private static void KillWhile(string cacheDir, Func<bool> writing, params string[] args)
    {
        using var p = Start(cacheDir, args);
        var sw = Stopwatch.StartNew();
        while (!writing())
        {
            Assert.False(p.HasExited, $"swc exited (code {(p.HasExited ? p.ExitCode : 0)}) before the write was seen");
            Assert.True(sw.Elapsed < TimeSpan.FromMinutes(5), "the write never started");
            Thread.SpinWait(1000);
        }
        p.Kill(entireProcessTree: true);
        p.WaitForExit();
    }

    private static Dictionary<string, string> Hashes(string dir) =>
        Directory.GetFiles(dir, "*", SearchOption.AllDirectories).ToDictionary(f => Path.GetRelativePath(dir, f),
            f => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(f))), StringComparer.Ordinal);

    [Fact]
    public void Killed_while_writing_compiled_weights_the_previous_file_stays_whole()
    {
        var root = Directory.CreateTempSubdirectory("swc-kill-").FullName;
        var cache = Path.Combine(root, "cache");
        var outDir = Path.Combine(root, "out");
        RunToEnd(cache, "compile", "sw-tiny", "--out", outDir, "--seed", "1");
        var before = Hashes(outDir);
        Assert.True(new FileInfo(Path.Combine(outDir, "weights.safetensors")).Length > 50_000_000);
        KillWhile(cache, () => Directory.EnumerateFiles(outDir, ".weights.safetensors.*.tmp").Any(),
            "compile", "sw-tiny", "--out", outDir, "--seed", "2");
        var after = Hashes(outDir);
        // the kept files are exactly the previous ones; only the dead writer's temporary may remain beside them
        foreach (var (f, h) in before) Assert.True(after.TryGetValue(f, out var a) && a == h, $"{f} changed or vanished");
        Assert.All(after.Keys.Except(before.Keys), f => Assert.Matches(@"^\.weights\.safetensors\.[0-9a-f]{32}\.tmp$", Path.GetFileName(f)));
    }

    [Fact]
    public void Killed_while_emitting_the_previous_tree_stays_whole()
    {
        var root = Directory.CreateTempSubdirectory("swc-kill-").FullName;
        var cache = Path.Combine(root, "cache");
        var outDir = Path.Combine(root, "tree");
        RunToEnd(cache, "emit", "sw-tiny", "--out", outDir, "--seed", "1", "--arch", "sm_90");
        var before = Hashes(outDir);
        KillWhile(cache, () => Directory.EnumerateDirectories(root, ".tree.tmp*").Any(),
            "emit", "sw-tiny", "--out", outDir, "--seed", "2", "--arch", "sm_90");
        Assert.Equal(before, Hashes(outDir));
        Assert.Single(Directory.EnumerateDirectories(root, ".tree.tmp*"));
        // the next emit clears up what the killed one left
        RunToEnd(cache, "emit", "sw-tiny", "--out", outDir, "--seed", "2", "--arch", "sm_90");
        Assert.NotEqual(before["weights.bin"], Hashes(outDir)["weights.bin"]);
        Assert.Empty(Directory.EnumerateDirectories(root, ".tree.*"));
    }
}
