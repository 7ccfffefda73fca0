using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Ops;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// 16-bit dense convolutions as an implicit GEMM on tensor cores (issue 22, <see cref="ConvIgemmModel"/>: tunable
/// gemm = 2), in the emulator, where <c>swc_mma_bf16/fp16</c> take their portable branch (shuffles and float32 fmaf
/// with the fragments of mma.sync m16n8k16). The mma alone is pinned against a plain matrix product; the whole kernel
/// (the gathers, zero fill at the image's edges and past M and K, fragment loads, the bias and the one rounding) is
/// checked element by element against the float64 reference on the same 16-bit values:
/// <c>|got − want| ≤ u·|want| + (1 + u)·γ_{K+1}·mag + η</c>, u the unit roundoff (2⁻⁸ bf16, 2⁻¹¹ fp16: the one
/// rounding of the output), K + 1 float32 roundings per output (one fmaf per tap, the bias add; products of 16-bit
/// values are exact in float32), γ_n = n·2⁻²⁴/(1 − n·2⁻²⁴), mag the reference on absolute values (Σ|x·w| + |b|) and
/// η half fp16's smallest subnormal step (2⁻²⁵; 0 for bf16).
/// </summary>
public sealed class ConvIgemmEmuTests
{
    /// <summary>A case: the op, input and weight shapes, a bias or not, the block tile (tunable tile).</summary>
    private sealed record Case(Conv2d Op, int[] X, int[] W, bool Bias, int Tile);

    private static Conv2d Conv(int sy, int sx, int py, int px, int dy = 1, int dx = 1) =>
        new(Vec.Of(sy, sx), Vec.Of(py, px), Vec.Of(dy, dx), 1);

    private static readonly Dictionary<string, Case> Cases = new()
    {
        // sw-tiny's stem (3 -> 40, then 40 -> 80, 3x3 stride 2 padding 1), scaled down: K = 27 (one ragged K step),
        // M = 162 over a batch of 2 (ragged in 32, 64 and 128 rows: every tile)
        ["stem_t32"] = new(Conv(2, 2, 1, 1), [2, 3, 17, 17], [8, 3, 3, 3], true, 2),
        ["stem_t64"] = new(Conv(2, 2, 1, 1), [2, 3, 17, 17], [8, 3, 3, 3], true, 0),
        ["stem_t128"] = new(Conv(2, 2, 1, 1), [2, 3, 17, 17], [8, 3, 3, 3], false, 1),
        ["stem2"] = new(Conv(2, 2, 1, 1), [2, 8, 9, 9], [16, 8, 3, 3], true, 2),
        // its downsamples (3x3 stride 2 padding 1, channels doubling): 40 channels span two 32-wide N tiles
        ["down"] = new(Conv(2, 2, 1, 1), [1, 16, 8, 8], [40, 16, 3, 3], true, 2),
        ["down_t64"] = new(Conv(2, 2, 1, 1), [2, 20, 7, 7], [40, 20, 3, 3], false, 0),
        // a 2x2 stride-2 downsample (sw-fmnist's), odd K with a pair of taps straddling two channels, dilation with
        // unequal strides and paddings, a 1x1 conv (taps = 1), a long accumulation (K = 1000: 32 K steps)
        ["down2x2"] = new(Conv(2, 2, 0, 0), [1, 12, 8, 8], [24, 12, 2, 2], true, 2),
        ["odd_dilated"] = new(Conv(1, 2, 2, 1, 2, 1), [1, 5, 11, 13], [7, 5, 3, 3], false, 2),
        ["pointwise"] = new(Conv(1, 1, 0, 0), [2, 24, 5, 5], [40, 24, 1, 1], true, 2),
        ["long"] = new(Conv(1, 1, 2, 2), [1, 40, 5, 5], [8, 40, 5, 5], true, 2),
    };

    public static TheoryData<string, string> CaseLabels() => Emu16.ByType(Cases.Keys.Order(StringComparer.Ordinal));

    private static Graph Build(string name, Case c, DType t)
    {
        var b = new GraphBuilder(name);
        var xs = b.Input("x", TensorType.Of(t, c.X));
        var ws = b.Param("w", TensorType.Of(t, c.W));
        var ins = c.Bias ? new[] { xs, ws, b.Param("b", TensorType.Of(t, c.W[0])) } : new[] { xs, ws };
        b.Output(b.Apply(c.Op, "y", ins));
        return b.Build();
    }

    /// <summary>The same graph with every value float64 (the reference).</summary>
    private static Graph F64(Graph g) => g with
    {
        Inputs = g.Inputs.Select(d => d with { Type = d.Type with { DType = DType.F64 } }).ToArray(),
        Params = g.Params.Select(d => d with { Type = d.Type with { DType = DType.F64 } }).ToArray(),
        Nodes = g.Nodes.Select(n => n with { Types = n.Types.Select(t => t with { DType = DType.F64 }).ToArray() })
            .ToArray(),
    };

    [Theory]
    [MemberData(nameof(CaseLabels))]
    public void TheImplicitGemmMatchesTheReferenceWithinItsRoundings(string type, string label)
    {
        TestKernels.RequireEmulator();
        var dt = type == "bf16" ? DType.BF16 : DType.F16;
        var c = Cases[label];
        var g = Build("igemm_" + label, c, dt);
        var plan = CudaCodegen.Lower(g, OneNodeEmu.Tunables(g, new() { ["gemm"] = 2, ["tile"] = c.Tile }));
        // one launch of one kernel, no GEMM call and no scratch: nothing is unfolded into memory
        var launch = Assert.IsType<KernelLaunch>(Assert.Single(plan.Steps));
        var kernel = Assert.Single(plan.Kernels);
        Assert.Equal("conv_igemm", kernel.Kind);
        Assert.Empty(plan.Scratch);
        var tile = ConvIgemmModel.Tiles[c.Tile];
        Assert.Contains($"_t{tile.M}x{tile.N}_{type}_", kernel.Name, StringComparison.Ordinal);
        Assert.Equal(tile.WarpsM * tile.WarpsN * 32, launch.Block.X);

        var rng = new Random(label.GetHashCode(StringComparison.Ordinal) ^ (int)dt);
        Tensor Rand(TensorType t) => Tensor.FromDoubles(t, Enumerable.Range(0, (int)t.Shape.Elements)
            .Select(_ => rng.NextDouble() * 2 - 1).ToArray());
        var inputs = new Dictionary<string, Tensor> { ["x"] = Rand(g.Inputs[0].Type) };
        var weights = g.Params.ToDictionary(p => p.Name, p => Rand(p.Type));
        var got = EmuPlanRunner.Run(plan, g, weights, inputs)[g.Outputs[0]].ToDoubles();
        var g64 = F64(g);
        var want = IR.Reference.ReferenceExecutor.Run(g64, weights, inputs)[g.Outputs[0]].ToDoubles();
        Tensor Abs(Tensor t) => Tensor.FromDoubles(t.Type with { DType = DType.F64 },
            t.ToDoubles().Select(Math.Abs).ToArray());
        var mag = IR.Reference.ReferenceExecutor.Run(g64, weights.ToDictionary(p => p.Key, p => Abs(p.Value)),
            inputs.ToDictionary(p => p.Key, p => Abs(p.Value)))[g.Outputs[0]].ToDoubles();
        int k = c.W[1] * c.W[2] * c.W[3] + (c.Bias ? 1 : 0);
        double u = Emu16.Unit(dt), eps = Math.Pow(2, -24), gamma = k * eps / (1 - k * eps);
        double eta = dt == DType.F16 ? Math.Pow(2, -25) : 0, worst = 0;
        for (int i = 0; i < got.Length; i++)
        {
            double bound = u * Math.Abs(want[i]) + (1 + u) * gamma * mag[i] + eta, diff = Math.Abs(got[i] - want[i]);
            Assert.True(diff <= bound, $"{type} {label} y[{i}]: got {got[i]:R}, want {want[i]:R}, |diff| {diff:E2} > "
                + $"bound {bound:E2}");
            if (bound > 0) worst = Math.Max(worst, diff / bound);
        }
        double rel = Error.RelL2(got, want);
        TestContext.Current.TestOutputHelper?.WriteLine($"{type} {label}: relative L2 {rel:E2} (u = {u:E2}), worst "
            + $"|diff| / bound {worst:F3}");
        Assert.True(rel <= u, $"{type} {label}: relative L2 {rel:E2} > u");
        Assert.True(rel > 0, "no rounding at all: the output was not stored in 16 bits");
    }
}
