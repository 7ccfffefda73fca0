using System.Globalization;
using System.Text;
using ShiftWise.CodegenCuda;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Runtime.Native;
using ShiftWise.Runtime.Tune;

namespace ShiftWise.Gpu.Tests;

/// <summary>
/// The cuBLASLt GEMM path (issue 22, gemm_api 1 and 2) on a real GPU beside cuBLAS (gemm_api 0): one-node graphs
/// (linear with bias, gemm from NCHW with bias + ReLU in two batches, gemm with bias + GELU) in fp32, tf32, bf16 and
/// fp16, each API against the float64 reference and against each other; sw-tiny's logits with every GEMM on
/// cuBLASLt against cuBLAS; and, with SWC_GPU_RESULTS set, the gemm_api timings of sw-tiny's GEMM shapes at batch 128
/// (<see cref="GemmApiTuner"/>) written to gemm-api-sw-tiny-b128-*.md. Skipped, with the reason, without a GPU or
/// libcublasLt. Run with <c>GPU_CHECK_ONLY=precision GPU_CHECK_TESTS=1 GPU_TESTS_TIMEOUT=400
/// GPU_TESTS_ARGS="-class ShiftWise.Gpu.Tests.LtGemmGpuTests" scripts/gpu-check.sh BUNDLE RESULTS</c> (the sw-tiny
/// compilations and the batch-128 timings take minutes; the one-node theory alone is
/// <c>-method "*CublasLtMatchesTheReferenceAndCublasOnOneNodeGraphs"</c>).
/// <para>
/// Bounds: fp32 1e-5 (the per-op float32 bound); tf32 2e-3 (TF32 keeps 10 of float32's 23 fraction bits of both
/// factors, 2⁻¹¹ relative each, so a product is off by up to 2⁻¹⁰ ≈ 1e-3; sums of terms of both signs keep the
/// relative L2 near that); bf16 / fp16 as in the emulator (LtGemmEmuTests): u + 1e-5 when cuBLASLt's epilogue is the
/// node's whole epilogue (one rounding), else 2u + 1e-5, u = 2⁻⁸ / 2⁻¹¹. Two APIs differ by at most the sum of their
/// bounds. sw-tiny: its accuracy bounds (scripts/gpu-check-precision.sh P2: 2e-2 bf16, 5e-3 fp16; 1e-4 fp32).
/// </para>
/// </summary>
public sealed class LtGemmGpuTests
{
    private static void RequireGpu()
    {
        if (!CudaDevice.Available) Assert.Skip(CudaDevice.MissingReason!);
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
        if (!NativeLibraries.Load(NativeLibraries.CublasLt).Found)
        {
            Assert.Skip(NativeLibraries.Load(NativeLibraries.CublasLt).Missing("The cuBLASLt tests need it."));
        }
    }

    private static Precision Prec(string s) => Precisions.TryParse(s, out var p) ? p : throw new ArgumentException(s);

    private static DType Storage(string p) => p switch { "bf16" => DType.BF16, "fp16" => DType.F16, _ => DType.F32 };

    private static Graph Node(string c, DType t)
    {
        Gemm G(bool inNchw, GemmAct act) => new(inNchw, false, act, true, false, 1e-6, false);
        var (op, shapes) = c switch
        {
            "linear" => ((Op)new Linear(), new[] { new[] { 64, 384 }, [768, 384], [768] }),
            "gemm_nchw_bias_relu" => (G(true, GemmAct.Relu), [[2, 96, 28, 28], [384, 96], [384]]),
            _ => (G(false, GemmAct.Gelu), [[2, 28, 28, 96], [384, 96], [384]]),
        };
        var b = new GraphBuilder($"lt_{c}");
        var v = shapes.Select((s, i) => i == 0 ? b.Input("x", TensorType.Of(t, s)) : b.Param($"p{i}",
            TensorType.Of(t, s))).ToArray();
        b.Output(b.Apply(op, "d", v));
        return b.Build();
    }

    private static Tensor Random(TensorType t, int seed)
    {
        var rng = new Random(seed);
        var f = Tensor.FromDoubles(TensorType.Of(DType.F32, t.Shape.ToArray()),
            Enumerable.Range(0, (int)t.Shape.Elements).Select(_ => rng.NextDouble() * 2 - 1).ToArray());
        return f.Cast(t.DType).Cast(DType.F32); // values of the storage type, so the reference sees the same ones
    }

    private static CudaOptions Api(Graph g, int api) => new(CudaDevice.Info.Arch)
    {
        Tunables = g.Nodes.Where(GemmApiTuner.Chooses).ToDictionary(n => n.Name,
            _ => (IReadOnlyDictionary<string, int>)new Dictionary<string, int> { [GemmApi.Tunable] = api },
            StringComparer.Ordinal),
    };

    [Theory]
    [InlineData("fp32")]
    [InlineData("tf32")]
    [InlineData("bf16")]
    [InlineData("fp16")]
    public void CublasLtMatchesTheReferenceAndCublasOnOneNodeGraphs(string precision)
    {
        RequireGpu();
        var t = Storage(precision);
        var report = new StringBuilder();
        foreach (var c in new[] { "linear", "gemm_nchw_bias_relu", "gemm_bias_gelu" })
        {
            var (g, g32) = (Node(c, t), Node(c, DType.F32));
            var w32 = g32.Params.Select((p, i) => (p.Name, Random(p.Type with { DType = t }, 10 + i)))
                .ToDictionary(x => x.Name, x => x.Item2, StringComparer.Ordinal);
            var x32 = Random(g.Inputs[0].Type, 1);
            var want = ReferenceExecutor.Run(g32, w32, new Dictionary<string, Tensor> { ["x"] = x32 })[g32.Outputs[0]];
            var w = w32.ToDictionary(kv => kv.Key, kv => kv.Value.Cast(t), StringComparer.Ordinal);
            var got = new Dictionary<int, Tensor>();
            var bounds = new Dictionary<int, double>();
            foreach (int api in new[] { GemmApi.Cublas, GemmApi.Lt, GemmApi.LtEpilogue })
            {
                var plan = CudaCodegen.Lower(g, Api(g, api));
                bool kernels = plan.Steps.OfType<KernelLaunch>().Any();
                double u = t == DType.BF16 ? Math.Pow(2, -8) : Math.Pow(2, -11);
                bounds[api] = precision switch { "fp32" => 1e-5, "tf32" => 2e-3, _ => (kernels ? 2 : 1) * u + 1e-5 };
                using var ex = new CudaExecutor(plan, g, w, new CudaRunOptions { Tf32 = precision == "tf32" });
                got[api] = ex.Run(new Dictionary<string, Tensor> { ["x"] = x32.Cast(t) })[g.Outputs[0]].Cast(DType.F32);
                double err = Error.RelL2(got[api], want);
                report.Append(CultureInfo.InvariantCulture,
                    $"| {precision} | {c} | {api} | {err:E2} | {bounds[api]:E2} |\n");
                Assert.True(err <= bounds[api], $"{precision} {c} gemm_api {api}: relative L2 {err:E2}");
            }
            foreach (int api in new[] { GemmApi.Lt, GemmApi.LtEpilogue })
            {
                double d = Error.RelL2(got[api], got[GemmApi.Cublas]);
                Assert.True(d <= bounds[api] + bounds[0], $"{precision} {c}: gemm_api {api} vs 0 differ by {d:E2}");
            }
        }
        Report($"lt-gemm-{precision}.md", "| precision | node | gemm_api | relative L2 | bound |\n|---|---|---|---|---|\n"
            + report);
    }

    [Theory]
    [InlineData("fp32", 1e-4)]
    [InlineData("bf16", 2e-2)]
    [InlineData("fp16", 5e-3)]
    public void SwTinyWithEveryGemmOnCublasLtMatchesCublas(string precision, double bound)
    {
        RequireGpu();
        var p = Prec(precision);
        var m = ModelSource.Load("sw-tiny", new ModelArgs { Batch = 2 }, withWeights: true);
        var opt = Driver.Optimize(m.Graph, m.Weights, "inference", precision: p);
        var x = Random(opt.Graph.Inputs[0].Type with { DType = DType.F32 }, 7);
        var input = new Dictionary<string, Tensor> { [opt.Graph.Inputs[0].Name] = x.Cast(opt.Graph.Inputs[0].Type.DType) };
        Tensor Logits(int api)
        {
            using var ex = new CudaExecutor(CudaCodegen.Lower(opt.Graph, Api(opt.Graph, api)), opt.Graph, opt.Weights);
            return ex.Run(input)[opt.Graph.Outputs[0]].Cast(DType.F32);
        }
        var cublas = Logits(GemmApi.Cublas);
        foreach (int api in new[] { GemmApi.Lt, GemmApi.LtEpilogue })
        {
            double d = Error.RelL2(Logits(api), cublas);
            Report($"lt-sw-tiny-{precision}-api{api}.md",
                $"sw-tiny batch 2 {precision}: logits with gemm_api {api} vs 0: relative L2 {d:E2} (bound {bound:E0})\n");
            Assert.True(d <= bound, $"sw-tiny {precision} gemm_api {api} vs 0: relative L2 {d:E2}");
        }
    }

    [Theory]
    [InlineData("bf16")]
    [InlineData("fp32")]
    public void GemmApiTimingsOfSwTinysGemmShapesAtBatch128(string precision)
    {
        RequireGpu();
        if (Environment.GetEnvironmentVariable("SWC_GPU_RESULTS") is not { Length: > 0 })
        {
            Assert.Skip("a measurement: runs where SWC_GPU_RESULTS says where to write it");
        }
        var m = ModelSource.Load("sw-tiny", new ModelArgs { Batch = 128 }, withWeights: true);
        var opt = Driver.Optimize(m.Graph, m.Weights, "inference", precision: Prec(precision));
        var rows = CudaTuner.TuneGemmApi(opt.Graph, opt.Weights);
        Assert.NotEmpty(rows);
        var text = new StringBuilder($"sw-tiny batch 128 {precision} on {CudaDevice.Info.Name}: ms per node (GEMM + " +
            "epilogue kernels), gemm_api 0 cuBLAS, 1 cuBLASLt, 2 cuBLASLt with its epilogue\n\n" +
            "| node | 0 | 1 | 2 | best |\n|---|---|---|---|---|\n");
        foreach (var r in rows)
        {
            Assert.All(r.Ms.Values, ms => Assert.True(ms > 0));
            string Ms(int api) => r.Ms.TryGetValue(api, out var v) ? v.ToString("F4", CultureInfo.InvariantCulture)
                : "-";
            text.Append(CultureInfo.InvariantCulture, $"| {r.Node} | {Ms(0)} | {Ms(1)} | {Ms(2)} | {r.Best} |\n");
        }
        double Total(Func<GemmApiRow, double> f) => rows.Sum(f);
        text.Append(CultureInfo.InvariantCulture, $"\ntotal ms: cuBLAS {Total(r => r.Ms[0]):F3}, best " +
            $"{Total(r => r.Ms[r.Best]):F3}\n");
        Report($"gemm-api-sw-tiny-b128-{precision}.md", text.ToString());
    }

    private static void Report(string file, string text)
    {
        if (Environment.GetEnvironmentVariable("SWC_GPU_RESULTS") is { Length: > 0 } dir)
        {
            Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, file), text);
        }
        TestContext.Current.SendDiagnosticMessage(text);
    }
}
