using static ShiftWise.Cli.Tests.SwcRun;

namespace ShiftWise.Cli.Tests;

/// <summary>
/// swc run with the optimised-graph cache (issue 24, deliver 5), in processes of their own as a user runs it: the
/// first run of a checkpoint stores the pipeline's result, the second reads it and writes the same output bits, and
/// SWC_GRAPH_CACHE=0 runs the pipeline without reading or writing an entry, to the same bits.
/// </summary>
public sealed class GraphCacheCliTests
{
    private static readonly string[] Opts =
        ["--in-chans", "1", "--depths", "1,1,1,1", "--dims", "8,16,16,32", "--kernel-size", "7,5,5,3,3", "--image-size",
            "24"];

    private static byte[] RunOnce(string cache, string dir, string name, Dictionary<string, string> env, bool hit)
    {
        var y = Path.Combine(dir, name);
        var weights = Path.Combine(AppContext.BaseDirectory, "Fixtures", "good.pth");
        using var p = Start(cache, env, ["run", "sw-v2", .. Opts, "--weights", weights, "--output", y]);
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, output + err.Result);
        Assert.DoesNotContain("warning", err.Result, StringComparison.Ordinal);
        Assert.Equal(hit, output.Contains("optimised graph from the cache", StringComparison.Ordinal));
        return File.ReadAllBytes(y);
    }

    [Fact]
    public void A_warm_run_reads_the_stored_graph_and_writes_the_same_bits()
    {
        var dir = Directory.CreateTempSubdirectory("swc-graph-cache-").FullName;
        try
        {
            var cache = Path.Combine(dir, "cache");
            var entries = () => Directory.Exists(Path.Combine(cache, "graph"))
                ? Directory.GetFiles(Path.Combine(cache, "graph"), "*.swgc") : [];
            var off = RunOnce(cache, dir, "off.npy", new() { ["SWC_GRAPH_CACHE"] = "0" }, hit: false);
            Assert.Empty(entries());
            var cold = RunOnce(cache, dir, "cold.npy", [], hit: false);
            var entry = Assert.Single(entries());
            var warm = RunOnce(cache, dir, "warm.npy", [], hit: true);
            Assert.Equal(entry, Assert.Single(entries()));
            Assert.Equal(cold, warm);
            Assert.Equal(off, cold);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
