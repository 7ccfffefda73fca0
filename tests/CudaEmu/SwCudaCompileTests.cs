using ShiftWise.CodegenCuda;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>The SW kernels of the test matrix, both lowerings, compiled by the real NVRTC for compute_80 and compute_90.</summary>
public sealed class SwCudaCompileTests
{
    public static TheoryData<int, int> Cases() => new(Enumerable.Range(0, 12).SelectMany(s => new[] { (s, 0), (s, 1) }));

    [Theory]
    [MemberData(nameof(Cases))]
    public void SwKernelsCompileWithoutLocalMemory(int seed, int lowering)
    {
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
        var (g, _) = SwLayers.Layer(seed);
        var node = g.Nodes[0];
        var opts = new CudaOptions
        {
            Tunables = new Dictionary<string, IReadOnlyDictionary<string, int>> { [node.Name] = new Dictionary<string, int> { ["lowering"] = lowering } },
        };
        var plan = CudaCodegen.Lower(g, opts);
        var k = Assert.Single(plan.Kernels);
        Assert.StartsWith(lowering == 0 ? "sw_cross_" : "sw_fact_", k.Name, StringComparison.Ordinal);
        foreach (var arch in new[] { "compute_80", "compute_90" })
        {
            var ptx = NvrtcCompiler.Compile(k.Source, k.FileName, arch).Ptx;
            Assert.Contains(".entry " + k.Name, ptx, StringComparison.Ordinal);
            Assert.DoesNotContain(".local", ptx, StringComparison.Ordinal);
        }
    }
}
