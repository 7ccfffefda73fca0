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
        foreach (var arch in new[] { "compute_80", "compute_90" })
        {
            var compiled = CudaKernelCompiler.CompileAll(plan.Kernels, arch);
            Assert.Equal(plan.Kernels.Count, compiled.Count);
            foreach (var c in compiled)
            {
                foreach (var e in c.Kernel.Entries) Assert.Contains(".entry " + e, c.Output.Ptx, StringComparison.Ordinal);
                Assert.False(CudaKernelCompiler.UsesLocalMemory(c.Output.Ptx), $"{c.Kernel.Name} uses local memory for {arch}");
            }
        }
    }
}
