using ShiftWise.CodegenCuda;
using ShiftWise.Frontend;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Reference;
using ShiftWise.Passes;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Runtime.Train;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// Mixed-precision training on the CUDA target (issue 22) in the emulator: the GPU trainer's plan for the grad
/// fixtures' model in bf16 and fp16 (float32 master weights, batch norm and loss; 16-bit activations and their
/// gradients), every kernel and GEMM of the forward and backward step run by the emulator, against the reference
/// executor on the same mixed graph (which rounds only where the graph stores, in float64 arithmetic).
/// </summary>
public sealed class MixedTrainEmuTests
{
    /// <summary>
    /// fp16 only in CI: it has everything bf16 has (the same templates in the other 16-bit type, each checked in bf16
    /// by Grad16, Norm16, Gemm16 and Conv16EmuTests, and bf16's whole inference in PrecisionEmuTests) plus the loss
    /// scale's seed; a whole step compiles ~150 kernels in the emulator, three minutes per type on CI's two cores.
    /// SWC_EMU_BF16_STEP=1 adds bf16 (measured: see the bounds).
    /// </summary>
    public static TheoryData<Precision> Sixteen() => Environment.GetEnvironmentVariable("SWC_EMU_BF16_STEP") == "1"
        ? new(Precision.Bf16, Precision.Fp16)
        : new(Precision.Fp16);

    private static LoadedModel Model() => ModelSource.Load("sw-v2", new ModelArgs
    {
        InChans = 3, NumClasses = 5, Depths = [1, 1, 1, 1], Dims = [8, 12, 16, 16], KernelSize = [7, 5, 5, 3, 3],
        Batch = 4, ImageSize = 24, Seed = 3, Training = new TrainingForm(0.1, DropPath: false),
    }, withWeights: true);

    /// <summary>
    /// Against the reference of the same mixed graph the kernels differ by float32 arithmetic (against float64) and
    /// by a second rounding where a GEMM's 16-bit output feeds its epilogue; gradients amplify that as they do storage
    /// rounding (the SE branch's weight gradients, sums that mostly cancel, most). Measured on this net (bf16 / fp16):
    /// loss 0.66u / 0.47u (bound 4u), running statistics 1.30u / 1.67u (3u), all gradients together 14.9u / 18.1u
    /// (36u), the worst one 46u / 47u (128u). A kernel computing the wrong thing would be off by O(1): 256u (bf16),
    /// 2048u (fp16).
    /// </summary>
    [Theory]
    [MemberData(nameof(Sixteen))]
    public void AMixedPrecisionStepMatchesTheReferenceOfItsGraph(Precision p)
    {
        TestKernels.RequireEmulator();
        var m = Model();
        var plan = CudaTrainingPlan.Build(m, new OptimizerSettings("adamw", 1e-3, 0.05), "sm_90", precision: p);
        Assert.Equal(p == Precision.Fp16, plan.Unscale is not null);
        var types = plan.Graph.ValueTypes();
        var rng = new Random(4);
        var x = Tensor.FromDoubles(types[plan.Roles.Input], Enumerable.Range(0, (int)types[plan.Roles.Input].Shape.Elements)
            .Select(_ => rng.NextDouble() * 2 - 1).ToArray());
        var inputs = new Dictionary<string, Tensor>
        {
            [plan.Roles.Input] = x,
            [plan.Roles.Labels] = Tensor.FromDoubles(types[plan.Roles.Labels], [1, 4, 0, 2]),
        };
        if (plan.Roles.Step is { } s) inputs[s] = Tensor.FromDoubles(types[s], [0]);
        // fp16 at a loss scale of 2^8 (the reference and the kernels see the same scaled graph)
        if (p == Precision.Fp16)
        {
            inputs[MixedPrecision.ScaleInput] = Tensor.FromDoubles(types[MixedPrecision.ScaleInput], [256]);
        }
        var got = EmuPlanRunner.Run(plan.Plan, plan.Graph, plan.Weights, inputs);
        var want = ReferenceExecutor.Run(plan.Graph, plan.Weights, inputs);
        // the float32 training graph says which gradients are analytically zero (under 1e-4 of the median norm: see
        // MixedPrecisionTests); on both sides here they are rounding noise, left out
        var f32 = CudaTrainingPlan.Build(m, new OptimizerSettings("adamw", 1e-3, 0.05), "sm_90");
        var exact = ReferenceExecutor.Run(f32.Graph, f32.Weights, inputs.Where(kv => kv.Key != MixedPrecision.ScaleInput)
            .ToDictionary(kv => kv.Key, kv => kv.Value));
        var norms = plan.Gradients.ToDictionary(g => g.Grad, g => Math.Sqrt(exact[g.Grad].ToDoubles().Sum(v => v * v)));
        double median = norms.Values.Order().ElementAt(norms.Count / 2);
        var live = plan.Gradients.Where(g => norms[g.Grad] >= 1e-4 * median).Select(g => g.Grad).ToArray();
        double u = p == Precision.Bf16 ? Math.Pow(2, -8) : Math.Pow(2, -11);
        double loss = Math.Abs(got[plan.Roles.Loss].ToDoubles()[0] - want[plan.Roles.Loss].ToDoubles()[0])
            / Math.Abs(want[plan.Roles.Loss].ToDoubles()[0]);
        var errs = live.Select(g => (g, Error.RelL2(got[g].ToDoubles(), want[g].ToDoubles())))
            .OrderByDescending(e => e.Item2).ToArray();
        double all = Error.RelL2(live.SelectMany(g => got[g].ToDoubles()).ToArray(),
            live.SelectMany(g => want[g].ToDoubles()).ToArray());
        var running = plan.Running.Select(r => Error.RelL2(got[r.Value].ToDoubles(), want[r.Value].ToDoubles())).Max();
        TestContext.Current.TestOutputHelper?.WriteLine($"{p.Name()}: loss {loss / u:F2}u, running statistics "
            + $"{running / u:F2}u, gradients together {all / u:F2}u, worst {errs[0].g} {errs[0].Item2 / u:F2}u "
            + $"({plan.Gradients.Count - live.Length} analytically zero left out)");
        Assert.All(plan.Gradients, g => Assert.Equal(DType.F32, types[g.Grad].DType));
        Assert.All(plan.Gradients.Select(g => g.Grad), g => Assert.All(got[g].ToDoubles(), v => Assert.True(double.IsFinite(v))));
        Assert.True(loss <= 4 * u, $"loss {loss / u:F2}u");
        Assert.True(running <= 3 * u, $"running statistics {running / u:F2}u");
        Assert.True(all <= 36 * u, $"gradients together {all / u:F2}u");
        Assert.True(errs[0].Item2 <= 128 * u, $"worst gradient {errs[0].g}: {errs[0].Item2 / u:F2}u");
    }
}
