using System.Globalization;
using System.Text;
using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;
using ShiftWise.Runtime.Cuda;

namespace ShiftWise.Gpu.Tests;

/// <summary>
/// 16-bit dense convolutions on a real GPU (issue 22): im2col + cublasGemmStridedBatchedEx (tunable gemm = 1) and the
/// implicit GEMM on tensor cores (gemm = 2, every block tile; its mma.sync branch, which the emulator cannot run), at
/// sw-tiny's stem and downsample shapes (batch 8, 224×224 images) and a ragged dilated one, bf16 and fp16, each
/// against the float64 reference on the same 16-bit values. Bounds: element by element
/// <c>|got − want| ≤ u·|want| + 2γ_{K+1}·mag + η</c> for the implicit GEMM (u the 16-bit unit roundoff of the one
/// rounding, K + 1 float32 additions; 2γ rather than γ since the tensor cores' order and rounding of their float32
/// sums is not specified), relative L2 ≤ 2u + 1e-5 for im2col + GEMM (C rounded, then the bias kernel rounds again),
/// and the two within 3u of each other; a second run gives the same bits. Times per run of both are reported
/// ($SWC_GPU_RESULTS/conv-igemm.md when set). Skipped, with the reason, without a GPU.
/// </summary>
public sealed class ConvIgemmGpuTests
{
    private static Conv2d Conv(int s, int p, int d = 1) => new(Vec.Of(s, s), Vec.Of(p, p), Vec.Of(d, d), 1);

    /// <summary>The cases: label, op, input and weight shapes.</summary>
    private static readonly (string Label, Conv2d Op, int[] X, int[] W)[] Cases =
    [
        ("stem 3->40", Conv(2, 1), [8, 3, 224, 224], [40, 3, 3, 3]),
        ("stem 40->80", Conv(2, 1), [8, 40, 112, 112], [80, 40, 3, 3]),
        ("down 80->160", Conv(2, 1), [8, 80, 56, 56], [160, 80, 3, 3]),
        ("down 320->640", Conv(2, 1), [8, 320, 14, 14], [640, 320, 3, 3]),
        ("ragged dilated", Conv(1, 2, 2), [3, 37, 29, 31], [50, 37, 3, 3]),
    ];

    [Theory]
    [InlineData("bf16")]
    [InlineData("fp16")]
    public void TheImplicitGemmAndIm2colMatchTheReferenceAndEachOther(string type)
    {
        if (!CudaDevice.Available) Assert.Skip(CudaDevice.MissingReason!);
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
        var dt = type == "bf16" ? DType.BF16 : DType.F16;
        double u = dt == DType.BF16 ? Math.Pow(2, -8) : Math.Pow(2, -11), eps = Math.Pow(2, -24);
        double eta = dt == DType.F16 ? Math.Pow(2, -25) : 0;
        var rows = new StringBuilder("| conv | x | lowering | relative L2 | worst |diff| / bound | ms per run |\n");
        rows.Append("|---|---|---|---|---|---|\n");
        int seed = 0;
        foreach (var (label, op, x, w) in Cases)
        {
            var b = new GraphBuilder("igemm_gpu");
            var xs = b.Input("x", TensorType.Of(dt, x));
            var ws = b.Param("w", TensorType.Of(dt, w));
            b.Output(b.Apply(op, "y", [xs, ws, b.Param("b", TensorType.Of(dt, w[0]))]));
            var g = b.Build();
            var rng = new Random(++seed);
            Tensor Rand(TensorType t) => Tensor.FromDoubles(t, Enumerable.Range(0, (int)t.Shape.Elements)
                .Select(_ => rng.NextDouble() * 2 - 1).ToArray());
            var inputs = new Dictionary<string, Tensor> { ["x"] = Rand(g.Inputs[0].Type) };
            var weights = g.Params.ToDictionary(p => p.Name, p => Rand(p.Type));
            var g64 = F64(g);
            var want = ReferenceExecutor.Run(g64, weights, inputs)[g.Outputs[0]].ToDoubles();
            static Tensor Abs(Tensor t) => Tensor.FromDoubles(t.Type with { DType = DType.F64 },
                t.ToDoubles().Select(Math.Abs).ToArray());
            var mag = ReferenceExecutor.Run(g64, weights.ToDictionary(p => p.Key, p => Abs(p.Value)),
                inputs.ToDictionary(p => p.Key, p => Abs(p.Value)))[g.Outputs[0]].ToDoubles();
            int k = w[1] * w[2] * w[3] + 1;
            double gamma = 2 * k * eps / (1 - 2 * k * eps);
            double[]? im2col = null;
            foreach (var (lowering, tunables) in new (string, Dictionary<string, int>)[]
            {
                ("im2col + GEMM", new() { ["gemm"] = 1 }),
                ("implicit 64x64", new() { ["gemm"] = 2, ["tile"] = 0 }),
                ("implicit 128x64", new() { ["gemm"] = 2, ["tile"] = 1 }),
                ("implicit 32x32", new() { ["gemm"] = 2, ["tile"] = 2 }),
            })
            {
                var options = new CudaOptions(CudaDevice.Info.Arch)
                {
                    Tunables = new Dictionary<string, IReadOnlyDictionary<string, int>> { [g.Nodes[0].Name] = tunables },
                };
                var plan = CudaCodegen.Lower(g, options);
                using var ex = new CudaExecutor(plan, g, weights);
                var got = ex.Run(inputs)[g.Outputs[0]].ToDoubles();
                Assert.Equal(got, ex.Run(inputs)[g.Outputs[0]].ToDoubles());
                double ms = ex.TimeRuns(20), rel = Error.RelL2(got, want), worst = 0;
                if (tunables["gemm"] == 1)
                {
                    im2col = got;
                    Assert.True(rel <= 2 * u + 1e-5, $"{type} {label} {lowering}: relative L2 {rel:E2}");
                }
                else
                {
                    for (int i = 0; i < got.Length; i++)
                    {
                        double bound = u * Math.Abs(want[i]) + (1 + u) * gamma * mag[i] + eta;
                        double diff = Math.Abs(got[i] - want[i]);
                        Assert.True(diff <= bound, $"{type} {label} {lowering} y[{i}]: got {got[i]:R}, want "
                            + $"{want[i]:R}, |diff| {diff:E2} > bound {bound:E2}");
                        worst = Math.Max(worst, bound > 0 ? diff / bound : 0);
                    }
                    double apart = Error.RelL2(got, im2col!);
                    Assert.True(apart <= 3 * u, $"{type} {label} {lowering}: {apart:E2} from im2col + GEMM");
                }
                rows.Append(CultureInfo.InvariantCulture, $"| {label} | {string.Join("x", x)} | {lowering} | "
                    + $"{rel:E2} | {(tunables["gemm"] == 1 ? "-" : worst.ToString("F3", CultureInfo.InvariantCulture))}"
                    + $" | {ms:F3} |\n");
            }
        }
        var text = $"# 16-bit dense convs ({type}) on {CudaDevice.Info.Name}\n\n" + rows;
        if (Environment.GetEnvironmentVariable("SWC_GPU_RESULTS") is { Length: > 0 } dir)
        {
            Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, $"conv-igemm-{type}.md"), text);
        }
        TestContext.Current.SendDiagnosticMessage(text);
    }

    /// <summary>The same graph with every value float64 (the reference).</summary>
    private static Graph F64(Graph g) => g with
    {
        Inputs = g.Inputs.Select(d => d with { Type = d.Type with { DType = DType.F64 } }).ToArray(),
        Params = g.Params.Select(d => d with { Type = d.Type with { DType = DType.F64 } }).ToArray(),
        Nodes = g.Nodes.Select(n => n with { Types = n.Types.Select(t => t with { DType = DType.F64 }).ToArray() })
            .ToArray(),
    };
}
