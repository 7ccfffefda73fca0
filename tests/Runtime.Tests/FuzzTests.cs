using System.Text;
using ShiftWise.CodegenCuda.Standalone;
using ShiftWise.IR;
using ShiftWise.Runtime.Train;
using ShiftWise.Runtime.Tune;
using ShiftWise.Tests.Shared;

namespace ShiftWise.Runtime.Tests;

/// <summary>
/// Mutation fuzzing (tests/Shared/Fuzz.cs) of the readers of the runtime: training configurations, the tuning cache,
/// weights.bin of emitted models and the kernel-cache entries. Each mutant is read or refused with the project's own
/// exception; a cache never throws (it warns and drops what it cannot trust).
/// </summary>
public sealed class FuzzTests(ITestOutputHelper output)
{
    private void Check(FuzzReport r, bool mustReject = true)
    {
        output.WriteLine(r.ToString());
        Assert.True(r.Faults.Count == 0, r.ToString());
        Assert.True(r.Tried == r.Requested, $"{r.Reader}: {r.Tried} of {r.Requested} inputs tried before the safety cap");
        if (mustReject) Assert.True(r.Rejected > 0, $"{r.Reader}: no mutant was rejected, so the fuzzer did not reach the checks");
    }

    private static string Repo(params string[] parts)
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "samples", "fashion-mnist.json"))) return Path.Combine([d.FullName, .. parts]);
        }
        throw new InvalidOperationException("the repository root (samples/fashion-mnist.json) was not found above the test assembly");
    }

    [Fact]
    public void Training_configurations()
    {
        var sample = File.ReadAllBytes(Repo("samples", "fashion-mnist.json"));
        var small = Encoding.UTF8.GetBytes("""
            { "model": { "preset": "sw-fmnist", "dims": [8, 16, 16, 32], "depths": [1, 1, 1, 1] },
              "data": { "dir": "/nonexistent", "erase": 0.25 },
              "train": { "epochs": 1, "batch": 4, "lr": 1e-3, "accumulate": 2, "optimizer": "sgd", "momentum": 0.9 } }
            """);
        Check(Fuzz.Run("train config (JSON)", [sample, small], b => TrainConfig.Parse(Encoding.UTF8.GetString(b), "fuzz.json"), text: true));
    }

    [Fact]
    public void Tuning_cache_files()
    {
        var file = Path.Combine(Directory.CreateTempSubdirectory("swc-fuzz-tune-").FullName, "cpu-fuzz.json");
        var c = TuningCache.Load(file);
        for (int i = 0; i < 3; i++)
        {
            var key = new TuneKey("spec" + i, "device", "cc", "driver", "compiler", "codegen");
            var cfg = new Dictionary<string, int> { ["lowering"] = 0, ["row_block"] = 2 + i };
            c.Put(new TuneEntry(key, "sw_kernel", cfg, 1.5, cfg, 2.0, [cfg],
                [new TuneTime(cfg, 2.0), new TuneTime(new Dictionary<string, int> { ["lowering"] = 1 }, null, "stopped early")]));
        }
        c.Save();
        var seed = File.ReadAllBytes(file);
        var probe = Path.Combine(Path.GetDirectoryName(file)!, "probe.json");
        int dropped = 0;
        var r = Fuzz.Run("tuning cache (JSON)", [seed], b =>
        {
            File.WriteAllBytes(probe, b);
            var warnings = new List<string>();
            var loaded = TuningCache.Load(probe, warnings.Add);
            if (warnings.Count > 0) dropped++;
            Assert.All(warnings, w => Assert.StartsWith("warning: ", w));
        }, text: true, count: 800);
        Check(r, mustReject: false);  // the cache never throws: it warns and drops
        Assert.True(dropped > r.Tried / 2, $"only {dropped} of {r.Tried} mutants were noticed");
    }

    [Fact]
    public void Weights_bin_of_emitted_models()
    {
        var (rows, floats) = WeightsBin.Layout([("a.weight", 6), ("b", 3), ("node.sw_band_h", 70)]);
        var id = WeightsBin.ModelId("{}", rows);
        var seed = WeightsBin.Write(rows, floats, id, r => Enumerable.Range(0, (int)r.Floats).Select(i => (float)i).ToArray());
        Check(Fuzz.Run("weights.bin", [seed], b => WeightsBin.Read(b, "fuzz.bin")));
    }

    [Fact]
    public void Kernel_cache_entries()
    {
        var payload = Encoding.UTF8.GetBytes(".version 8.0\n.target sm_80\n.visible .entry probe() { ret; }\n");
        var seed = SwcCache.Seal(payload);
        int taken = 0;
        var r = Fuzz.Run("kernel cache entry", [seed], b =>
        {
            if (SwcCache.Unseal(b) is { } got)
            {
                Assert.Equal(payload, got);  // an entry is taken only when it is exactly what was sealed
                taken++;
            }
        }, count: 1500);
        Check(r, mustReject: false);
        Assert.True(taken < r.Tried / 10, $"{taken} of {r.Tried} mutants were taken");
    }
}
