using ShiftWise.CodegenCuda;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Reference;
using ShiftWise.Passes.Lowering;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Cpu;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Runtime.Reference;

namespace ShiftWise.Runtime.Tests;

/// <summary>
/// The target seam's contract, target by target: what the driver asks of every <see cref="ITarget"/> (CUDA's lowering
/// runs here without a GPU; binding it needs one, tests/Gpu).
/// </summary>
public class TargetSeamTests
{
    private static LoadedModel Layer() => Driver.Load("sw-layer",
        new ModelArgs { Channels = 16, Height = 12, Width = 12, Big = 7, Batch = 2, Seed = 3 });

    public static TheoryData<string> Tunable => ["cpu", "cuda"];

    [Theory]
    [MemberData(nameof(Tunable))]
    public void EveryTunedConfigurationIsLegalAndTheDefaultComesFirst(string name)
    {
        var tunables = Driver.Target(name).Tunables!;
        var m = Driver.Load("sw-tiny", new ModelArgs { ImageSize = 64 });
        var specs = SwLayerSpec.AllOf(Driver.Optimize(m.Graph, m.Weights, "inference").Graph).Values
            .DistinctBy(s => s.Name).ToList();
        Assert.Equal(4, specs.Count); // one per stage
        foreach (var spec in specs)
        {
            var values = tunables.ValuesOf(spec);
            var space = tunables.SearchSpace(spec);
            Assert.Equal(ISwTunables.Text(tunables.DefaultsOf(spec)), ISwTunables.Text(space[0]));
            Assert.Contains(space, c => c["lowering"] == 1); // both lowerings are searched
            Assert.Equal(space.Count, space.Select(ISwTunables.Text).Distinct().Count());
            foreach (var c in space)
            {
                Assert.Equal(values.Keys.Order(), c.Keys.Order());
                foreach (var (k, v) in c) Assert.True(values[k].Contains(v), $"{spec.Name}: {k} = {v} is not legal");
            }
        }
    }

    [Fact]
    public void TheReferenceTargetRunsTheGraphAsLoadedAndTheCpuTargetAgreesWithIt()
    {
        var m = Layer();
        using var reference = Driver.Compile(m, Driver.Target("reference"));
        Assert.Same(m.Graph, reference.Graph); // pipeline none: nothing rewritten
        Assert.IsType<ReferencePlan>(reference.Plan);
        Assert.Null(reference.Tuning);
        using var cpu = Driver.Compile(m, Driver.Target("cpu"));
        Assert.IsType<CpuPlan>(cpu.Plan);
        Assert.Single(cpu.Graph.Nodes, n => n.Op is IR.Ops.FusedShiftWise);
        var x = ModelSource.RandomInput(m.Graph.Inputs[0].Type, 9);
        var want = ReferenceExecutor.Run(m.Graph, m.Weights,
            new Dictionary<string, Tensor> { [m.Graph.Inputs[0].Name] = x })[m.Graph.Outputs[0]];
        Assert.Equal(want.ToDoubles(), reference.Run(x).ToDoubles());
        Assert.InRange(Error.RelL2(cpu.Run(x), want), 0, 1e-5);
    }

    [Fact]
    public void TheCpuLoweringChoosesEachNodesKernelBeforeBinding()
    {
        var m = Layer();
        var opt = Driver.Optimize(m.Graph, m.Weights, "inference");
        var plan = (CpuPlan)new CpuTarget().Lower(opt.Graph, opt.Weights, null);
        var sw = plan.Steps.Single(s => s.Node.Op is IR.Ops.FusedShiftWise);
        Assert.Equal(SwLayerKernel.Supported, sw.Sw is not null);
        var managed = (CpuPlan)new CpuTarget(Generated: false).Lower(opt.Graph, opt.Weights, null);
        Assert.All(managed.Steps, s => Assert.Null(s.Sw));
        Assert.Equal(plan.Steps.Select(s => s.Node.Name), managed.Steps.Select(s => s.Node.Name));
    }

    [Fact]
    public void TheCudaTargetLowersWithoutAGpuWhenGivenAnArch()
    {
        var m = Layer();
        var opt = Driver.Optimize(m.Graph, m.Weights, "inference");
        var plan = (CudaTargetPlan)new CudaTarget(Arch: "sm_90").Lower(opt.Graph, opt.Weights, null);
        Assert.Equal("sm_90", plan.Plan.Arch);
        Assert.Contains(plan.Plan.Kernels, k => k.Name.StartsWith("sw_cross_", StringComparison.Ordinal));
        Assert.Equal($"{plan.Plan.Kernels.Count} kernels, {plan.Plan.Steps.Count} steps", plan.Summary);
    }

    [Fact]
    public void OnlyTheTargetsThatTuneHaveATuner()
    {
        Assert.NotNull(Driver.Target("cpu").Tuner(1, false, null, null));
        Assert.NotNull(Driver.Target("cuda").Tuner(1, false, null, null));
        Assert.Null(Driver.Target("reference").Tuner(1, false, null, null));
        Assert.Null(Driver.Target("reference").Tunables);
        Assert.Throws<IrException>(() => Driver.Target("tpu"));
    }
}
