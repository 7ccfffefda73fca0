using ShiftWise.CodegenCpu;
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
using static ShiftWise.Tests.TunedKernels;

namespace ShiftWise.Cli.Tests;

/// <summary>
/// Tuning-cache entries with configurations the cost model would not pick, written where swc looks for them
/// ($SWC_CACHE_DIR/tune), decide the kernels: the one the CPU executor binds for run and bench, and the CUDA sources
/// swc compile --target cuda writes when GPU 0 is the arch compiled for. Without an entry (or without that GPU) the
/// defaults are written. Each test has its own empty cache root (tests/Shared/IsolatedCache.cs).
/// </summary>
public sealed class TunedCompileTests
{
    private static string Out() => Directory.CreateTempSubdirectory("swc-tuned-out-").FullName;

    [Fact]
    public void RunBindsTheKernelOfThisCpusCacheEntry()
    {
        if (!SwLayerKernel.Supported) Assert.Skip("no AVX2 and FMA: SW layers run on managed kernels without tunables");
        var args = new ModelArgs { Channels = 8, Height = 12, Width = 12, Big = 7, Batch = 2 };
        var m = ModelSource.Load("sw-layer", args, withWeights: true);
        var before = Driver.Compile(m, new CpuTarget(), new CompileOptions { Tuning = CpuTuning.FromCache(w => Assert.Fail(w)) });
        var node = before.Graph.Nodes.Single(n => n.Op is FusedShiftWise);
        var spec = SwLayerSpec.Of(node, before.Graph.ValueTypes()[node.Inputs[0]].Shape);
        // no cache file yet: the cost model's cross
        Assert.Equal("cross", Assert.IsType<SwLayerKernel>(before.Cpu.KernelOf(node.Name)).Lowering);

        // the file swc tune writes for this CPU, as run, bench and demo read it (CpuTuning.FromCache)
        var cache = TuningCache.Load(CpuTuner.CacheFile);
        Assert.StartsWith(SwcCache.Root, cache.File, StringComparison.Ordinal);
        var best = new Dictionary<string, int>(SwCpuTunables.Defaults(spec)) { ["lowering"] = 1 };
        cache.Put(Entry(CpuTuner.KeyFor(spec), spec, SwCpuTunables.Defaults(spec), best));
        cache.Save();
        var after = Driver.Compile(m, new CpuTarget(), new CompileOptions { Tuning = CpuTuning.FromCache(w => Assert.Fail(w)) });
        var k = Assert.IsType<SwLayerKernel>(after.Cpu.KernelOf(node.Name));
        Assert.Equal("factorised", k.Lowering);
        Assert.Equal(CodegenCpu.CpuCodegen.SwFactorised(spec).Source, k.Source.Source);
    }

    /// <summary>
    /// The compile driver's CUDA path (what swc compile --target cuda runs) with a stand-in device's tuning: the same
    /// lookup GPU 0's cache gets, keyed by a device that is not here, so it runs without a GPU.
    /// </summary>
    [Fact]
    public void CompileForCudaWritesTheKernelsOfTheTuningItIsGiven()
    {
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
        if (CudaDevice.Available) Assert.Skip("a GPU is present: tests/Gpu (TunedCompileGpuTests) checks compile with its cache there");
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
