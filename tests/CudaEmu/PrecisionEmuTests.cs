using ShiftWise.CodegenCuda;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// Whole models under --precision bf16 / fp16 (issue 22) on the CUDA target: sw-tiny's 16-bit plan compiled by NVRTC
/// for compute_80 and compute_90, and small ShiftWise_v2 nets run end to end in the emulator against float64.
/// </summary>
public sealed class PrecisionEmuTests
{
    public static TheoryData<Precision> Sixteen() => new(Precision.Bf16, Precision.Fp16);

    private static (Graph Graph, Dictionary<string, Tensor> Weights, LoadedModel Source) Compiled(string model,
        ModelArgs args, Precision p)
    {
        var src = ModelSource.Load(model, args, withWeights: true);
        var ctx = new PassContext(src.Graph, src.Weights);
        new PassManager(Pipelines.Get("inference", p)).Run(ctx);
        return (ctx.Graph, ctx.Weights, src);
    }

    /// <summary>
    /// Every kernel of sw-tiny's bf16 / fp16 plan is a 16-bit variant (the casts at the edges included) and compiles
    /// with NVRTC for compute_80 and compute_90 without local memory.
    /// </summary>
    [Theory]
    [MemberData(nameof(Sixteen))]
    public void EveryKernelOfSwTinyIn16BitsCompilesForCompute80And90(Precision p)
    {
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
        var (g, _, _) = Compiled("sw-tiny", new ModelArgs(), p);
        var plan = CudaCodegen.Lower(g);
        var type = "swc_" + Types16.Name(p.Storage());
        Assert.Equal(27, plan.Steps.OfType<KernelLaunch>().Count(l => plan.Kernel(l.Kernel).Kind == "fused_shiftwise"));
        Assert.All(plan.Kernels, k => Assert.Contains(type + "*", k.Source, StringComparison.Ordinal));
        Assert.All(plan.Steps.OfType<GemmCall>(), c => Assert.Equal(p.Storage(), c.Storage));
        CudaCompileTests.CompilesForCompute80And90(plan);
    }

    public static TheoryData<Precision, int> SmallNets() => new()
    {
        { Precision.Bf16, 0 }, { Precision.Bf16, 1 }, { Precision.Fp16, 0 }, { Precision.Fp16, 1 },
    };

    /// <summary>
    /// A small ShiftWise_v2 (every stage, stem and downsamples, SE, GRN, head; odd image size, batch 2) in bf16 and
    /// fp16, both SW lowerings, every kernel and GEMM in the emulator, float32 in and out: against the float64
    /// reference of the float32 graph, and against the reference executor on the same 16-bit graph (which rounds
    /// only where the graph stores: what the kernels add is float32 arithmetic and a second rounding where a GEMM's
    /// 16-bit output feeds its epilogue or bias kernel). In units of u (2⁻⁸, 2⁻¹¹), measured with the dense convs as
    /// implicit GEMMs (the default), stage 0's GRN apply folded into pwconv2 (gemm_grn_fold: 7×7 positions ≥ 8
    /// channels) and the cross's bands rounded to 16 bits at bind time: factorised 6.67u (bf16) and 4.10u (fp16) against
    /// float64, bound 10u, 1.82u and 2.91u against the 16-bit graph's reference, bound 5u; cross 6.08u and 3.16u, and
    /// 1.96u and 1.87u. One conv alone on this net's
    /// activations is closer with the implicit GEMM than with im2col + GEMM (0.42–0.47u against 0.59–0.70u in fp16):
    /// the 14 logits' error is one draw of how roundings propagate.
    /// </summary>
    [Theory]
    [MemberData(nameof(SmallNets))]
    public void ASmallShiftWiseV2RunsEndToEndIn16Bits(Precision p, int lowering)
    {
        TestKernels.RequireEmulator();
        var args = new ModelArgs
        {
            Depths = [1, 1, 1, 1], Dims = [8, 16, 16, 32], KernelSize = [7, 5, 5, 3, 3], ImageSize = 29, NumClasses = 7,
            Batch = 2, Seed = 3,
        };
        var (g, w, src) = Compiled("sw-v2", args, p);
        var tunables = g.Nodes.Where(n => n.Op is FusedShiftWise).ToDictionary(n => n.Name,
            n => (IReadOnlyDictionary<string, int>)new Dictionary<string, int> { ["lowering"] = lowering });
        var plan = CudaCodegen.Lower(g, new CudaOptions { Tunables = tunables });
        Assert.Contains(plan.Steps, s => s is GemmCall { Storage: not DType.F32 });
        var inputs = SwLayers.Input(src.Graph, 11);
        var o = g.Outputs[0];
        var got = EmuPlanRunner.Run(plan, g, w, inputs)[o];
        Assert.Equal(DType.F32, got.DType);
        var want = IR.Reference.ReferenceExecutor.Run(src.Graph, src.Weights, inputs)[o].ToDoubles();
        var stored = IR.Reference.ReferenceExecutor.Run(g, w, inputs)[o].ToDoubles();
        double u = p == Precision.Bf16 ? Math.Pow(2, -8) : Math.Pow(2, -11);
        double err = IR.Analysis.Error.RelL2(got.ToDoubles(), want), vsStored = IR.Analysis.Error.RelL2(got.ToDoubles(), stored);
        TestContext.Current.TestOutputHelper?.WriteLine($"{p.Name()} lowering {lowering}: against float64 {err / u:F2}u, "
            + $"against the 16-bit graph's reference {vsStored / u:F2}u");
        Assert.True(err <= 10 * u, $"{p.Name()}: logits relative L2 {err:E2} = {err / u:F2}u against float64");
        Assert.True(vsStored <= 5 * u, $"{p.Name()}: {vsStored / u:F2}u against the 16-bit graph's reference");
    }
}
