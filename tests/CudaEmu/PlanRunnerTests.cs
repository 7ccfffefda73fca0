using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Ops;
using ShiftWise.Passes;
using static ShiftWise.CudaEmu.TestKernels;

namespace ShiftWise.CudaEmu;

/// <summary>Whole plans in emulation: hand-built plans (GEMM call plus kernel) against direct computation.</summary>
public sealed class PlanRunnerTests
{
    private static readonly CudaKernelSource Bias = Cu("emu_test_bias", """
        // y[r, c] += b[c] for a 4x5 (row-major) y
        extern "C" __global__ void __launch_bounds__(32) bias_add(float* __restrict__ y, const float* __restrict__ b)
        {
            const int i = blockIdx.x * blockDim.x + threadIdx.x;
            if (i >= 20) return;
            y[i] += b[i % 5];
        }

        // the same for a 4x3 y, writing one float past y
        extern "C" __global__ void bias_bad(float* __restrict__ y, const float* __restrict__ b)
        {
            const int i = threadIdx.x;
            if (i >= 12) return;
            y[i] += b[i % 3];
            if (i == 0) y[12] = 0.0f;
        }

        extern "C" __global__ void bias3(float* __restrict__ y, const float* __restrict__ b, float* __restrict__ tmp)
        {
            const int i = threadIdx.x;
            tmp[i] = 1.0f;  // tmp has 16 floats: threads 16..31 write past it
            if (i < 12) y[i] += b[i % 3];
        }
        """, "bias_add", "bias_bad", "bias3");

    private static TensorType F(params int[] dims) => TensorType.Of(DType.F32, dims);

    private static Tensor Rand(Shape s, int seed)
    {
        var r = new Random(seed);
        return Tensor.F32(s, Enumerable.Range(0, (int)s.Elements).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray());
    }

    // y[4,5] = x[4,6]·wᵀ + b as one gemm node
    private static (Graph G, Dictionary<string, Tensor> W, Dictionary<string, Tensor> In) Linear()
    {
        var b = new GraphBuilder("emu_linear");
        var x = b.Input("x", F(4, 6));
        var w = b.Param("w", F(5, 6));
        var bias = b.Param("b", F(5));
        b.Output(b.Apply1(Gemm.Plain(true), "y", x, w, bias));
        var weights = new Dictionary<string, Tensor> { ["w"] = Rand(new Shape(5, 6), 1), ["b"] = Rand(new Shape(5), 2) };
        return (b.Build(), weights, new Dictionary<string, Tensor> { ["x"] = Rand(new Shape(4, 6), 3) });
    }

    // row-major y = x·wᵀ in cuBLAS terms: yᵀ (5x4, ld 5) = op(w as 6x5 col-major, transposed) · (x as 6x4 col-major)
    private static GemmCall LinearGemm(string node, int rows, int outF, int inF, string a, string bArg, string c, float alpha = 1) =>
        new(node, TransA: true, TransB: false, M: outF, N: rows, K: inF,
            A: new ArgRef(ArgKind.Param, a), Lda: inF, StrideA: 0,
            B: new ArgRef(ArgKind.Value, bArg), Ldb: inF, StrideB: 0,
            C: new ArgRef(ArgKind.Value, c), Ldc: outF, StrideC: 0, Batch: 1, Alpha: alpha, Beta: 0);

    private static CudaPlan LinearPlan(Graph g, float alpha = 1) => new(g.Name, "sm_90", [Bias],
        [
            LinearGemm("y", 4, 5, 6, "w", "x", "y", alpha),
            new KernelLaunch("y", Bias.Name, "bias_add", new Dim3(1), new Dim3(32), 0,
                [new ArgRef(ArgKind.Value, "y"), new ArgRef(ArgKind.Param, "b")]),
        ], [], [], MemoryPlan.Of(g));

    [Fact]
    public void Hand_built_gemm_plus_kernel_plan_matches_direct_computation()
    {
        RequireEmulator();
        var (g, w, inputs) = Linear();
        var log = new List<string>();
        var outs = EmuPlanRunner.Run(LinearPlan(g), g, w, inputs, log.Add);
        var y = (float[])outs["y"].Data;
        Assert.Equal(new Shape(4, 5), outs["y"].Shape);
        var x = (float[])inputs["x"].Data;
        var wt = (float[])w["w"].Data;
        var bias = (float[])w["b"].Data;
        for (int r = 0; r < 4; r++)
        {
            for (int o = 0; o < 5; o++)
            {
                double s = bias[o];
                for (int k = 0; k < 6; k++) s += (double)x[r * 6 + k] * wt[o * 6 + k];
                Assert.Equal(s, y[r * 5 + o], 5);
            }
        }
        Assert.Contains(log, l => l.Contains("emulated GEMM (reference, not cuBLAS)", StringComparison.Ordinal));
        Assert.Contains(log, l => l.Contains("kernel emu_test_bias entry bias_add", StringComparison.Ordinal));
    }

    [Fact]
    public void ErrorVsReference_is_small_for_a_right_plan_and_large_for_a_wrong_one()
    {
        RequireEmulator();
        var (g, w, inputs) = Linear();
        Assert.InRange(EmuCheck.ErrorVsReference(LinearPlan(g), g, w, inputs), 0, 1e-6);
        Assert.True(EmuCheck.ErrorVsReference(LinearPlan(g, alpha: 2), g, w, inputs) > 0.1);
    }

    // h[4,5] = x·w1ᵀ, y[4,3] = h·w2ᵀ + b2: two arena values
    private static (Graph G, Dictionary<string, Tensor> W, Dictionary<string, Tensor> In) TwoLayers()
    {
        var b = new GraphBuilder("emu_two");
        var x = b.Input("x", F(4, 6));
        var w1 = b.Param("w1", F(5, 6));
        var w2 = b.Param("w2", F(3, 5));
        var b2 = b.Param("b2", F(3));
        var h = b.Apply1(Gemm.Plain(false), "h", x, w1);
        b.Output(b.Apply1(Gemm.Plain(true), "y", h, w2, b2));
        var weights = new Dictionary<string, Tensor>
        {
            ["w1"] = Rand(new Shape(5, 6), 4), ["w2"] = Rand(new Shape(3, 5), 5), ["b2"] = Rand(new Shape(3), 6),
        };
        return (b.Build(), weights, new Dictionary<string, Tensor> { ["x"] = Rand(new Shape(4, 6), 7) });
    }

    private static CudaPlan TwoLayerPlan(Graph g, string entry, IReadOnlyList<ArgRef> extraArgs, IReadOnlyList<ScratchBuffer> scratch) =>
        new(g.Name, "sm_90", [Bias],
        [
            LinearGemm("h", 4, 5, 6, "w1", "x", "h"),
            LinearGemm("y", 4, 3, 5, "w2", "h", "y"),
            new KernelLaunch("y", Bias.Name, entry, new Dim3(1), new Dim3(32), 0,
                [new ArgRef(ArgKind.Value, "y"), new ArgRef(ArgKind.Param, "b2"), .. extraArgs]),
        ], [], scratch, MemoryPlan.Of(g));

    [Fact]
    public void Two_layer_plan_with_scratch_matches_the_reference()
    {
        RequireEmulator();
        var (g, w, inputs) = TwoLayers();
        var plan = TwoLayerPlan(g, "bias3", [new ArgRef(ArgKind.Scratch, "y.tmp")], [new ScratchBuffer("y.tmp", 32)]);
        Assert.InRange(EmuCheck.ErrorVsReference(plan, g, w, inputs), 0, 1e-6);
    }

    [Fact]
    public void A_kernel_writing_outside_its_arguments_in_the_arena_fails_at_its_step()
    {
        RequireEmulator();
        var (g, w, inputs) = TwoLayers();
        var plan = TwoLayerPlan(g, "bias_bad", [], []);
        var e = Assert.Throws<EmuException>(() => EmuPlanRunner.Run(plan, g, w, inputs));
        Assert.Contains("step 2 (node %y, kernel emu_test_bias entry bias_bad)", e.Message, StringComparison.Ordinal);
        Assert.Contains("outside its arguments", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_kernel_writing_past_a_scratch_buffer_fails_at_its_step()
    {
        RequireEmulator();
        var (g, w, inputs) = TwoLayers();
        var plan = TwoLayerPlan(g, "bias3", [new ArgRef(ArgKind.Scratch, "y.tmp")], [new ScratchBuffer("y.tmp", 16)]);
        var e = Assert.Throws<EmuException>(() => EmuPlanRunner.Run(plan, g, w, inputs));
        Assert.Contains("step 2 (node %y, kernel emu_test_bias entry bias3): scratch y.tmp", e.Message, StringComparison.Ordinal);
        Assert.Contains("past the end", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_gemm_call_reaching_past_its_operand_fails_at_its_step()
    {
        var (g, w, inputs) = TwoLayers();
        var bad = LinearGemm("h", 4, 5, 6, "w1", "x", "h") with { N = 5 };  // x has 4 rows, not 5
        var plan = new CudaPlan(g.Name, "sm_90", [], [bad], [], [], MemoryPlan.Of(g));
        var e = Assert.Throws<EmuException>(() => EmuPlanRunner.Run(plan, g, w, inputs));
        Assert.Contains("step 0 (node %h, GEMM)", e.Message, StringComparison.Ordinal);
        Assert.Contains("B (6x5, ld 6", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_inputs_and_wrong_shapes_are_named()
    {
        var (g, w, _) = Linear();
        var plan = LinearPlan(g);
        Assert.Contains("no value given for input 'x'",
            Assert.Throws<EmuException>(() => EmuPlanRunner.Run(plan, g, w, new Dictionary<string, Tensor>())).Message,
            StringComparison.Ordinal);
        var wrong = new Dictionary<string, Tensor> { ["x"] = Rand(new Shape(6, 4), 1) };
        Assert.Contains("has shape [6,4], expected [4,6]",
            Assert.Throws<EmuException>(() => EmuPlanRunner.Run(plan, g, w, wrong)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_lowered_reshape_of_a_graph_input_reads_the_input_buffer()
    {
        var b = new GraphBuilder("emu_reshape");
        var x = b.Input("x", F(2, 6));
        b.Output(b.Apply1(new Reshape(Vec.Of(3, 4)), "r", x));
        var g = b.Build();
        var inputs = new Dictionary<string, Tensor> { ["x"] = Rand(new Shape(2, 6), 9) };
        Assert.Empty(CudaCodegen.Lower(g).Steps);
        Assert.Equal(0, EmuCheck.ErrorVsReference(g, new Dictionary<string, Tensor>(), inputs));
    }
}
