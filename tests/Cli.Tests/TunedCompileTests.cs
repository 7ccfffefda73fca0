using ShiftWise.CodegenCuda;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes.Lowering;
using ShiftWise.Runtime;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Cpu;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Runtime.Tune;
using static ShiftWise.Cli.Tests.SwcRun;

namespace ShiftWise.Cli.Tests;

/// <summary>
/// Tuning-cache entries with configurations the cost model would not pick, written where swc looks for them
/// ($SWC_CACHE_DIR/tune), decide the kernels: the one the CPU executor binds for run and bench, and the CUDA sources
/// swc compile --target cuda writes when GPU 0 is the arch compiled for. Without an entry (or without that GPU) the
/// defaults are written. Each test points its own cache root (async-local) at a new folder.
/// </summary>
public sealed class TunedCompileTests
{
    /// <summary>Makes a new empty folder this test's cache root (SwcCache.UseRoot: this test only) until disposed.</summary>
    private sealed class CacheDir : IDisposable
    {
        private readonly IDisposable _scope;

        public CacheDir()
        {
            Folder = Directory.CreateTempSubdirectory("swc-tuned-").FullName;
            _scope = SwcCache.UseRoot(Folder);
        }

        public string Folder { get; }

        public void Dispose() => _scope.Dispose();
    }

    private static TuneEntry Entry(TuneKey key, SwLayerSpec spec, IReadOnlyDictionary<string, int> def,
        IReadOnlyDictionary<string, int> best) =>
        new(key, spec.Spec.Name, best, 1.0, def, 2.0, [def, best], [new TuneTime(def, 2.0), new TuneTime(best, 1.0)]);

    private static string Out() => Directory.CreateTempSubdirectory("swc-tuned-out-").FullName;

    [Fact]
    public void RunBindsTheKernelOfThisCpusCacheEntry()
    {
        if (!SwLayerKernel.Supported) Assert.Skip("no AVX2 and FMA: SW layers run on managed kernels without tunables");
        using var dir = new CacheDir();
        var args = new ModelArgs { Channels = 8, Height = 12, Width = 12, Big = 7, Batch = 2 };
        var m = ModelSource.Load("sw-layer", args, withWeights: true);
        var before = CompiledModel.ForCpu(m, tuning: CpuTuning.FromCache(w => Assert.Fail(w)));
        var node = before.Graph.Nodes.Single(n => n.Op is FusedShiftWise);
        var spec = KernelLowering.Sw(node, before.Graph.ValueTypes()[node.Inputs[0]].Shape);
        // no cache file yet: the cost model's cross
        Assert.Equal("cross", Assert.IsType<SwLayerKernel>(before.Executor.KernelOf(node.Name)).Lowering);

        // the file swc tune writes for this CPU, as run, bench and demo read it (CpuTuning.FromCache)
        var cache = TuningCache.Load(CpuTuner.CacheFile);
        Assert.StartsWith(dir.Folder, cache.File, StringComparison.Ordinal);
        var best = new Dictionary<string, int>(spec.Spec.Defaults) { ["lowering"] = 1 };
        cache.Put(Entry(CpuTuner.KeyFor(spec), spec, spec.Spec.Defaults, best));
        cache.Save();
        var after = CompiledModel.ForCpu(m, tuning: CpuTuning.FromCache(w => Assert.Fail(w)));
        var k = Assert.IsType<SwLayerKernel>(after.Executor.KernelOf(node.Name));
        Assert.Equal("factorised", k.Lowering);
        Assert.Equal(CodegenCpu.CpuCodegen.SwFactorised(spec).Source, k.Source.Source);
    }

    /// <summary>The files under OUT/kernels by name, and the optimised graph compile wrote.</summary>
    private static (Dictionary<string, string> Kernels, Graph Graph) Compiled(string dir)
    {
        var kernels = Directory.GetFiles(Path.Combine(dir, "kernels"))
            .ToDictionary(f => Path.GetFileName(f), File.ReadAllText, StringComparer.Ordinal);
        return (kernels, ModelLoader.LoadGraph(Path.Combine(dir, "model.swir")));
    }

    private static Dictionary<string, string> Expected(Graph g, CudaOptions options) =>
        CudaCodegen.Lower(g, options).Kernels.ToDictionary(k => k.FileName, k => k.Source, StringComparer.Ordinal);

    private static void AssertSameKernels(Dictionary<string, string> expected, Dictionary<string, string> actual)
    {
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, src) in expected)
        {
            Assert.True(src == actual[name], $"kernels/{name} is not the expected source");
        }
    }

    private static (Node Node, SwLayerSpec Spec)[] SwNodes(Graph g)
    {
        var types = g.ValueTypes();
        return g.Nodes.Where(n => n.Op is FusedShiftWise)
            .Select(n => (n, KernelLowering.Sw(n, types[n.Inputs[0]].Shape))).ToArray();
    }

    /// <summary>
    /// Puts an entry for every SW spec into <paramref name="cache"/> (saved) under <paramref name="keyFor"/>'s keys: the
    /// first layer tuned to the factorised form, the others to a cross with another tile than the default's.
    /// </summary>
    private static Dictionary<string, IReadOnlyDictionary<string, int>> PutOtherConfigurations(TuningCache cache,
        (Node Node, SwLayerSpec Spec)[] sw, int maxShared, Func<SwLayerSpec, TuneKey> keyFor)
    {
        var chosen = new Dictionary<string, IReadOnlyDictionary<string, int>>(StringComparer.Ordinal);
        for (int i = 0; i < sw.Length; i++)
        {
            var spec = sw[i].Spec;
            var def = SwCudaTunables.Defaults(spec);
            Assert.Equal(0, def["lowering"]);
            var cands = SwCudaTunables.Candidates(spec, maxShared);
            var best = i == 0
                ? cands.First(c => c["lowering"] == 1)
                : cands.First(c => c["lowering"] == 0 && (c["tile_w"] != def["tile_w"] || c["tile_h"] != def["tile_h"]));
            chosen[sw[i].Node.Name] = best;
            cache.Put(Entry(keyFor(spec), spec, def, best));
        }
        cache.Save();
        return chosen;
    }

    /// <summary>What those configurations look like in the sources: the factorised kernel, and each cross kernel's tile.</summary>
    private static void AssertTheConfigurationsShow(Dictionary<string, string> kernels, (Node Node, SwLayerSpec Spec)[] sw,
        Dictionary<string, IReadOnlyDictionary<string, int>> chosen)
    {
        Assert.Contains(kernels.Keys, f => f.StartsWith("sw_fact_", StringComparison.Ordinal));
        foreach (var (node, spec) in sw.Skip(1))
        {
            var t = chosen[node.Name];
            var s = spec.Op.Shift;
            var shape = $"b{s.Big}k{s.Small}g{s.NRep}_c{spec.Input[1]}_h{spec.Input[2]}w{spec.Input[3]}";
            var src = kernels.Single(kv => kv.Key.StartsWith("sw_cross_" + shape, StringComparison.Ordinal)).Value;
            Assert.Contains($"Tile {t["tile_h"]}x{t["tile_w"]},", src);
        }
    }

    [Fact]
    public void CompileForCudaWritesTheKernelsOfThisGpusCacheEntries()
    {
        if (!CudaDevice.Available)
        {
            Assert.Skip($"no GPU: compile --target cuda keys the tuning cache by GPU 0 ({CudaDevice.MissingReason})");
        }
        using var dir = new CacheDir();
        var arch = CudaDevice.Info.Arch;
        var plain = Out();
        var (code, o, e) = Swc(["compile", .. SmallSwV2, "--target", "cuda", "--arch", arch, "--out", plain]);
        Assert.True(code == 0, e);
        var (defaults, g) = Compiled(plain);
        AssertSameKernels(Expected(g, new CudaOptions(arch)), defaults);
        Assert.Contains("none of 4 SW kernels tuned on this GPU", o);

        // the first SW layer tuned to the factorised form, the others to a cross with another tile
        var sw = SwNodes(g);
        Assert.Equal(4, sw.Length);
        var chosen = PutOtherConfigurations(TuningCache.Load(CudaTuner.CacheFile), sw, CudaDevice.Info.MaxSharedPerBlock, CudaTuner.KeyFor);
        var tunedDir = Out();
        (code, o, e) = Swc(["compile", .. SmallSwV2, "--target", "cuda", "--arch", arch, "--out", tunedDir]);
        Assert.True(code == 0, e);
        var (tuned, _) = Compiled(tunedDir);
        AssertSameKernels(Expected(g, new CudaOptions(arch) { Tunables = chosen }), tuned);
        AssertTheConfigurationsShow(tuned, sw, chosen);
        Assert.NotEqual(defaults.Keys.Order(StringComparer.Ordinal), tuned.Keys.Order(StringComparer.Ordinal));

        // compiled for another arch than GPU 0's, the same cache does not apply
        var other = arch == "sm_90" ? "sm_80" : "sm_90";
        var otherDir = Out();
        (code, _, e) = Swc(["compile", .. SmallSwV2, "--target", "cuda", "--arch", other, "--out", otherDir]);
        Assert.True(code == 0, e);
        AssertSameKernels(Expected(g, new CudaOptions(other)), Compiled(otherDir).Kernels);
    }

    /// <summary>
    /// The compile driver's CUDA path (what swc compile --target cuda runs) with a stand-in device's tuning: the same
    /// lookup GPU 0's cache gets, keyed by a device that is not here, so it runs without a GPU.
    /// </summary>
    [Fact]
    public void CompileForCudaWritesTheKernelsOfTheTuningItIsGiven()
    {
        using var dir = new CacheDir();
        var args = new ModelArgs
        {
            Depths = [1, 1, 1, 1], Dims = [8, 16, 16, 32], KernelSize = [7, 5, 5, 3, 3], ImageSize = 24, NumClasses = 5,
        };
        CompileResult Compile(string outDir, CudaTuning? tuning) => CompileDriver.Run(
            new CompileRequest("sw-v2", args, "inference", outDir) { Target = "cuda", Arch = "sm_90", CudaTuning = tuning });

        var plain = Out();
        Compile(plain, null);
        var (defaults, g) = Compiled(plain);
        AssertSameKernels(Expected(g, new CudaOptions("sm_90")), defaults);

        // a stand-in H100's entries: the first SW layer factorised, the others a cross with another tile
        const string device = "stand-in H100";
        TuneKey KeyFor(SwLayerSpec spec) => new(spec.Hash, device, "sm_90", "cuda driver 13000", "nvrtc 13.0", "codegen");
        var cache = TuningCache.Load(TuningCache.FileFor("cuda", device));
        var sw = SwNodes(g);
        Assert.Equal(4, sw.Length);
        var chosen = PutOtherConfigurations(cache, sw, 227 * 1024, KeyFor);

        var tunedDir = Out();
        var r = Compile(tunedDir, CudaTuning.From(TuningCache.Load(cache.File), KeyFor));
        var (tuned, _) = Compiled(tunedDir);
        AssertSameKernels(Expected(g, new CudaOptions("sm_90") { Tunables = chosen }), tuned);
        AssertTheConfigurationsShow(tuned, sw, chosen);
        Assert.StartsWith("tuning: 4 of 4 SW kernels tuned", r.Cuda!.Tuning, StringComparison.Ordinal);

        // another device's key finds none of these entries: the defaults again
        var otherDir = Out();
        Compile(otherDir, CudaTuning.From(TuningCache.Load(cache.File), spec => KeyFor(spec) with { Device = "another GPU" }));
        AssertSameKernels(defaults, Compiled(otherDir).Kernels);
    }

    [Fact]
    public void CompileForCudaWithoutAGpuWritesTheDefaultsWhateverTheCacheHolds()
    {
        if (CudaDevice.Available) Assert.Skip("a GPU is present: the test above covers its cache");
        using var dir = new CacheDir();
        var first = Out();
        var (code, _, e) = Swc(["compile", .. SmallSwV2, "--target", "cuda", "--arch", "sm_90", "--out", first]);
        Assert.True(code == 0, e);
        var (_, g) = Compiled(first);
        // entries for every SW spec, keyed as an H100 would key them: there is no GPU here to match them against
        var device = "NVIDIA H100 80GB HBM3";
        var cache = TuningCache.Load(TuningCache.FileFor("cuda", device));
        var cg = typeof(CudaCodegen).Assembly;
        foreach (var (_, spec) in SwNodes(g))
        {
            var def = SwCudaTunables.Defaults(spec);
            var key = new TuneKey(spec.Hash, device, "sm_90", "cuda driver 12040", "nvrtc 11.8",
                $"{cg.GetName().Version} {cg.ManifestModule.ModuleVersionId:N}");
            cache.Put(Entry(key, spec, def, new Dictionary<string, int>(def) { ["lowering"] = 1 }));
        }
        cache.Save();
        var second = Out();
        (code, var o, e) = Swc(["compile", .. SmallSwV2, "--target", "cuda", "--arch", "sm_90", "--out", second]);
        Assert.True(code == 0, e);
        Assert.Contains("tuning: cost-model defaults (no GPU of this arch here", o);
        var (kernels, _) = Compiled(second);
        AssertSameKernels(Expected(g, new CudaOptions("sm_90")), kernels);
        Assert.DoesNotContain(kernels.Keys, f => f.StartsWith("sw_fact_", StringComparison.Ordinal));
    }
}
