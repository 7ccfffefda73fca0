using ShiftWise.CodegenCuda;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes;
using ShiftWise.Runtime.Cuda;

namespace ShiftWise.CudaEmu;

/// <summary>
/// The GEMM steps of lowered plans as cuBLAS receives them: <see cref="SgemmStridedBatchedArgs.Of"/> (what the
/// executor passes) run by <see cref="CublasInterpreter"/> inside the emulated plan, against the float64 reference
/// executor, for each layout <see cref="GemmMapping"/> handles. A gemm without bias or activation lowers to the GEMM
/// call alone, so these plans need no kernel compiler.
/// </summary>
public sealed class CublasPlanTests
{
    // relative L2 of a float32 result whose sums were taken in double: one rounding per element (~6e-8); 1e-6
    // leaves room and is still far below a wrong transpose or leading dimension (errors of order 1)
    private const double Tolerance = 1e-6;

    private static Tensor Rand(Shape s, int seed)
    {
        var r = new Random(seed);
        return Tensor.F32(s, Enumerable.Range(0, (int)s.Elements).Select(_ => (float)(r.NextDouble() * 2 - 1))
            .ToArray());
    }

    /// <summary>One gemm node; the sizes all differ (N 2, K 5, H 3, W 4, O 7), so no swap of two goes unseen.</summary>
    private static (Graph G, Dictionary<string, Tensor> W, Dictionary<string, Tensor> In) Layer(bool inNchw,
        bool outNchw, bool rank3Rows = false)
    {
        const int Nb = 2, K = 5, H = 3, W = 4, O = 7;
        var b = new GraphBuilder($"gemm_{inNchw}_{outNchw}");
        var xShape = inNchw ? new Shape(Nb, K, H, W) : outNchw ? new Shape(Nb, H, W, K)
            : rank3Rows ? new Shape(Nb, H, K) : new Shape(Nb * H, K);
        var x = b.Input("x", new TensorType(DType.F32, xShape));
        var w = b.Param("w", TensorType.Of(DType.F32, O, K));
        b.Output(b.Apply1(new Gemm(inNchw, outNchw, GemmAct.None, false, false, 1e-6, false), "y", x, w));
        return (b.Build(), new Dictionary<string, Tensor> { ["w"] = Rand(new Shape(O, K), 1) },
            new Dictionary<string, Tensor> { ["x"] = Rand(xShape, 2) });
    }

    [Theory]
    [InlineData(false, false, false)]
    [InlineData(false, false, true)]
    [InlineData(true, false, false)]
    [InlineData(false, true, false)]
    [InlineData(true, true, false)]
    public void Each_gemm_layout_interpreted_as_cublas_matches_the_reference(bool inNchw, bool outNchw, bool rank3)
    {
        var (g, w, inputs) = Layer(inNchw, outNchw, rank3);
        var plan = CudaCodegen.Lower(g);
        var call = Assert.IsType<GemmCall>(Assert.Single(plan.Steps));
        Assert.Empty(plan.Kernels);
        var log = new List<string>();
        double err = EmuCheck.ErrorVsReference(plan, g, w, inputs, log.Add);
        Assert.True(err <= Tolerance, $"relative L2 {err:E2} for {SgemmStridedBatchedArgs.Of(call)}");
        Assert.Contains(log, l => l.Contains("cublasSgemmStridedBatched(transa ", StringComparison.Ordinal));
    }

    [Fact]
    public void The_executor_passes_the_operations_as_cublasOperation_t_values()
    {
        // CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 (cublas_api.h); the NCHW-in, rows-out layout transposes both operands
        var call = (GemmCall)CudaCodegen.Lower(Layer(true, false).G).Steps[0];
        Assert.True(call.TransA && call.TransB);
        var s = SgemmStridedBatchedArgs.Of(call);
        Assert.Equal((1, 1), (s.TransA, s.TransB));
        var nn = SgemmStridedBatchedArgs.Of(call with { TransA = false, TransB = false });
        Assert.Equal((0, 0), (nn.TransA, nn.TransB));
        var tn = SgemmStridedBatchedArgs.Of(call with { TransB = false });
        Assert.Equal((1, 0), (tn.TransA, tn.TransB));
        // everything else goes through as the plan has it
        Assert.Equal((call.M, call.N, call.K, call.Lda, call.Ldb, call.Ldc), (s.M, s.N, s.K, s.Lda, s.Ldb, s.Ldc));
        Assert.Equal((call.StrideA, call.StrideB, call.StrideC, call.Batch),
            (s.StrideA, s.StrideB, s.StrideC, s.BatchCount));
        Assert.Equal((call.A, call.B, call.C, call.Alpha, call.Beta), (s.A, s.B, s.C, s.Alpha, s.Beta));
    }

    [Fact]
    public void Every_gemm_of_a_small_ShiftWise_v2_is_a_valid_call_within_its_operands()
    {
        var args = new ModelArgs
        {
            Depths = [1, 1, 1, 1], Dims = [8, 16, 16, 32], KernelSize = [7, 5, 5, 3, 3], ImageSize = 24, NumClasses = 5,
            Batch = 2, Seed = 3,
        };
        var src = ModelSource.Load("sw-v2", args, withWeights: true);
        var ctx = new PassContext(src.Graph, src.Weights);
        new PassManager(Pipelines.Get("inference")).Run(ctx);
        var plan = CudaCodegen.Lower(ctx.Graph);
        var types = ctx.Graph.ValueTypes();
        var gemms = plan.Steps.OfType<GemmCall>().ToList();
        Assert.NotEmpty(gemms);
        // more than one layout is in play (the head's rows, the blocks' NCHW), batched and not
        Assert.Contains(gemms, c => c.Batch > 1);
        Assert.Contains(gemms, c => c.Batch == 1);
        foreach (var c in gemms)
        {
            var s = SgemmStridedBatchedArgs.Of(c);
            Assert.True(CublasInterpreter.Validate(s).Code == 0, $"%{c.Node}: {CublasInterpreter.Validate(s)}");
            // run on zero-filled host copies sized like the plan's operands: no float outside them is touched
            long Size(ArgRef a) => a.Kind switch
            {
                ArgKind.Param => ctx.Weights[a.Name].Shape.Elements,
                ArgKind.Value => types[a.Name].Shape.Elements,
                // a folded GRN's u and scaled weights (gemm_grn_fold): float32 scratch
                ArgKind.Scratch => plan.Scratch.Single(x => x.Name == a.Name).Floats,
                _ => throw new InvalidOperationException($"%{c.Node}: GEMM operand {a} is not a value, parameter "
                    + "or scratch"),
            } - a.Offset;
            var (a, b, cc) = (new float[Size(s.A)], new float[Size(s.B)], new float[Size(s.C)]);
            unsafe
            {
                fixed (float* pa = a, pb = b, pc = cc)
                {
                    Assert.Equal(0, CublasInterpreter.Run(s, pa, a.Length, pb, b.Length, pc, cc.Length).Code);
                }
            }
        }
    }
}
