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

        var rng = new Random(label.Sum(ch => ch) * 31 + (int)dt);
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

    /// <summary>
    /// A test kernel: one warp loads A (16×16, row-major), B (16×8, k by n, row-major) and C (16×8 float) into the
    /// fragments of mma.m16n8k16 by the PTX ISA's formulas, element by element (written here independently of the
    /// kernel's loads: A's a_i row g for i in {0, 1, 4, 5} else g + 8, col 2t + (i &amp; 1) + 8 for i ≥ 4; B's b_i
    /// row 2t + (i &amp; 1) + 8 for i ≥ 2, col g; C's c_i row g + 8 for i ≥ 2, col 2t + (i &amp; 1); a register holds
    /// a_2j in its low half), calls swc_mma and stores D.
    /// </summary>
    private static CudaKernelSource MmaKernel(DType dt)
    {
        string type = Types16.Name(dt);
        return TestKernels.Cu("emu_test_mma_" + type, Types16.Prelude + "\n" + ConvIgemmModel.MmaSource(dt) + $$"""
            extern "C" __global__ void __launch_bounds__(32) mma_test(float* __restrict__ d,
                const unsigned short* __restrict__ a, const unsigned short* __restrict__ b, const float* __restrict__ c)
            {
                const unsigned lane = threadIdx.x, g = lane >> 2, t = lane & 3;
                unsigned af[4] = {0u, 0u, 0u, 0u}, bf[2] = {0u, 0u};
                float acc[4];
                for (unsigned i = 0; i < 8; ++i)
                {
                    const unsigned row = (i < 2 || (i >= 4 && i < 6)) ? g : g + 8;
                    const unsigned col = t * 2 + (i & 1) + (i >= 4 ? 8 : 0);
                    af[i / 2] |= (unsigned)a[row * 16 + col] << (16 * (i & 1));
                }
                for (unsigned i = 0; i < 4; ++i)
                {
                    const unsigned row = t * 2 + (i & 1) + (i >= 2 ? 8 : 0);
                    bf[i / 2] |= (unsigned)b[row * 8 + g] << (16 * (i & 1));
                }
                for (unsigned i = 0; i < 4; ++i) acc[i] = c[(i < 2 ? g : g + 8) * 8 + t * 2 + (i & 1)];
                swc_mma_{{type}}(acc, af, bf);
                for (unsigned i = 0; i < 4; ++i) d[(i < 2 ? g : g + 8) * 8 + t * 2 + (i & 1)] = acc[i];
            }
            """, "mma_test");
    }

    [Theory]
    [InlineData("bf16")]
    [InlineData("fp16")]
    public void ThePortableMmaIsAPlainMatrixProductOnTheIsaFragments(string type)
    {
        TestKernels.RequireEmulator();
        var dt = type == "bf16" ? DType.BF16 : DType.F16;
        var module = CudaEmulator.Compile(MmaKernel(dt));
        var rng = new Random(type.Length * 31);
        // 1: small integers, exact in 16 bits and in every float32 partial sum: D must equal A·B + C exactly (any
        // element taken from the wrong place shows); 2: random values, float32 sums: |D − A·B − C| ≤ γ_16·Σ|a·b|
        // (C is added first, exactly: its fma is the first of 16 roundings, so γ_16·(Σ|a·b| + |c|))
        for (int run = 0; run < 2; run++)
        {
            double Draw(int lo, int hi) => run == 0 ? rng.Next(lo, hi + 1) : rng.NextDouble() * 4 - 2;
            var a = Enumerable.Range(0, 256).Select(_ => Float16Bits.Round((float)Draw(-8, 8), dt)).ToArray();
            var b = Enumerable.Range(0, 128).Select(_ => Float16Bits.Round((float)Draw(-8, 8), dt)).ToArray();
            var c = Enumerable.Range(0, 128).Select(_ => (float)Draw(-100, 100)).ToArray();
            using var da = EmuBuffer.From(Emu16.Pack(a));
            using var db = EmuBuffer.From(Emu16.Pack(b));
            using var dc = EmuBuffer.From(c);
            using var dd = EmuBuffer.Alloc(128);
            module.Launch("mma_test", new Dim3(1), new Dim3(32), 0, dd.Ptr, da.Ptr, db.Ptr, dc.Ptr);
            dd.CheckGuards("d");
            var got = dd.Span.ToArray();
            double gamma = 16 * Math.Pow(2, -24) / (1 - 16 * Math.Pow(2, -24));
            for (int m = 0; m < 16; m++)
            {
                for (int n = 0; n < 8; n++)
                {
                    double want = c[m * 8 + n], mag = Math.Abs(c[m * 8 + n]);
                    for (int k = 0; k < 16; k++)
                    {
                        double p = (double)Float16Bits.Widen(a[m * 16 + k], dt) * Float16Bits.Widen(b[k * 8 + n], dt);
                        want += p;
                        mag += Math.Abs(p);
                    }
                    double bound = run == 0 ? 0 : gamma * mag;
                    Assert.True(Math.Abs(got[m * 8 + n] - want) <= bound, $"{type} run {run} D[{m},{n}]: got "
                        + $"{got[m * 8 + n]:R}, want {want:R}, bound {bound:E2}");
                }
            }
        }
    }

    [Fact]
    public void TheTensorCoreBranchIsWhatNvrtcCompilesForSm80AndNewer()
    {
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
        foreach (var dt in new[] { DType.BF16, DType.F16 })
        {
            var k = MmaKernel(dt);
            string ptx = dt == DType.BF16 ? "bf16" : "f16";
            foreach (var arch in new[] { "compute_80", "compute_90" })
            {
                var o = CudaKernelCompiler.Compile(k, arch).Output.Ptx;
                Assert.Contains($"mma.sync.aligned.m16n8k16.row.col.f32.{ptx}.{ptx}.f32", o, StringComparison.Ordinal);
                Assert.DoesNotContain("shfl.sync", o, StringComparison.Ordinal);
                Assert.False(CudaKernelCompiler.UsesLocalMemory(o), $"{k.Name} uses local memory for {arch}");
            }
            // below sm_80 the portable branch (what the emulator runs) compiles too
            var old = CudaKernelCompiler.Compile(k, "compute_75").Output.Ptx;
            Assert.DoesNotContain("mma.sync", old, StringComparison.Ordinal);
            Assert.Contains("shfl.sync", old, StringComparison.Ordinal);
        }
        // a conv whose input has more than 2^31 elements indexes in 64 bits (lowered and compiled, never run)
        var wide = Build("igemm_nvrtc_wide", new Case(Conv(2, 2, 1, 1), [40, 64, 1024, 1024], [64, 64, 3, 3], true, 0),
            DType.BF16);
        var widePlan = CudaCodegen.Lower(wide, OneNodeEmu.Tunables(wide, new() { ["gemm"] = 2, ["tile"] = 0 }));
        Assert.Contains("const long long m0 = (long long)blockIdx.x", widePlan.Kernels[0].Source,
            StringComparison.Ordinal);
        CudaCompileTests.CompilesForCompute80And90(widePlan);
        // every tile of a whole conv, bf16 and fp16, with and without bias (compute_80/90, every entry, no local
        // memory): the kernels the emulator tests run, on the tensor-core branch
        foreach (var (label, tile) in new[] { ("stem_t32", 2), ("stem_t64", 0), ("stem_t128", 1), ("down", 2) })
        {
            foreach (var dt in new[] { DType.BF16, DType.F16 })
            {
                var g = Build("igemm_nvrtc_" + label, Cases[label], dt);
                var plan = CudaCodegen.Lower(g, OneNodeEmu.Tunables(g, new() { ["gemm"] = 2, ["tile"] = tile }));
                CudaCompileTests.CompilesForCompute80And90(plan);
                foreach (var arch in new[] { "compute_80", "compute_90" })
                {
                    Assert.Contains("mma.sync.aligned.m16n8k16", CudaKernelCompiler.Compile(plan.Kernels[0], arch)
                        .Output.Ptx, StringComparison.Ordinal);
                }
            }
        }
    }

    [Fact]
    public void SixteenBitDenseConvsDefaultToIt_OthersAreRefusedNamingTheNode()
    {
        Graph One(DType dt, int groups, int w1)
        {
            var b = new GraphBuilder("igemm_choice");
            var xs = b.Input("x", TensorType.Of(dt, 1, 4, 6, 6));
            var ws = b.Param("w", TensorType.Of(dt, 4, w1, 3, 3));
            b.Output(b.Apply(new Conv2d(Vec.Of(1, 1), Vec.Of(1, 1), Vec.Of(1, 1), groups), "y", [xs, ws]));
            return b.Build();
        }
        foreach (var dt in new[] { DType.BF16, DType.F16 })
        {
            var plan = CudaCodegen.Lower(One(dt, 1, 4));
            Assert.Equal("conv_igemm", Assert.Single(plan.Kernels).Kind);
            Assert.Contains("_t32x32_", plan.Kernels[0].Name, StringComparison.Ordinal);
            var g = One(dt, 1, 4);
            var e = Assert.Throws<IrException>(() =>
                CudaCodegen.Lower(g, OneNodeEmu.Tunables(g, new() { ["tile"] = 3 })));
            Assert.Contains("%y", e.Message, StringComparison.Ordinal);
            Assert.Contains("tile = 3", e.Message, StringComparison.Ordinal);
            var dw = One(dt, 4, 1);
            Assert.Equal("conv2d", Assert.Single(CudaCodegen.Lower(dw).Kernels).Kind);
            e = Assert.Throws<IrException>(() =>
                CudaCodegen.Lower(dw, OneNodeEmu.Tunables(dw, new() { ["gemm"] = 2 })));
            Assert.Contains("%y", e.Message, StringComparison.Ordinal);
            Assert.Contains("groups = 4", e.Message, StringComparison.Ordinal);
        }
        // float32 keeps the direct kernel by default and im2col + GEMM as a choice; no implicit GEMM, no tile tunable
        var f = One(DType.F32, 1, 4);
        Assert.Equal("conv2d", Assert.Single(CudaCodegen.Lower(f).Kernels).Kind);
        Assert.Single(CudaCodegen.Lower(f, OneNodeEmu.Tunables(f, new() { ["gemm"] = 1 })).Steps.OfType<GemmCall>());
        var e32 = Assert.Throws<IrException>(() =>
            CudaCodegen.Lower(f, OneNodeEmu.Tunables(f, new() { ["gemm"] = 2 })));
        Assert.Contains("in bf16 or fp16", e32.Message, StringComparison.Ordinal);
        Assert.Throws<IrException>(() => CudaCodegen.Lower(f, OneNodeEmu.Tunables(f, new() { ["tile"] = 0 })));
    }

    [Fact]
    public void TheDefaultTileIsTheLargestThatStillFillsTheGpu()
    {
        Assert.Equal(1, ConvIgemmModel.DefaultTile(128L * 132 * 2, 64));
        Assert.Equal(0, ConvIgemmModel.DefaultTile(64L * 264, 64));
        Assert.Equal(0, ConvIgemmModel.DefaultTile(64L * 132, 128));
        Assert.Equal(2, ConvIgemmModel.DefaultTile(64L * 100, 64));
    }
}
