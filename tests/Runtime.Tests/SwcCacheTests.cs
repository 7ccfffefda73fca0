using ShiftWise.Runtime.Cpu;

namespace ShiftWise.Runtime.Tests;

/// <summary>
/// The cache's entries carry their content hash; tampered entries are rebuilt; folders are private; writers race safely.
/// Some tests empty the process's in-memory kernel cache (ForgetLoaded), so the class runs alone.
/// </summary>
[Collection(ShiftWise.Tests.ProcessState.Name)]
public sealed class SwcCacheTests
{
    [Fact]
    public void A_sealed_entry_round_trips_and_any_changed_byte_is_caught()
    {
        var payload = new byte[1000];
        new Random(1).NextBytes(payload);
        var file = SwcCache.Seal(payload);
        Assert.Equal(payload, SwcCache.Unseal(file));
        for (int i = 0; i < file.Length; i += 37)
        {
            var bad = (byte[])file.Clone();
            bad[i] ^= 0x01;
            Assert.Null(SwcCache.Unseal(bad));
        }
        Assert.Null(SwcCache.Unseal(file.AsSpan(0, file.Length - 1)));
        Assert.Null(SwcCache.Unseal(payload));  // an unsealed file (an older cache) is not taken as an entry
    }

    [Fact]
    public void An_older_unsealed_entry_is_a_silent_miss_and_a_changed_sealed_one_a_warned_miss()
    {
        var dir = Directory.CreateTempSubdirectory("swc-seal-").FullName;
        var file = Path.Combine(dir, "entry.bin");
        var warnings = new List<string>();
        File.WriteAllBytes(file, [1, 2, 3, 4, 5]);
        Assert.Null(SwcCache.TryRead(file, warnings.Add));
        Assert.Empty(warnings);
        var sealedBytes = SwcCache.Seal([1, 2, 3, 4, 5]);
        sealedBytes[^1] ^= 1;
        File.WriteAllBytes(file, sealedBytes);
        Assert.Null(SwcCache.TryRead(file, warnings.Add));
        Assert.Contains("does not match its content hash", Assert.Single(warnings));
        Assert.False(File.Exists(file));
    }

    [Fact]
    public void A_tampered_compiled_assembly_is_discarded_with_a_warning_and_rebuilt()
    {
        var tag = Guid.NewGuid().ToString("N");
        var source = $"public static class Probe_{tag} {{ public static int Seven() => 7; }}";
        var type = $"Probe_{tag}";
        var warnings = new List<string>();
        Assert.Equal(7, RoslynCompiler.GetMethod(source, type, "Seven", out var first, warnings.Add).Invoke(null, null));
        Assert.Equal(CacheOutcome.Compiled, first);
        var file = Path.Combine(RoslynCompiler.CacheDir, RoslynCompiler.Key(source) + ".dll");
        var bytes = File.ReadAllBytes(file);
        Assert.True(SwcCache.Unseal(bytes) is not null, "the entry is sealed");
        // change one byte of the assembly (a string or an IL byte: the image may still load, which is the point)
        bytes[SwcCache.HeaderBytes + bytes.Length / 2 - SwcCache.HeaderBytes / 2] ^= 0x20;
        File.WriteAllBytes(file, bytes);
        RoslynCompiler.ForgetLoaded();
        Assert.Equal(7, RoslynCompiler.GetMethod(source, type, "Seven", out var second, warnings.Add).Invoke(null, null));
        Assert.Equal(CacheOutcome.Compiled, second);
        Assert.Contains(warnings, w => w.Contains("does not match its content hash", StringComparison.Ordinal) && w.Contains(file, StringComparison.Ordinal));
        Assert.NotNull(SwcCache.Unseal(File.ReadAllBytes(file)));  // rewritten whole
        RoslynCompiler.ForgetLoaded();
        RoslynCompiler.GetMethod(source, type, "Seven", out var third, warnings.Add);
        Assert.Equal(CacheOutcome.Disk, third);
    }

    [Fact]
    public void Cache_folders_are_created_private_to_the_user()
    {
        if (OperatingSystem.IsWindows())
        {
            Assert.Skip("Unix file modes");
            return;  // not reached (Skip throws); tells the platform analyzer the rest is Unix-only
        }
        var root = Directory.CreateTempSubdirectory("swc-private-").FullName;
        var dir = Path.Combine(root, "a", "b");
        SwcCache.CreatePrivateDir(dir);
        const UnixFileMode rwx = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        Assert.Equal(rwx, File.GetUnixFileMode(dir));
        Assert.Equal(rwx, File.GetUnixFileMode(Path.Combine(root, "a")));
        var under = Path.Combine(SwcCache.Root, "probe-" + Guid.NewGuid().ToString("N"), "x");
        try
        {
            SwcCache.CreatePrivateDir(under);
            Assert.Equal(rwx, File.GetUnixFileMode(under));
            Assert.Equal(rwx, File.GetUnixFileMode(Path.GetDirectoryName(under)!));
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(under)!, recursive: true);
        }
    }

    [Fact]
    public void Concurrent_writers_and_readers_never_see_a_partial_entry()
    {
        var dir = Directory.CreateTempSubdirectory("swc-race-").FullName;
        var file = Path.Combine(dir, "entry.bin");
        var payloads = Enumerable.Range(0, 4).Select(i => Enumerable.Repeat((byte)i, 200_000 + i).ToArray()).ToArray();
        var warnings = new System.Collections.Concurrent.ConcurrentBag<string>();
        // One entry exists before the race starts: on two busy cores Parallel.For may run every reader's
        // loop before the first writer's rename lands, and "reads > 0" then failed without any bug (CI, stop 30).
        // A rename replaces the entry atomically, so from here on every read must see some whole payload.
        SwcCache.TryWrite(file, payloads[0], warnings.Add);
        int reads = 0;
        Parallel.For(0, 8, t =>
        {
            for (int i = 0; i < 40; i++)
            {
                if (t % 2 == 0)
                {
                    SwcCache.TryWrite(file, payloads[(t / 2 + i) % 4], warnings.Add);
                }
                else if (SwcCache.TryRead(file, warnings.Add) is { } got)
                {
                    Assert.Contains(payloads, p => p.AsSpan().SequenceEqual(got));
                    Interlocked.Increment(ref reads);
                }
            }
        });
        Assert.Empty(warnings);
        Assert.True(reads > 0);
        Assert.Equal([file], Directory.GetFiles(dir));  // no temporary file left behind
    }
}
