using ShiftWise.CodegenCuda;
using ShiftWise.Frontend;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Runtime.Tune;
using static ShiftWise.Tests.TunedKernels;

namespace ShiftWise.Gpu.Tests;

/// <summary>
/// swc compile --target cuda (the compile driver, as the command calls it) reads GPU 0's tuning cache when GPU 0 is
/// the arch compiled for: entries with configurations the cost model would not pick decide the kernels it writes,
/// and another arch gets the defaults. The cache is this test's own (tests/Shared/IsolatedCache.cs).
/// </summary>
public sealed class TunedCompileGpuTests
{
    private static readonly ModelArgs Small = new()
    {
        Depths = [1, 1, 1, 1], Dims = [8, 16, 16, 32], KernelSize = [7, 5, 5, 3, 3], ImageSize = 24, NumClasses = 5,
    };

    private static (CompileResult Result, string Dir) Compile(string arch)
    {
        var dir = Directory.CreateTempSubdirectory("swc-tuned-gpu-").FullName;
        return (CompileDriver.Run(new CompileRequest("sw-v2", Small, "inference", dir) { Target = "cuda", Arch = arch }), dir);
    }

    [Fact]
    public void CompileForCudaWritesTheKernelsOfThisGpusCacheEntries()
    {
        if (!CudaDevice.Available) Assert.Skip(CudaDevice.MissingReason!);
        var arch = CudaDevice.Info.Arch;
        var (r, plain) = Compile(arch);
        var (defaults, g) = Compiled(plain);
        AssertSameKernels(Expected(g, new CudaOptions(arch)), defaults);
        Assert.StartsWith("tuning: none of 4 SW kernels tuned on this GPU", r.Cuda!.Tuning, StringComparison.Ordinal);

        var sw = SwNodes(g);
        Assert.Equal(4, sw.Length);
        var chosen = PutOtherConfigurations(TuningCache.Load(CudaTuner.CacheFile), sw, CudaDevice.Info.MaxSharedPerBlock,
            CudaTuner.KeyFor);
        var (r2, tunedDir) = Compile(arch);
        var (tuned, _) = Compiled(tunedDir);
        AssertSameKernels(Expected(g, new CudaOptions(arch) { Tunables = chosen }), tuned);
        AssertTheConfigurationsShow(tuned, sw, chosen);
        Assert.StartsWith("tuning: 4 of 4 SW kernels tuned", r2.Cuda!.Tuning, StringComparison.Ordinal);

        // compiled for another arch than GPU 0's, the same cache does not apply
        var other = arch == "sm_90" ? "sm_80" : "sm_90";
        var (_, otherDir) = Compile(other);
        AssertSameKernels(Expected(g, new CudaOptions(other)), Compiled(otherDir).Kernels);
    }
}
