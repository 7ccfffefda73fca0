using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// GEMMs in bf16 and fp16 (issue 22): a gemm node (plain, bias + GELU, + residual, GRN, NCHW in and out) or a linear
/// node (and the linear grad) whose values are declared 16-bit lowers to a <see cref="GemmCall"/> of that storage
/// (run as <c>cublasGemmStridedBatchedEx</c>, float32 compute) and epilogue kernels in the storage type; the whole plan
/// runs through <see cref="EmuPlanRunner"/> with the weights as 16-bit parameters, against the float64 reference of
/// the same graph in float32 on the same (widened, so exact) values.
/// <para>
/// Bounds, from the number of roundings, with u the unit roundoff (2⁻⁸ bf16, 2⁻¹¹ fp16): the inputs are exact; the
/// GEMM sums in float32 (in the emulator in double) and rounds its output once, a relative error of at most u per
/// element. Without an epilogue that is the output: relative L2 ≤ u. An epilogue reads that rounded value, computes
/// in float32 (bias, GELU, GRN's statistics, residual: well under 1e-5 relative for these sizes) and rounds again:
/// the first rounding passes through the epilogue scaled by its slope relative to its output (about 1 here: the bias
/// and residual, uniform in ±3, are small next to the products, sums of K terms of size up to 9, and GELU's slope is
/// at most 1.13 where its output is large), the second adds at most u, so relative L2 ≤ 2u + 1e-5. The linear grad's
/// three outputs are each a float32 sum rounded once: u + 1e-5.
/// </para>
/// </summary>
public sealed class Gemm16EmuTests
{
    private const double Float32Slack = 1e-5;

    public static TheoryData<string, string> Cases()
    {
        var d = new TheoryData<string, string>();
        foreach (var t in new[] { "bf16", "fp16" })
        {
            foreach (var c in new[] { "gemm_plain", "gemm_bias_gelu", "gemm_bias_gelu_residual", "gemm_grn",
                "gemm_grn_nchw_out", "gemm_nchw_in_out_residual", "gemm_nchw_in_batch1_odd", "linear",
                "linear_no_bias", "linear_grad" })
            {
                d.Add(t, c);
            }
        }
        return d;
    }

    // the node, and each input's shape and whether it is a parameter
    private static (Op Op, (int[] Shape, bool Param)[] Inputs) Case(string c)
    {
        (int[], bool) In(params int[] s) => (s, false);
        (int[], bool) P(params int[] s) => (s, true);
        Gemm G(bool inNchw, bool outNchw, GemmAct act, bool bias, bool grn, bool res) =>
            new(inNchw, outNchw, act, bias, grn, 1e-6, res);
        return c switch
        {
            "gemm_plain" => (G(false, false, GemmAct.None, false, false, false), [In(2, 3, 5, 24), P(40, 24)]),
            "gemm_bias_gelu" => (G(false, false, GemmAct.Gelu, true, false, false),
                [In(2, 7, 24), P(40, 24), P(40)]),
            "gemm_bias_gelu_residual" => (G(false, false, GemmAct.Gelu, true, false, true),
                [In(2, 3, 5, 24), P(40, 24), P(40), In(2, 3, 5, 40)]),
            "gemm_grn" => (G(false, false, GemmAct.Gelu, true, true, false),
                [In(2, 3, 5, 24), P(40, 24), P(40), P(1, 1, 1, 40), P(1, 1, 1, 40)]),
            "gemm_grn_nchw_out" => (G(false, true, GemmAct.Gelu, true, true, true),
                [In(2, 3, 5, 24), P(40, 24), P(40), P(1, 1, 1, 40), P(1, 1, 1, 40), In(2, 40, 3, 5)]),
            "gemm_nchw_in_out_residual" => (G(true, true, GemmAct.None, true, false, true),
                [In(2, 24, 3, 5), P(40, 24), P(40), In(2, 40, 3, 5)]),
            "gemm_nchw_in_batch1_odd" => (G(true, false, GemmAct.Relu, true, false, false),
                [In(1, 13, 3, 5), P(7, 13), P(7)]),
            "linear" => (new Linear(), [In(2, 5, 24), P(40, 24), P(40)]),
            "linear_no_bias" => (new Linear(), [In(3, 7, 13), P(9, 13)]),
            "linear_grad" => (new Grad(new Linear(), Vec.Of(0, 1, 2), Vec.Of(0)),
                [In(2, 5, 24), In(40, 24), In(40), In(2, 5, 40), In(2, 5, 40)]),
            _ => throw new ArgumentException(c),
        };
    }

    private static Graph Build(string c, DType t)
    {
        var (op, inputs) = Case(c);
        var b = new GraphBuilder($"g{t.Name()}_{c}");
        var values = inputs.Select((x, i) => x.Param ? b.Param($"p{i}", TensorType.Of(t, x.Shape))
            : b.Input($"in{i}", TensorType.Of(t, x.Shape))).ToArray();
        b.Output(b.Apply(op, "d", values));
        return b.Build();
    }

    // a tensor of the 16-bit type holding these patterns (bf16: the patterns; fp16: Halves)
    private static Tensor Of(TensorType type, ushort[] bits) => type.DType == DType.BF16 ? Tensor.Wrap(type, bits)
        : Tensor.Wrap(type, bits.Select(BitConverter.UInt16BitsToHalf).ToArray());

    [Theory]
    [MemberData(nameof(Cases))]
    public void TheSixteenBitPlanMatchesTheReferenceWithinItsRoundings(string type, string c)
    {
        TestKernels.RequireEmulator();
        var dt = type == "bf16" ? DType.BF16 : DType.F16;
        var (g16, g32) = (Build(c, dt), Build(c, DType.F32));
        var plan = CudaCodegen.Lower(g16);
        var gemms = plan.Steps.OfType<GemmCall>().ToList();
        Assert.NotEmpty(gemms);
        Assert.All(gemms, g => Assert.Equal(dt, g.Storage));
        foreach (var k in plan.Kernels)
        {
            Assert.Matches($"_{type}_[0-9a-f]{{8}}$", k.Name);
            Assert.Contains("swc_round_" + type, k.Source, StringComparison.Ordinal);
        }
        Assert.Contains($"\"storage\": \"{dt.Name()}\"", CudaPlanJson.Write(plan), StringComparison.Ordinal);

        // random values rounded to the 16-bit type; the same values widened for the float32 reference
        var rng = new Random(c.Aggregate((int)dt, (h, ch) => h * 31 + ch)); // the same values every run
        var (in16, in32, w16, w32) = (new Dictionary<string, Tensor>(), new Dictionary<string, Tensor>(),
            new Dictionary<string, Tensor>(), new Dictionary<string, Tensor>());
        foreach (var (decl, isParam) in g16.Inputs.Select(d => (d, false)).Concat(g16.Params.Select(d => (d, true))))
        {
            var bits = Emu16.Random(rng, decl.Type.Shape.Elements, dt);
            var f32 = Tensor.Wrap(TensorType.Of(DType.F32, decl.Type.Shape.ToArray()),
                bits.Select(x => Float16Bits.Widen(x, dt)).ToArray());
            (isParam ? w16 : in16)[decl.Name] = Of(decl.Type, bits);
            (isParam ? w32 : in32)[decl.Name] = f32;
        }
        var got = EmuPlanRunner.Run(plan, g16, w16, in16);
        var want = ReferenceExecutor.Run(g32, w32, in32);
        bool epilogue = plan.Steps.Any(s => s is KernelLaunch) && c != "linear_grad";
        double bound = (epilogue ? 2 : 1) * Emu16.Unit(dt) + Float32Slack;
        foreach (var (o, o32) in g16.Outputs.Zip(g32.Outputs))
        {
            Assert.Equal(dt, got[o].DType);
            double err = Error.RelL2(got[o].ToDoubles(), want[o32].ToDoubles());
            TestContext.Current.TestOutputHelper?.WriteLine(
                $"{type} {c} %{o}: relative L2 {err:E2} (bound {bound:E2})");
            Assert.True(err <= bound, $"{type} {c} %{o}: relative L2 {err:E2} > {bound:E2}");
            Assert.True(err > 0, $"{type} {c} %{o}: no rounding, the plan is not 16-bit");
        }
        Emu16.Compiles(plan);
    }

    [Fact]
    public void A_sixteen_bit_gemm_call_is_passed_as_the_ex_call_with_float32_compute()
    {
        var g = Build("gemm_bias_gelu", DType.BF16);
        var call = Assert.Single(CudaCodegen.Lower(g).Steps.OfType<GemmCall>());
        var e = GemmStridedBatchedExArgs.Of(call);
        Assert.Equal((14, 14, 14, 68, -1), (e.Atype, e.Btype, e.Ctype, e.ComputeType, e.Algo));
        Assert.Equal(SgemmStridedBatchedArgs.Of(call with { Storage = DType.F32 }), e.Call);
        Assert.Equal(2, GemmStridedBatchedExArgs.Of(call with { Storage = DType.F16 }).Ctype);
        Assert.Equal(0, GemmStridedBatchedExArgs.Of(call with { Storage = DType.F32 }).Ctype);
        // cublasSgemmStridedBatched on 16-bit matrices would read garbage: refused where the call is built
        Assert.Contains("cublasGemmStridedBatchedEx",
            Assert.Throws<IrException>(() => SgemmStridedBatchedArgs.Of(call)).Message, StringComparison.Ordinal);
        // the float32 plan of the same graph is what it was: SGEMM, no storage in plan.json, kernels without suffix
        var plan32 = CudaCodegen.Lower(Build("gemm_bias_gelu", DType.F32));
        Assert.Equal(DType.F32, Assert.Single(plan32.Steps.OfType<GemmCall>()).Storage);
        Assert.DoesNotContain("\"storage\"", CudaPlanJson.Write(plan32), StringComparison.Ordinal);
        Assert.All(plan32.Kernels, k => Assert.DoesNotContain("swc_round", k.Source, StringComparison.Ordinal));
    }

    [Fact]
    public void A_kernel_writing_one_sixteen_bit_value_past_its_argument_fails_at_its_step()
    {
        TestKernels.RequireEmulator();
        // y = %d holds 3·7·9 = 189 bf16 values (bytes 0..377 of its slot), x = %in0 holds 273: both end mid-float
        var g = Build("linear_no_bias", DType.BF16);
        var plan = CudaCodegen.Lower(g);
        var past = TestKernels.Cu("emu_test_past16", """
            extern "C" __global__ void past_y(unsigned short* __restrict__ y) { if (threadIdx.x == 0) y[189] = 0; }
            extern "C" __global__ void past_x(unsigned short* __restrict__ x) { if (threadIdx.x == 0) x[273] = 0; }
            """, "past_y", "past_x");
        var rng = new Random(5);
        Tensor Draw(ValueDecl d) => Of(d.Type, Emu16.Random(rng, d.Type.Shape.Elements, DType.BF16));
        var (inputs, weights) = (g.Inputs.ToDictionary(d => d.Name, Draw), g.Params.ToDictionary(d => d.Name, Draw));
        long y0 = plan.Memory.Slots.Single(s => s.Value == "d").Offset;
        foreach (var (entry, arg, why) in new[]
        {
            ("past_y", new ArgRef(ArgKind.Value, "d"), $"wrote the arena at byte {y0 + 378}, outside its arguments"),
            ("past_x", new ArgRef(ArgKind.Value, "in0"), "out-of-bounds write past the end of input in0"),
        })
        {
            var bad = plan with
            {
                Kernels = [.. plan.Kernels, past],
                Steps = [.. plan.Steps, new KernelLaunch("d", past.Name, entry, new Dim3(1), new Dim3(32), 0, [arg])],
            };
            var e = Assert.Throws<EmuException>(() => EmuPlanRunner.Run(bad, g, weights, inputs));
            Assert.Contains($"step 1 (node %d, kernel emu_test_past16 entry {entry})", e.Message,
                StringComparison.Ordinal);
            Assert.Contains(why, e.Message, StringComparison.Ordinal);
        }
    }

    private static readonly ArgRef Any = new(ArgKind.Value, "x");

    // m×n = op(A)·op(B), N/N, A m×k (lda), B k×n (ldb), C m×n (ldc), one batch
    private static GemmStridedBatchedExArgs Ex(DType t, int m, int n, int k, int lda, int ldb, int ldc,
        float alpha = 1, float beta = 0)
    {
        var call = new GemmCall("n", false, false, m, n, k, Any, lda, 0, Any, ldb, 0, Any, ldc, 0, 1, alpha, beta)
        {
            Storage = t,
        };
        return GemmStridedBatchedExArgs.Of(call);
    }

    private static unsafe CublasStatus RunEx(GemmStridedBatchedExArgs e, ushort[] a, ushort[] b, ushort[] c)
    {
        fixed (ushort* pa = a, pb = b, pc = c)
        {
            return CublasInterpreter.RunEx(e, pa, a.Length, pb, b.Length, pc, c.Length);
        }
    }

    private static ushort[] Bits(DType t, params double[] v) => v.Select(x => Float16Bits.Round((float)x, t)).ToArray();

    [Theory]
    [InlineData("lda < m", "lda 2 < max(1, m = 3)")]
    [InlineData("ldb < k", "ldb 3 < max(1, k = 4)")]
    [InlineData("ldc < m", "ldc 2 < max(1, m = 3)")]
    [InlineData("m -1", "negative size")]
    public void The_ex_call_checks_its_leading_dimensions_as_the_float_path_does(string name, string why)
    {
        foreach (var t in new[] { DType.BF16, DType.F16 })
        {
            var ok = Ex(t, 3, 5, 4, 3, 4, 3);
            Assert.Equal(0, CublasInterpreter.Validate(ok).Code);
            var bad = ok with
            {
                Call = name switch
                {
                    "lda < m" => ok.Call with { Lda = 2 },
                    "ldb < k" => ok.Call with { Ldb = 3 },
                    "ldc < m" => ok.Call with { Ldc = 2 },
                    _ => ok.Call with { M = -1 },
                },
            };
            // the status comes first: memory too small for anything is neither read nor written
            ushort[] c = [0x1234];
            var status = RunEx(bad, [], [], c);
            Assert.Equal((7, "CUBLAS_STATUS_INVALID_VALUE"), (status.Code, status.Name));
            Assert.Contains(why, status.Why, StringComparison.Ordinal);
            Assert.Equal(CublasInterpreter.Validate(bad.Call), status);
            Assert.Equal(0x1234, c[0]);
        }
    }

    [Fact]
    public void The_ex_call_refuses_types_it_does_not_interpret()
    {
        var ok = Ex(DType.BF16, 1, 1, 1, 1, 1, 1);
        Assert.Equal(15, CublasInterpreter.Validate(ok with { Btype = GemmStridedBatchedExArgs.R16F }).Code);
        Assert.Equal(15, CublasInterpreter.Validate(ok with { ComputeType = 64 }).Code);
        Assert.Equal(15, CublasInterpreter.Validate(ok with { Ctype = 1 }).Code);
    }

    [Fact]
    public void The_ex_call_rounds_the_exact_sum_once_and_reads_a_sixteen_bit_c_for_beta()
    {
        // 1 + 2⁻⁸ + 2⁻⁴⁰ in bf16 (8 significand bits): just above the tie between 1 and 1 + 2⁻⁷, so 1 + 2⁻⁷ (0x3F81);
        // through float32 first (1 + 2⁻⁸, a tie, to even: 1) it would be 1 (0x3F80)
        ushort[] c = [0];
        Assert.Equal(0, RunEx(Ex(DType.BF16, 1, 1, 3, 1, 3, 1), Bits(DType.BF16, 1, 1, 1),
            Bits(DType.BF16, 1, Math.Pow(2, -8), Math.Pow(2, -40)), c).Code);
        Assert.Equal(0x3F81, c[0]);
        // fp16 (11 bits): 1 + 2⁻¹¹ + 2⁻²⁴ is 1 + 2⁻¹⁰ (0x3C01); through float32 (a tie at 2⁻²⁴, to even) 1 (0x3C00)
        Assert.Equal(0, RunEx(Ex(DType.F16, 1, 1, 3, 1, 3, 1), Bits(DType.F16, 1, 1, 1),
            Bits(DType.F16, 1, Math.Pow(2, -11), Math.Pow(2, -24)), c).Code);
        Assert.Equal(0x3C01, c[0]);
        // α·A·B + β·C with C read as bf16: 2·(3·0.5) + 0.5·1 = 3.5 (0x4060)
        c = Bits(DType.BF16, 1);
        Assert.Equal(0, RunEx(Ex(DType.BF16, 1, 1, 1, 1, 1, 1, alpha: 2, beta: 0.5f), Bits(DType.BF16, 3),
            Bits(DType.BF16, 0.5), c).Code);
        Assert.Equal(0x4060, c[0]);
    }

    [Fact]
    public void The_ex_call_counts_its_bounds_in_sixteen_bit_elements()
    {
        // C 2×2 with ldc 2 reaches element 3: four fp16 values are needed, three are there
        var e = Assert.Throws<EmuException>(() => RunEx(Ex(DType.F16, 2, 2, 1, 2, 1, 2), Bits(DType.F16, 1, 2),
            Bits(DType.F16, 1, 2), new ushort[3]));
        Assert.Contains("cublasGemmStridedBatchedEx: C (2x2, ld 2, stride 0, batchCount 1, as stored) reaches fp16 " +
            "values 0..3, but only 3 fp16 values", e.Message, StringComparison.Ordinal);
        ushort[] c = new ushort[4];
        Assert.Equal(0, RunEx(Ex(DType.F16, 2, 2, 1, 2, 1, 2), Bits(DType.F16, 1, 2), Bits(DType.F16, 3, 4), c).Code);
        Assert.Equal(Bits(DType.F16, 3, 6, 4, 8), c);
    }
}
