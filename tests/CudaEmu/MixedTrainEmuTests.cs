using ShiftWise.CodegenCuda;
using ShiftWise.Frontend;
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
    public static TheoryData<Precision> Sixteen() => new(Precision.Bf16, Precision.Fp16);

    [Theory]
    [MemberData(nameof(Sixteen))]
    public void AMixedPrecisionStepMatchesTheReferenceOfItsGraph(Precision p)
    {
        TestKernels.RequireEmulator();
        var m = GradFixtureModel.Load(0.1);
        var plan = CudaTrainingPlan.Build(m, new OptimizerSettings("adamw", 1e-3, 0.05), "sm_90", precision: p);
        Assert.Equal(p == Precision.Fp16, plan.Unscale is not null);
        var types = plan.Graph.ValueTypes();
        var labels = GradFixtureModel.LabelInts();
        var inputs = new Dictionary<string, Tensor>
        {
            [plan.Roles.Input] = GradFixtureModel.X(),
            [plan.Roles.Labels] = Tensor.FromDoubles(types[plan.Roles.Labels], labels.Select(v => (double)v).ToArray()),
        };
        if (plan.Roles.Step is { } s) inputs[s] = Tensor.FromDoubles(types[s], [0]);
        // fp16 at a loss scale of 2^8 (the reference and the kernels see the same scaled graph)
        double scale = p == Precision.Fp16 ? 256 : 1;
        if (p == Precision.Fp16)
        {
            inputs[MixedPrecision.ScaleInput] = Tensor.FromDoubles(types[MixedPrecision.ScaleInput], [scale]);
        }
        var got = EmuPlanRunner.Run(plan.Plan, plan.Graph, plan.Weights, inputs);
        var want = ReferenceExecutor.Run(plan.Graph, plan.Weights, inputs);
        double u = p == Precision.Bf16 ? Math.Pow(2, -8) : Math.Pow(2, -11);
        double loss = Math.Abs(got[plan.Roles.Loss].ToDoubles()[0] - want[plan.Roles.Loss].ToDoubles()[0])
            / Math.Abs(want[plan.Roles.Loss].ToDoubles()[0]);
        var norms = plan.Gradients.ToDictionary(g => g.Grad, g => Math.Sqrt(want[g.Grad].ToDoubles().Sum(v => v * v)));
        double median = norms.Values.Order().ElementAt(norms.Count / 2);
        // analytically zero gradients (see MixedPrecisionTests) are rounding noise on both sides: left out
        var live = plan.Gradients.Where(g => norms[g.Grad] >= 1e-4 * median).Select(g => g.Grad).ToArray();
        var errs = live.Select(g => (g, Error.RelL2(got[g].ToDoubles(), want[g].ToDoubles())))
            .OrderByDescending(e => e.Item2).ToArray();
        double all = Error.RelL2(live.SelectMany(g => got[g].ToDoubles()).ToArray(),
            live.SelectMany(g => want[g].ToDoubles()).ToArray());
        var running = plan.Running.Select(r => Error.RelL2(got[r.Value].ToDoubles(), want[r.Value].ToDoubles())).Max();
        TestContext.Current.TestOutputHelper?.WriteLine($"{p.Name()}: loss {loss / u:F2}u, running statistics "
            + $"{running / u:F2}u, gradients together {all / u:F2}u, worst {errs[0].g} {errs[0].Item2 / u:F2}u "
            + $"({plan.Gradients.Count - live.Length} analytically zero left out)");
        Assert.All(plan.Gradients, g => Assert.Equal(DType.F32, types[g.Grad].DType));
        Assert.True(loss <= 1 * u, $"loss {loss / u:F2}u");
        Assert.True(running <= 2 * u, $"running statistics {running / u:F2}u");
        Assert.True(all <= 8 * u, $"gradients together {all / u:F2}u");
        Assert.True(errs[0].Item2 <= 32 * u, $"worst gradient {errs[0].g}: {errs[0].Item2 / u:F2}u");
    }
}
