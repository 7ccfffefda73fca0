using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// 16-bit dense convolutions as im2col + a tensor-core GEMM (issue 22: the stem and downsample convs; tunable gemm = 1,
/// the alternative to the default implicit GEMM of ConvIgemmEmuTests), in the
/// emulator against the float64 reference on the same 16-bit values: the unfolded input is an exact copy, the GEMM
/// sums in float32 (the emulator's cuBLAS in double) and rounds C once (u), the bias kernel rounds again (u): relative
/// L2 at most 2u + 1e-5 with a bias, u + 1e-5 without (1e-5: float32 accumulation of up to 1000 terms).
/// </summary>
public sealed class Conv16GemmEmuTests
{
    public static TheoryData<string, string> Cases() =>
        Emu16.ByType(["stem", "stem2", "down2x2", "odd_dilated", "pointwise", "long"]);

    private static (Conv2d Op, int[] X, int[] W, bool Bias) Case(string c) => c switch
    {
        // sw-tiny's stem (3 -> 40, 3x3 stride 2) and its downsamples (3x3 stride 2), small
        "stem" => (new Conv2d(Vec.Of(2, 2), Vec.Of(1, 1), Vec.Of(1, 1), 1), [2, 3, 17, 17], [8, 3, 3, 3], true),
        "stem2" => (new Conv2d(Vec.Of(2, 2), Vec.Of(1, 1), Vec.Of(1, 1), 1), [2, 8, 9, 9], [16, 8, 3, 3], true),
        "down2x2" => (new Conv2d(Vec.Of(2, 2), Vec.Of(0, 0), Vec.Of(1, 1), 1), [1, 12, 8, 8], [24, 12, 2, 2], true),
        "odd_dilated" => (new Conv2d(Vec.Of(1, 2), Vec.Of(2, 1), Vec.Of(2, 1), 1), [1, 5, 11, 13], [7, 5, 3, 3],
            false),
        "pointwise" => (new Conv2d(Vec.Of(1, 1), Vec.Of(0, 0), Vec.Of(1, 1), 1), [2, 24, 5, 5], [40, 24, 1, 1], true),
        "long" => (new Conv2d(Vec.Of(1, 1), Vec.Of(2, 2), Vec.Of(1, 1), 1), [1, 40, 9, 9], [8, 40, 5, 5], true),
        _ => throw new ArgumentException(c),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void ADenseConvAsIm2colAndGemmMatchesTheReference(string type, string label)
    {
        TestKernels.RequireEmulator();
        var dt = type == "bf16" ? DType.BF16 : DType.F16;
        var (op, x, w, bias) = Case(label);
        var b = new GraphBuilder("conv_gemm_" + label);
        var xs = b.Input("x", TensorType.Of(dt, x));
        var ws = b.Param("w", TensorType.Of(dt, w));
        var ins = bias ? new[] { xs, ws, b.Param("b", TensorType.Of(dt, w[0])) } : new[] { xs, ws };
        b.Output(b.Apply(op, "y", ins));
        var g = b.Build();
        // gemm = 1 (the alternative to the default implicit GEMM, ConvIgemmEmuTests)
        var plan = CudaCodegen.Lower(g, OneNodeEmu.Tunables(g, new() { ["gemm"] = 1 }));
        var gemm = Assert.Single(plan.Steps.OfType<GemmCall>());
        Assert.Equal(dt, gemm.Storage);
        Assert.Contains(plan.Kernels, k => k.Kind == "im2col");
        var rng = new Random(label.Length * 7 + (int)dt);
        Tensor Rand(TensorType t) => Tensor.FromDoubles(t, Enumerable.Range(0, (int)t.Shape.Elements)
            .Select(_ => rng.NextDouble() * 2 - 1).ToArray());
        var inputs = new Dictionary<string, Tensor> { ["x"] = Rand(g.Inputs[0].Type) };
        var weights = g.Params.ToDictionary(p => p.Name, p => Rand(p.Type));
        var got = EmuPlanRunner.Run(plan, g, weights, inputs)[g.Outputs[0]].ToDoubles();
        // the reference on the same (16-bit) values in float64
        var g64 = g with
        {
            Inputs = g.Inputs.Select(d => d with { Type = d.Type with { DType = DType.F64 } }).ToArray(),
            Params = g.Params.Select(d => d with { Type = d.Type with { DType = DType.F64 } }).ToArray(),
            Nodes = g.Nodes.Select(n => n with { Types = n.Types.Select(t => t with { DType = DType.F64 }).ToArray() })
                .ToArray(),
        };
        var want = IR.Reference.ReferenceExecutor.Run(g64, weights, inputs)[g.Outputs[0]].ToDoubles();
        double u = Emu16.Unit(dt), err = IR.Analysis.Error.RelL2(got, want);
        double bound = (bias ? 2 : 1) * u + 1e-5;
        Assert.True(err <= bound, $"{type} {label}: relative L2 {err:E2} > {bound:E2}");
        Assert.True(err > 0, "no rounding at all: the output was not stored in 16 bits");
    }

    [Fact]
    public void Float32AndDepthwiseConvsKeepTheDirectKernel()
    {
        foreach (var (dt, groups, w1) in new[] { (DType.F32, 1, 4), (DType.BF16, 4, 1) })
        {
            var b = new GraphBuilder("direct");
            var xs = b.Input("x", TensorType.Of(dt, 1, 4, 6, 6));
            var ws = b.Param("w", TensorType.Of(dt, 4, w1, 3, 3));
            b.Output(b.Apply(new Conv2d(Vec.Of(1, 1), Vec.Of(1, 1), Vec.Of(1, 1), groups), "y", [xs, ws]));
            var plan = CudaCodegen.Lower(b.Build());
            Assert.DoesNotContain(plan.Steps, s => s is GemmCall);
            Assert.Contains(plan.Kernels, k => k.Kind == "conv2d");
        }
    }
}
