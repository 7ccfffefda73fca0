using System.Diagnostics;
using ShiftWise.Runtime.Tune;

namespace ShiftWise.Cli.Tests;

/// <summary>swc tune: the table, the cache it writes, its use by bench and run, and concurrent tuning processes.</summary>
public sealed class TuneTests
{
    private static readonly string[] Layer = ["sw-layer", "--channels", "8", "--height", "12", "--width", "12", "--batch", "2"];

    private static Process Start(string cacheDir, params string[] args) => SwcRun.Start(cacheDir, args);

    private static (int Code, string Out, string Err) Finish(Process p)
    {
        var err = p.StandardError.ReadToEndAsync();
        string o = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(300_000), "swc did not finish in 5 minutes");
        return (p.ExitCode, o, err.Result);
    }

    private static (int Code, string Out, string Err) Swc(string cacheDir, params string[] args)
    {
        using var p = Start(cacheDir, args);
        return Finish(p);
    }

    private static string TempDir() => Directory.CreateTempSubdirectory("swc-tune-").FullName;

    [Fact]
    public void TuneWritesTheCacheAndBenchAndRunThenSayTheyUseIt()
    {
        var dir = TempDir();
        var (code, o, e) = Swc(dir, ["tune", .. Layer, "--big", "7", "--budget", "20"]);
        Assert.True(code == 0, e);
        Assert.Contains("default ms", o);
        Assert.Matches(@"sw_fused_b7k3g4_c\d+_h12w12_[0-9a-f]{8}", o);
        Assert.Contains("1 kernels; cache written to", o);
        var file = Assert.Single(Directory.GetFiles(Path.Combine(dir, "tune"), "*.json"));
        var entry = Assert.Single(TuningCache.Load(file, w => Assert.Fail(w)).Entries);
        // what the search decided, as recorded: one row per candidate, the default first; the pick is the default or
        // the fastest measured candidate; a kept default has one time for both; a taken winner beat the default's
        // confirmed time by 2%; with the default fastest no confirmation ran, so its time is its search median
        static string Cfg(IReadOnlyDictionary<string, int> c) =>
            string.Join(",", c.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={kv.Value}"));
        Assert.Equal(entry.Candidates.Select(Cfg), entry.Times.Select(t => Cfg(t.Config)));
        Assert.Equal(Cfg(entry.Candidates[0]), Cfg(entry.Default));
        var fastest = entry.Times.Where(t => t.Ms is not null).MinBy(t => t.Ms!.Value)!;
        if (Cfg(entry.Best) == Cfg(entry.Default))
        {
            Assert.Equal(entry.DefaultMs, entry.BestMs);
        }
        else
        {
            Assert.Equal(Cfg(fastest.Config), Cfg(entry.Best));
            Assert.True(entry.BestMs <= 0.98 * entry.DefaultMs,
                $"picked at {entry.BestMs} ms, default {entry.DefaultMs} ms");
        }
        if (ReferenceEquals(fastest, entry.Times[0]))
        {
            Assert.Equal(Cfg(entry.Default), Cfg(entry.Best));
            Assert.Equal(entry.Times[0].Ms, entry.DefaultMs);
        }

        (code, o, e) = Swc(dir, ["bench", .. Layer, "--big", "7", "--seconds", "0.2"]);
        Assert.True(code == 0, e);
        Assert.Contains("tuning: 1 of 1 SW kernels tuned", o);
        (code, o, e) = Swc(dir, ["bench", .. Layer, "--big", "7", "--seconds", "0.2", "--untuned"]);
        Assert.True(code == 0, e);
        Assert.Contains("tuning: off", o);
        (code, o, e) = Swc(dir, ["run", .. Layer, "--big", "9"]);
        Assert.True(code == 0, e);
        Assert.Contains("none of 1 SW kernels tuned on this CPU", o);

        // tuning again reads the cache; a corrupt cache is ignored with a warning and rewritten
        (code, o, _) = Swc(dir, ["tune", .. Layer, "--big", "7", "--budget", "20"]);
        Assert.Equal(0, code);
        Assert.Contains(" cache", o.Split('\n').Single(l => l.StartsWith("sw_fused", StringComparison.Ordinal)));
        File.WriteAllText(file, "{ truncated");
        (code, o, e) = Swc(dir, ["tune", .. Layer, "--big", "7", "--budget", "5"]);
        Assert.True(code == 0, e);
        Assert.Contains("warning: ignoring the tuning cache", e);
        Assert.Single(TuningCache.Load(file, w => Assert.Fail(w)).Entries);
    }

    [Fact]
    public void TwoProcessesTuningAtOnceLeaveAValidCacheWithBothEntries()
    {
        var dir = TempDir();
        using var a = Start(dir, ["tune", .. Layer, "--big", "7", "--budget", "10"]);
        using var b = Start(dir, ["tune", .. Layer, "--big", "11", "--budget", "10"]);
        var ra = Finish(a);
        var rb = Finish(b);
        Assert.True(ra.Code == 0, ra.Err);
        Assert.True(rb.Code == 0, rb.Err);
        var files = Directory.GetFiles(Path.Combine(dir, "tune"), "*.json");
        var file = Assert.Single(files);
        var cache = TuningCache.Load(file, w => Assert.Fail(w));
        Assert.Equal(2, cache.Entries.Count);
        Assert.Contains(cache.Entries, x => x.Kernel.StartsWith("sw_fused_b7k3", StringComparison.Ordinal));
        Assert.Contains(cache.Entries, x => x.Kernel.StartsWith("sw_fused_b11k3", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("--device", "tpu", "is not available; swc tune tunes: cpu, cuda")]
    [InlineData("--budget", "0", "must be > 0")]
    [InlineData("--budget", "soon", "--budget")]
    public void BadOptionsAreNamed(string option, string value, string message)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = SwcApp.Run(["tune", .. Layer, option, value], o, e);
        Assert.NotEqual(0, code);
        Assert.Contains(message, e.ToString());
    }

    [Fact]
    public void CudaWithoutAGpuSaysWhyInOneSentence()
    {
        if (Runtime.Cuda.CudaDevice.Available) Assert.Skip("a GPU is present: this test checks the message swc tune gives without one");
        var e = new StringWriter();
        Assert.NotEqual(0, SwcApp.Run(["tune", .. Layer, "--device", "cuda"], new StringWriter(), e));
        Assert.Contains(Runtime.Cuda.CudaDevice.MissingReason!, e.ToString());
    }
}
