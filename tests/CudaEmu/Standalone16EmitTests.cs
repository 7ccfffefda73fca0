using ShiftWise.CodegenCuda;
using ShiftWise.Frontend;
using ShiftWise.Frontend.IO;
using ShiftWise.IR;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// swc emit --precision bf16 / fp16 (issue 22): the standalone project of a small ShiftWise_v2 in 16 bits (16-bit
/// kernels, weights packed two to a slot in weights.bin, GEMMs as cublasGemmStridedBatchedEx), built with g++ against
/// the mock CUDA runtime and run on the CPU: float32 in and out, the plan's steps in order, the logits as the
/// emulator's run of the same plan gives them (both round the same 16-bit values; the mock's GEMM rounds its float32
/// result where the emulator rounds the exact sum once, so a tie may land one ulp apart: bound u), and within 10u of
/// the float64 reference (PrecisionEmuTests measures about 6.4u and 4.9u on this net).
/// </summary>
public sealed class Standalone16EmitTests
{
    [Theory]
    [InlineData(Precision.Bf16)]
    [InlineData(Precision.Fp16)]
    public void TheEmittedSixteenBitProgramRunsThroughTheMockAndMatchesTheEmulator(Precision p)
    {
        if (!CudaEmulator.Available) Assert.Skip(CudaEmulator.MissingReason);
        using var project = new EmittedProject(p);
        var plan = project.Result.Cuda.Plan;
        Assert.Contains(plan.Steps, s => s is GemmCall { Storage: not DType.F32 });
        var launcher = File.ReadAllText(Path.Combine(project.Tree, "src", "swc_model.cu"));
        Assert.Contains(p == Precision.Bf16 ? "CUDA_R_16BF" : "CUDA_R_16F", launcher);
        var src = ModelSource.Load("sw-v2", EmittedProject.Args(batch: 2), withWeights: true);
        var inputs = SwLayers.Input(src.Graph, 11);
        var inPath = Path.Combine(project.Root, "input.npy");
        var outPath = Path.Combine(project.Root, "logits.npy");
        var trace = Path.Combine(project.Root, "trace.txt");
        Npy.Write(inPath, inputs[src.Graph.Inputs[0].Name].Cast(DType.F32));
        var (code, output) = Tools.Run(project.MockExample, [Path.Combine(project.Tree, "weights.bin"), inPath, outPath],
            TimeSpan.FromMinutes(5), new Dictionary<string, string>
            {
                ["SWC_MOCK_TRACE"] = trace, ["SWC_MOCK_KERNELS"] = project.KernelList,
            });
        Assert.True(code == 0, $"the example failed (exit {code}):\n{output}");
        var got = Npy.Read(outPath);
        Assert.Equal(DType.F32, got.DType);
        Assert.Equal(plan.Steps.Count, File.ReadAllLines(trace).Length);
        // the same plan in the emulator: its 16-bit graph and weights as swc emit compiled them
        var ctx = new Passes.PassContext(src.Graph, src.Weights);
        new Passes.PassManager(Passes.Pipelines.Get("inference", p)).Run(ctx);
        var emu = EmuPlanRunner.Run(plan, ctx.Graph, ctx.Weights, inputs)[ctx.Graph.Outputs[0]].ToDoubles();
        double u = p == Precision.Bf16 ? Math.Pow(2, -8) : Math.Pow(2, -11);
        double vsEmu = IR.Analysis.Error.RelL2(got.ToDoubles(), emu);
        Assert.True(vsEmu <= u, $"{p.Name()}: {vsEmu / u:F2}u from the emulator's run of the plan");
        var want = IR.Reference.ReferenceExecutor.Run(src.Graph, src.Weights, inputs)[src.Graph.Outputs[0]].ToDoubles();
        double err = IR.Analysis.Error.RelL2(got.ToDoubles(), want);
        Assert.True(err <= 10 * u, $"{p.Name()}: {err / u:F2}u from the float64 reference");
    }
}
