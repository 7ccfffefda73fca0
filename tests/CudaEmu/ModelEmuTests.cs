using ShiftWise.CodegenCuda;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.Passes;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// Whole compiled models through the CUDA plan in emulation (every emitted kernel run by the emulator, GEMM calls by
/// the emulator's reference GEMM) against the float64 reference executor on the unoptimised graph. Bound: relative L2
/// ≤ 1e-5 on the logits (float32 end to end).
/// </summary>
public sealed class ModelEmuTests
{
    public static TheoryData<string, int, int> Models() => new()
    {
        // small ShiftWise_v2 nets: every stage, stem and downsamples, SE, GRN, head; odd image size, batch 1 and 2
        { "1,1,1,1|8,16,16,32|7,5,5,3,3|24", 1, 0 },
        { "1,2,1,1|8,16,24,32|13,11,7,5,3|29", 2, 1 },
        { "1,1,1,1|8,16,16,32|9,7,7,5,5|20", 2, 0 },
    };

    [Theory]
    [MemberData(nameof(Models))]
    public void SmallShiftWiseV2MatchesTheReference(string config, int batch, int lowering)
    {
        if (!CudaEmulator.Available) Assert.Skip(CudaEmulator.MissingReason);
        var p = config.Split('|');
        var args = new ModelArgs
        {
            Depths = p[0].Split(',').Select(int.Parse).ToArray(),
            Dims = p[1].Split(',').Select(int.Parse).ToArray(),
            KernelSize = p[2].Split(',').Select(int.Parse).ToArray(),
            ImageSize = int.Parse(p[3]),
            NumClasses = 7,
            Batch = batch,
            Seed = 3,
        };
        var src = ModelSource.Load("sw-v2", args, withWeights: true);
        var ctx = new PassContext(src.Graph, src.Weights);
        new PassManager(Pipelines.Get("inference")).Run(ctx);
        var g = ctx.Graph;
        var tunables = g.Nodes.Where(n => n.Op is IR.Ops.FusedShiftWise).ToDictionary(n => n.Name,
            n => (IReadOnlyDictionary<string, int>)new Dictionary<string, int> { ["lowering"] = lowering });
        var plan = CudaCodegen.Lower(g, new CudaOptions { Tunables = tunables });
        Assert.Contains(plan.Steps, s => s is GemmCall);
        var log = new List<string>();
        var inputs = SwLayers.Input(src.Graph, 11);
        var got = EmuPlanRunner.Run(plan, g, ctx.Weights, inputs, log.Add)[g.Outputs[0]].ToDoubles();
        var want = IR.Reference.ReferenceExecutor.Run(src.Graph, src.Weights, inputs)[src.Graph.Outputs[0]].ToDoubles();
        double err = IR.Analysis.Error.RelL2(got, want);
        Assert.True(err <= 1e-5, $"logits relative L2 {err:E2}");
        Assert.Contains(log, l => l.Contains("emulated GEMM (reference, not cuBLAS)", StringComparison.Ordinal));
    }
}
