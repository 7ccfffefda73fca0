using ShiftWise.CodegenCuda;
using ShiftWise.CodegenCuda.Standalone;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;
using ShiftWise.Runtime.Cuda;

namespace ShiftWise.CudaEmu;

/// <summary>
/// The cuBLASLt GEMM path (issue 22) without a GPU: the tunable gemm_api chooses it per node, the plan's
/// <see cref="GemmCall.Lt"/> becomes the <see cref="LtMatmulArgs"/> the executor passes (every descriptor attribute,
/// its C size, the layouts in cuBLASLt's column-major terms), and <see cref="EmuPlanRunner"/> interprets that record
/// (<see cref="CublasInterpreter.RunLt"/>) against the float64 reference of the graph.
/// <para>
/// Bounds, as in <see cref="Gemm16EmuTests"/> with u the unit roundoff (2⁻⁸ bf16, 2⁻¹¹ fp16): cuBLASLt's epilogue
/// (bias, ReLU) is applied before the one rounding of the output, so a plan whose whole epilogue is cuBLASLt's rounds
/// once, relative L2 ≤ u + 1e-5; with our epilogue kernel after it (gelu) twice, ≤ 2u + 1e-5. In float32 every
/// result is one rounding of a double (the emulator's oracle), ≤ 1e-5 (the per-op float32 bound).
/// </para>
/// </summary>
public sealed class LtGemmEmuTests
{
    private const double Float32Slack = 1e-5;

    private static Graph Build(string c, DType t)
    {
        Gemm G(bool inNchw, GemmAct act, bool bias) => new(inNchw, false, act, bias, false, 1e-6, false);
        var (op, inputs) = c switch
        {
            "linear" => ((Op)new Linear(), new (int[] Shape, bool Param)[] { ([2, 5, 24], false), ([40, 24], true),
                ([40], true) }),
            "gemm_plain" => (G(false, GemmAct.None, false), [([2, 3, 5, 24], false), ([40, 24], true)]),
            "gemm_nchw_in_bias_relu" => (G(true, GemmAct.Relu, true), [([2, 13, 3, 5], false), ([7, 13], true),
                ([7], true)]),
            "gemm_bias_gelu" => (G(false, GemmAct.Gelu, true), [([2, 7, 24], false), ([40, 24], true),
                ([40], true)]),
            _ => throw new ArgumentException(c),
        };
        var b = new GraphBuilder($"lt_{t.Name()}_{c}");
        var values = inputs.Select((x, i) => x.Param ? b.Param($"p{i}", TensorType.Of(t, x.Shape))
            : b.Input($"in{i}", TensorType.Of(t, x.Shape))).ToArray();
        b.Output(b.Apply(op, "d", values));
        return b.Build();
    }

    private static CudaOptions Api(int api) => new()
    {
        Tunables = new Dictionary<string, IReadOnlyDictionary<string, int>>
        {
            ["d"] = new Dictionary<string, int> { [GemmApi.Tunable] = api },
        },
    };

    public static TheoryData<string, string, int> Cases()
    {
        var d = new TheoryData<string, string, int>();
        foreach (var t in new[] { "f32", "bf16", "fp16" })
        {
            d.Add(t, "linear", 2);
            d.Add(t, "gemm_nchw_in_bias_relu", 2);
            d.Add(t, "gemm_bias_gelu", 2);
        }
        d.Add("f32", "gemm_plain", 1);
        d.Add("bf16", "linear", 1);
        return d;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void TheCublasLtPlanMatchesTheReferenceWithinItsRoundings(string type, string c, int api)
    {
        TestKernels.RequireEmulator();
        var dt = type switch { "bf16" => DType.BF16, "fp16" => DType.F16, _ => DType.F32 };
        var (g, g32) = (Build(c, dt), Build(c, DType.F32));
        var plan = CudaCodegen.Lower(g, Api(api));
        var gemm = Assert.Single(plan.Steps.OfType<GemmCall>());
        Assert.NotNull(gemm.Lt);
        // cuBLASLt's epilogue takes the node's whole epilogue where it is only a bias and / or ReLU (gemm_api 2)
        bool fused = api == 2 && c != "gemm_bias_gelu";
        Assert.Equal(fused, gemm.Lt!.Epilogue != GemmEpilogue.Default);
        Assert.Equal(fused || c == "gemm_plain", !plan.Steps.OfType<KernelLaunch>().Any());

        var rng = new Random(c.Aggregate(api * 7 + (int)dt, (h, ch) => h * 31 + ch)); // the same values every run
        var (ins, in32, w, w32) = (new Dictionary<string, Tensor>(), new Dictionary<string, Tensor>(),
            new Dictionary<string, Tensor>(), new Dictionary<string, Tensor>());
        foreach (var (decl, isParam) in g.Inputs.Select(d => (d, false)).Concat(g.Params.Select(d => (d, true))))
        {
            var shape = decl.Type.Shape.ToArray();
            var v = dt == DType.F32
                ? Enumerable.Range(0, (int)decl.Type.Shape.Elements).Select(_ => (float)(rng.NextDouble() * 6 - 3))
                    .ToArray()
                : Emu16.Random(rng, decl.Type.Shape.Elements, dt).Select(x => Float16Bits.Widen(x, dt)).ToArray();
            var f32 = Tensor.Wrap(TensorType.Of(DType.F32, shape), v);
            (isParam ? w : ins)[decl.Name] = f32.Cast(dt); // exact: the values are of the type
            (isParam ? w32 : in32)[decl.Name] = f32;
        }
        var got = EmuPlanRunner.Run(plan, g, w, ins);
        var want = ReferenceExecutor.Run(g32, w32, in32);
        double bound = dt == DType.F32 ? Float32Slack
            : (plan.Steps.Any(s => s is KernelLaunch) ? 2 : 1) * Emu16.Unit(dt) + Float32Slack;
        var (o, o32) = (g.Outputs[0], g32.Outputs[0]);
        Assert.Equal(dt, got[o].DType);
        double err = Error.RelL2(got[o].ToDoubles(), want[o32].ToDoubles());
        TestContext.Current.TestOutputHelper?.WriteLine($"{type} {c} gemm_api {api}: relative L2 {err:E2} " +
            $"(bound {bound:E2})");
        Assert.True(err <= bound, $"{type} {c} gemm_api {api}: relative L2 {err:E2} > {bound:E2}");
        if (dt != DType.F32) Assert.True(err > 0, $"{type} {c}: no rounding, the plan is not 16-bit");
    }

    [Fact]
    public void The_record_holds_every_attribute_the_executor_sets_with_its_C_size()
    {
        var plan = CudaCodegen.Lower(Build("linear", DType.BF16), Api(2));
        var call = Assert.Single(plan.Steps.OfType<GemmCall>());
        Assert.Equal(new GemmLt(GemmEpilogue.Bias, new ArgRef(ArgKind.Param, "p2")), call.Lt);
        var json = CudaPlanJson.Write(plan);
        Assert.Contains("\"api\": \"cublaslt\"", json, StringComparison.Ordinal);
        Assert.Contains("\"epilogue\": \"bias\"", json, StringComparison.Ordinal);
        Assert.Contains("\"bias\": \"param:p2\"", json, StringComparison.Ordinal);
        Assert.DoesNotContain("cublaslt", CudaPlanJson.Write(CudaCodegen.Lower(Build("linear", DType.BF16))),
            StringComparison.Ordinal);
        var l = LtMatmulArgs.Of(call);
        // yᵀ (40×10) = W·xᵀ: A = W (24×40 as stored, op T), B = x (24×10), C = D = y (40×10), one batch
        Assert.Equal((68, 0, 1, 0, 4), (l.ComputeType, l.ScaleType, l.TransA, l.TransB, l.Epilogue));
        Assert.Equal(new LtLayout(14, 24, 40, 24, 1, 0), l.ALayout);
        Assert.Equal(new LtLayout(14, 24, 10, 24, 1, 0), l.BLayout);
        Assert.Equal(new LtLayout(14, 40, 10, 40, 1, 0), l.CLayout);
        Assert.Equal(l.CLayout, l.DLayout);
        Assert.Equal((1f, 0f), (l.Alpha, l.Beta));
        Assert.Equal(
            [
                new(3, "CUBLASLT_MATMUL_DESC_TRANSA", 1, 4), new(4, "CUBLASLT_MATMUL_DESC_TRANSB", 0, 4),
                new(7, "CUBLASLT_MATMUL_DESC_EPILOGUE", 4, 4), new(8, "CUBLASLT_MATMUL_DESC_BIAS_POINTER", 0xBEEF00, 8),
            ], l.DescAttributes(0xBEEF00));
        Assert.Equal([new(5, "CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT", 1, 4),
            new(6, "CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET", 0, 8)], l.ALayout.Attributes());
        // the workspace, and the alignment the addresses have (the heuristic assumes 256 bytes unless told)
        Assert.Equal(
            [
                new(1, "CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES", 32L << 20, 8),
                new(5, "CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES", 256, 4),
                new(6, "CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES", 4, 4),
                new(7, "CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES", 16, 4),
                new(8, "CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES", 16, 4),
            ], LtMatmulArgs.PreferenceAttributes(0x7f0000001000, 0x7f0000001004, 0x7f0000001030));
        Assert.Equal((256, 2, 128, 256), (LtMatmulArgs.Alignment(0x300), LtMatmulArgs.Alignment(0x302),
            LtMatmulArgs.Alignment(0x180), LtMatmulArgs.Alignment(0)));
        // cublasLtEpilogue_t, cublasLtMatmulAlgo_t and cublasLtMatmulHeuristicResult_t as in cublasLt.h
        Assert.Equal([1, 2, 4, 6, 32, 36], new[] { LtMatmulArgs.EpilogueDefault, LtMatmulArgs.EpilogueRelu,
            LtMatmulArgs.EpilogueBias, LtMatmulArgs.EpilogueReluBias, LtMatmulArgs.EpilogueGelu,
            LtMatmulArgs.EpilogueGeluBias });
        Assert.Equal((64, 96, 64, 72), (LtMatmulArgs.AlgoBytes, LtMatmulArgs.HeuristicResultBytes,
            LtMatmulArgs.HeuristicWorkspaceOffset, LtMatmulArgs.HeuristicStateOffset));
        // the product is the one the Ex call computes; TF32 is a compute type in float32 only
        Assert.Equal(GemmStridedBatchedExArgs.Of(call with { Lt = null }).Call, l.AsStridedBatched());
        Assert.Equal(68, LtMatmulArgs.Of(call, tf32: true).ComputeType);
        Assert.Equal(77, LtMatmulArgs.Of(call with { Storage = DType.F32 }, tf32: true).ComputeType);
        Assert.Equal(0, LtMatmulArgs.Of(call with { Storage = DType.F32 }).CLayout.Type);
        Assert.Equal(2, LtMatmulArgs.Of(call with { Storage = DType.F16 }).CLayout.Type);
        // no bias pointer without a bias epilogue; a cuBLAS step has no cuBLASLt record
        var plain = LtMatmulArgs.Of(call with { Lt = new GemmLt() });
        Assert.Equal([3, 4, 7], plain.DescAttributes(0xBEEF00).Select(a => a.Attr));
        Assert.Throws<IrException>(() => LtMatmulArgs.Of(call with { Lt = null }));
        Assert.Throws<IrException>(() => LtMatmulArgs.Of(call with { Lt = new GemmLt(GemmEpilogue.Bias) }));
    }

    [Fact]
    public void A_batched_call_sets_batch_count_and_strides_per_layout_and_the_bias_is_shared_by_the_batches()
    {
        var plan = CudaCodegen.Lower(Build("gemm_nchw_in_bias_relu", DType.F32), Api(2));
        var call = Assert.Single(plan.Steps.OfType<GemmCall>());
        var l = LtMatmulArgs.Of(call);
        // per image Y_bᵀ (7×15) = W·X_b: A = W (13×7 stored, op T, shared), B = X_b (15×13 stored, op T)
        Assert.Equal((1, 1, LtMatmulArgs.EpilogueReluBias), (l.TransA, l.TransB, l.Epilogue));
        Assert.Equal(new LtLayout(0, 13, 7, 13, 2, 0), l.ALayout);
        Assert.Equal(new LtLayout(0, 15, 13, 15, 2, 195), l.BLayout);
        Assert.Equal(new LtLayout(0, 7, 15, 7, 2, 105), l.CLayout);
        Assert.Equal(105, l.CLayout.Attributes()[1].Value);
    }

    [Fact]
    public void The_interpreter_refuses_what_cublasLt_would_before_touching_memory()
    {
        var plan = CudaCodegen.Lower(Build("gemm_nchw_in_bias_relu", DType.BF16), Api(2));
        var l = LtMatmulArgs.Of(Assert.Single(plan.Steps.OfType<GemmCall>()));
        Assert.Equal(0, CublasInterpreter.Validate(l).Code);
        foreach (var (bad, code, says) in new (LtMatmulArgs, int, string)[]
        {
            (l with { ComputeType = LtMatmulArgs.Compute32FFastTf32 }, 15, "computeType 77"),
            (l with { ScaleType = GemmStridedBatchedExArgs.R16BF }, 15, "scaleType 14"),
            (l with { BLayout = l.BLayout with { Type = GemmStridedBatchedExArgs.R16F } }, 15, "CUDA_R_16F"),
            (l with { ALayout = l.ALayout with { Rows = 12 } }, 7, "do not agree"),
            (l with { BLayout = l.BLayout with { BatchCount = 1 } }, 7, "batch counts"),
            (l with { Epilogue = 8 }, 15, "epilogue 8"),
            (l with { Epilogue = LtMatmulArgs.EpilogueRelu }, 7, "a bias pointer it does not read"),
            (l with { CLayout = l.CLayout with { Ld = 6 } }, 7, "ldc 6"),
        })
        {
            var st = CublasInterpreter.Validate(bad);
            Assert.Equal(code, st.Code);
            Assert.Contains(says, st.ToString(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Only_a_bias_or_relu_on_the_rows_of_C_is_fused_and_gemm_api_is_validated()
    {
        // gelu (cuBLASLt's is the tanh form), GRN, a residual, or channels on the columns (NCHW out) keep our kernel
        foreach (var (op, shapes) in new (Gemm, int[][])[]
        {
            (new Gemm(false, false, GemmAct.Gelu, true, false, 1e-6, false), [[2, 7, 24], [40, 24], [40]]),
            (new Gemm(false, true, GemmAct.Relu, true, false, 1e-6, false), [[2, 3, 5, 24], [40, 24], [40]]),
            (new Gemm(false, false, GemmAct.None, true, false, 1e-6, true), [[2, 7, 24], [40, 24], [40], [2, 7, 40]]),
        })
        {
            var b = new GraphBuilder("g");
            var vals = shapes.Select((s, i) => i is 1 or 2 ? b.Param($"p{i}", TensorType.Of(DType.F32, s))
                : b.Input($"in{i}", TensorType.Of(DType.F32, s))).ToArray();
            b.Output(b.Apply(op, "d", vals));
            var plan = CudaCodegen.Lower(b.Build(), Api(2));
            Assert.Equal(new GemmLt(), Assert.Single(plan.Steps.OfType<GemmCall>()).Lt);
            Assert.Single(plan.Steps.OfType<KernelLaunch>());
            Assert.Null(Assert.Single(CudaCodegen.Lower(b.Build()).Steps.OfType<GemmCall>()).Lt);
        }
        var e = Assert.Throws<IrException>(() => CudaCodegen.Lower(Build("linear", DType.F32), Api(3)));
        Assert.Contains("%d", e.Message, StringComparison.Ordinal);
        Assert.Contains("gemm_api = 3", e.Message, StringComparison.Ordinal);
        Assert.Equal((0, 1, 2, 1, 2), (GemmApi.Parse(null), GemmApi.Parse("lt"), GemmApi.Parse("lt-epilogue"),
            GemmApi.Parse(" 1 "), GemmApi.Parse("2")));
        Assert.Contains(GemmApi.Environment, Assert.Throws<IrException>(() => GemmApi.Parse("fast")).Message,
            StringComparison.Ordinal);
    }

    [Fact]
    public void The_interpreter_applies_cublasLt_gelu_as_the_tanh_form_which_is_not_our_erf_gelu()
    {
        // one row of D = [x] for x in -3..3 (A = 1×1 identity scale, B the values), bias 0.25 with GELU_BIAS
        float[] xs = [-3f, -1.5f, -0.5f, 0f, 0.5f, 1.5f, 3f];
        var call = new GemmCall("t", false, false, 1, xs.Length, 1, new ArgRef(ArgKind.Param, "a"), 1, 0,
            new ArgRef(ArgKind.Param, "b"), 1, 0, new ArgRef(ArgKind.Value, "c"), 1, 0, 1, 1f, 0f)
            { Lt = new GemmLt() };
        var l = LtMatmulArgs.Of(call) with { Epilogue = LtMatmulArgs.EpilogueGeluBias,
            Bias = new ArgRef(ArgKind.Param, "bias") };
        var (a, b, c, bias) = (new[] { 1f }, (float[])xs.Clone(), new float[xs.Length], new[] { 0.25f });
        unsafe
        {
            fixed (float* pa = a, pb = b, pc = c, pbias = bias)
            {
                Assert.Equal(0, CublasInterpreter.RunLt(l, pa, 1, pb, xs.Length, pc, xs.Length, pbias, 1).Code);
                // a bias epilogue without the vector is refused before memory is touched
                Assert.Equal(7, CublasInterpreter.RunLt(l with { Bias = null }, pa, 1, pb, 7, pc, 7, null, 0).Code);
            }
        }
        double maxGap = 0;
        for (int i = 0; i < xs.Length; i++)
        {
            double v = xs[i] + 0.25;
            Assert.Equal((float)CublasInterpreter.GeluTanh(v), c[i]);
            double erf = 0.5 * v * (1 + ErfOf(v / Math.Sqrt(2)));
            maxGap = Math.Max(maxGap, Math.Abs(c[i] - erf));
        }
        // the two GELUs differ by ~1e-4 to 1e-3 here: far beyond float32 rounding, so never fused for gelu nodes
        Assert.True(maxGap > 1e-4, $"tanh vs erf GELU differ by only {maxGap:E2}");
    }

    [Fact]
    public void The_standalone_emitter_keeps_cublas_a_cuBLASLt_step_emits_as_the_same_call_and_its_epilogue_is_refused()
    {
        var g = Build("linear", DType.F32);
        var weights = g.Params.ToDictionary(p => p.Name, p => Tensor.Wrap(p.Type,
            Enumerable.Range(0, (int)p.Type.Shape.Elements).Select(i => i * 0.01f).ToArray()));
        IReadOnlyList<StandaloneFile> Emit(CudaPlan plan) =>
            StandaloneEmitter.Emit(plan, g, weights, Derived.ComputeAll(plan, g, weights), "lt", "0.1.0");
        var (cublas, lt) = (CudaCodegen.Lower(g, Api(0)), CudaCodegen.Lower(g, Api(1)));
        Assert.NotNull(Assert.Single(lt.Steps.OfType<GemmCall>()).Lt);
        var (a, b) = (Emit(cublas), Emit(lt));
        Assert.Equal(a.Select(f => f.Path), b.Select(f => f.Path));
        foreach (var (fa, fb) in a.Zip(b)) Assert.True(fa.Bytes.AsSpan().SequenceEqual(fb.Bytes), fa.Path);
        var e = Assert.Throws<IrException>(() => Emit(CudaCodegen.Lower(g, Api(2))));
        Assert.Contains("(%d)", e.Message, StringComparison.Ordinal);
        Assert.Contains("gemm_api 0 or 1", e.Message, StringComparison.Ordinal);
    }

    // erf by its series (|x| ≤ 3: 60 terms are exact to double rounding)
    private static double ErfOf(double x)
    {
        double sum = 0, term = x;
        for (int n = 0; n < 80; n++)
        {
            sum += term / (2 * n + 1);
            term *= -x * x / (n + 1);
        }
        return 2 / Math.Sqrt(Math.PI) * sum;
    }
}
