using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Runtime.Tune;

namespace ShiftWise.CudaEmu;

/// <summary>
/// <see cref="GemmApiTuner"/> above the driver, on a fake device that prices a bound plan by its steps (a cuBLAS GEMM,
/// a cuBLASLt GEMM, an epilogue kernel): which nodes are searched, which candidates reach a lowered plan, the copies
/// graph (activations per copy, parameters shared), and the choice with its 2% margin for cuBLAS. Real timings need a
/// GPU (tests/Gpu, scripts/gpu-check-precision.sh).
/// </summary>
public sealed class GemmApiTunerTests
{
    private static CudaTuneDevice Fake(double cublasMs, double ltMs, double kernelMs, List<CudaPlan> bound) =>
        new("sm_90", 48 * 1024, _ => throw new InvalidOperationException("no SW spec here"), (plan, g, w, inputs) =>
        {
            Assert.All(g.Inputs, i => Assert.True(inputs.ContainsKey(i.Name), i.Name));
            Assert.All(g.Params, p => Assert.True(w.ContainsKey(p.Name), p.Name));
            bound.Add(plan);
            double ms = plan.Steps.Sum(s => s switch
            {
                GemmCall { Lt: null } => cublasMs,
                GemmCall => ltMs,
                _ => kernelMs,
            });
            return new TuneTrial(() => ms);
        });

    private static (Graph G, Dictionary<string, Tensor> W) Net()
    {
        var b = new GraphBuilder("net");
        var x = b.Input("x", TensorType.Of(DType.F32, 2, 7, 24));
        var (w1, b1) = (b.Param("w1", TensorType.Of(DType.F32, 40, 24)), b.Param("b1", TensorType.Of(DType.F32, 40)));
        var w2 = b.Param("w2", TensorType.Of(DType.F32, 40, 40));
        var h = b.Apply1(new Linear(), "lin", x, w1, b1);
        var gelu = new Gemm(false, false, GemmAct.Gelu, false, false, 1e-6, true);
        b.Output(b.Apply1(gelu, "gelu_res", h, w2, h));
        var g = b.Build();
        return (g, g.Params.ToDictionary(p => p.Name, p => Tensor.Wrap(p.Type, new float[p.Type.Shape.Elements])));
    }

    [Fact]
    public void Each_gemm_and_linear_node_gets_the_fastest_api_and_candidate_2_only_where_it_fuses()
    {
        var (g, w) = Net();
        var bound = new List<CudaPlan>();
        var rows = new GemmApiTuner { Repeats = 3 }.Tune(g, w, Fake(2.0, 1.0, 0.5, bound));
        Assert.Equal(["lin", "gelu_res"], rows.Select(r => r.Node));
        // linear with bias: 0 = GEMM + bias kernel, 1 = Lt GEMM + bias kernel, 2 = Lt GEMM with its bias epilogue
        Assert.Equal([0, 1, 2], rows[0].Ms.Keys.Order());
        Assert.Equal((2.5, 1.5, 1.0), (rows[0].Ms[0], rows[0].Ms[1], rows[0].Ms[2]));
        Assert.Equal(2, rows[0].Best);
        // gelu + residual: cuBLASLt's epilogue never fits, so 2 is not a plan of its own
        Assert.Equal([0, 1], rows[1].Ms.Keys.Order());
        Assert.Equal(1, rows[1].Best);
        Assert.Equal(5, bound.Count);
        // every bound plan holds copies of one node, each GEMM on its own output
        Assert.All(bound, p => Assert.Equal(p.Steps.OfType<GemmCall>().Count(),
            p.Steps.OfType<GemmCall>().Select(c => c.C.Name).Distinct().Count()));
        Assert.True(bound[0].Steps.OfType<GemmCall>().Count() > 1);
        var t = GemmApiTuner.Tunables(rows);
        Assert.Equal(2, t["lin"][GemmApi.Tunable]);
        // the tunables lower the whole graph: the linear's bias kernel is gone, the gelu kernel stays
        var plan = CudaCodegen.Lower(g, new CudaOptions { Tunables = t });
        Assert.Equal(2, plan.Steps.OfType<GemmCall>().Count(c => c.Lt is not null));
        Assert.Single(plan.Steps.OfType<KernelLaunch>());
    }

    [Fact]
    public void Nodes_of_one_op_on_the_same_types_share_one_search()
    {
        var b = new GraphBuilder("twice");
        var x = b.Input("x", TensorType.Of(DType.F32, 2, 7, 24));
        var w = b.Param("w", TensorType.Of(DType.F32, 24, 24));
        var h = b.Apply1(new Linear(), "l1", x, w);
        b.Output(b.Apply1(new Linear(), "l2", h, w));
        var g = b.Build();
        var bound = new List<CudaPlan>();
        var rows = new GemmApiTuner { Repeats = 1 }.Tune(g, new Dictionary<string, Tensor>
            { ["w"] = Tensor.Wrap(TensorType.Of(DType.F32, 24, 24), new float[576]) }, Fake(2.0, 1.0, 0.5, bound));
        Assert.Equal(["l1", "l2"], rows.Select(r => r.Node));
        Assert.Equal(rows[0].Ms, rows[1].Ms);
        Assert.Equal(2, bound.Count); // cuBLAS and cuBLASLt once (no bias: 2 would not change the plan)
    }

    [Fact]
    public void Cublas_stays_unless_another_api_is_at_least_two_percent_faster()
    {
        var (g, w) = Net();
        // free epilogue kernels: cuBLASLt 1% faster with or without its epilogue is not enough
        var rows = new GemmApiTuner { Repeats = 1 }.Tune(g, w, Fake(1.0, 0.99, 0, []));
        Assert.All(rows, r => Assert.Equal(GemmApi.Cublas, r.Best));
        Assert.Equal(0.99, rows[0].Ms[GemmApi.LtEpilogue], 1e-12);
        rows = new GemmApiTuner { Repeats = 1 }.Tune(g, w, Fake(1.0, 1.5, 0.5, []));
        Assert.All(rows, r => Assert.Equal(GemmApi.Cublas, r.Best));
    }
}
