using ShiftWise.CodegenCuda;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes;
using ShiftWise.Runtime.Cuda;

namespace ShiftWise.CudaEmu;

/// <summary>The nodes the inference pipeline leaves in a real model lower to kernels that NVRTC compiles.</summary>
public sealed class CudaModelNodeTests
{
    /// <summary>One-node graphs for every node of <paramref name="g"/> but fused_shiftwise.</summary>
    public static IEnumerable<Graph> NodeGraphs(Graph g)
    {
        var types = g.ValueTypes();
        var paramNames = g.Params.Select(p => p.Name).ToHashSet();
        foreach (var n in g.Nodes.Where(n => n.Op is not FusedShiftWise))
        {
            var b = new GraphBuilder("node_" + n.Name.Replace('.', '_'));
            var vals = n.Inputs.Distinct().ToDictionary(i => i, i => paramNames.Contains(i) ? b.Param(i, types[i]) : b.Input(i, types[i]));
            b.Output(b.Apply(n.Op, n.Name, n.Inputs.Select(i => vals[i]).ToArray()));
            yield return b.Build();
        }
    }

    [Fact]
    public void EveryNodeOfSwTinyButTheSwLayersLowersAndCompiles()
    {
        var m = ShiftWiseV2.Build(ShiftWiseV2Options.Preset("sw-tiny")! with { Batch = 2 });
        var ctx = new PassContext(m.Graph, WeightInit.Draw(m, InitScheme.Lively, 3));
        new PassManager(Pipelines.Get("inference")).Run(ctx);
        var ops = ctx.Graph.Nodes.Where(n => n.Op is not FusedShiftWise).Select(n => n.Op.Name).ToHashSet();
        Assert.Superset(new HashSet<string> { "conv2d", "layer_norm", "gelu", "mean", "gemm", "mul", "reshape" }, ops);
        var kernels = new SortedDictionary<string, CudaKernelSource>(StringComparer.Ordinal);
        foreach (var one in NodeGraphs(ctx.Graph))
        {
            var plan = CudaCodegen.Lower(one);
            foreach (var k in plan.Kernels) kernels[k.Name] = k;
        }
        Assert.NotEmpty(kernels);
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
        foreach (var k in kernels.Values)
        {
            var ptx = NvrtcCompiler.Compile(k.Source, k.FileName, "compute_90").Ptx;
            Assert.DoesNotContain(".local", ptx);
        }
    }
}
