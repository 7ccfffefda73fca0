using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;
using ShiftWise.Runtime.Cpu;
using static ShiftWise.Runtime.Tests.KernelHarness;

namespace ShiftWise.Runtime.Tests;

/// <summary>
/// The register-tiled GEMM (<see cref="GemmTiled"/>, <see cref="GemmKernel"/>'s Tiled backend) on both ISA paths
/// against <see cref="ReferenceExecutor"/>: every epilogue combination of the layouts it covers, at shapes that are
/// not multiples of its tiles (6 weight rows × 2 vectors of positions; 4 × 3 dot products, vectors along K), and
/// its GRN fold (<see cref="GemmGrnFoldKernel"/>). Bound 1e-5 relative L2, as in <see cref="GemmKernelTests"/>:
/// float32 sums of at most ~100 products against float64 (√K·u ≈ 6e-7) plus a few ulps of epilogue, while a wrong
/// index, a lost edge row or a missed step is an O(1) error.
/// </summary>
public sealed class GemmTiledTests
{
    private const double Tol = 1e-5;

    public static TheoryData<int, bool, GemmAct, bool, bool, bool> Flags()
    {
        var d = new TheoryData<int, bool, GemmAct, bool, bool, bool>();
        foreach (int isa in new[] { (int)GemmVectors.Avx2, (int)GemmVectors.Avx512 })
        foreach (bool inNchw in new[] { false, true })
        foreach (var act in Enum.GetValues<GemmAct>())
        foreach (bool bias in new[] { false, true })
        foreach (bool grn in new[] { false, true })
        foreach (bool res in new[] { false, true })
        {
            // channel-last input runs tiled only with out_nchw and without GRN
            if (!inNchw && grn) continue;
            d.Add(isa, inNchw, act, bias, grn, res);
        }
        return d;
    }

    private static void Require(GemmVectors isa) =>
        Assert.SkipUnless(GemmIsa.Supported(isa), $"this CPU does not run {isa}");

    private static double GemmError(Gemm op, GemmVectors isa, Tensor[] inputs) => RunTwiceError(op, inputs, r =>
    {
        var kernel = new GemmKernel(r) { Isa = isa, Backend = BlasBackend.Tiled };
        Assert.True(kernel.Tiled, $"{op} should run tiled on {isa}");
        return kernel;
    });

    [Theory]
    [MemberData(nameof(Flags))]
    public void EveryEpilogueMatchesTheReferenceAtRaggedShapes(int isaValue, bool inNchw, GemmAct act, bool bias,
        bool grn, bool res)
    {
        var isa = (GemmVectors)isaValue;
        Require(isa);
        foreach (bool outNchw in inNchw ? new[] { false, true } : new[] { true })
        {
            var op = new Gemm(inNchw, outNchw, act, bias, grn, 1e-6, res);
            var rng = new Random(isaValue * 1000 + (inNchw ? 1 : 0) + (outNchw ? 2 : 0) + 4 * (int)act
                + (bias ? 32 : 0) + (grn ? 64 : 0) + (res ? 128 : 0));
            // (batch, h, w, k, n): tiny, then past one tile and one strip (6·2·16 + odd), K not a multiple of 8
            (int, int, int, int, int)[] shapes =
                [(1, 1, 1, 1, 1), (2, 5, 7, 13, 11), (rng.Next(1, 3), 7, 7, 37, 29), (1, 9, 13, 67, 50)];
            foreach (var (b, h, w, k, n) in shapes)
            {
                var inputs = GemmInputs(rng, op, b, h, w, k, n);
                double err = GemmError(op, isa, inputs);
                Assert.True(err <= Tol, $"{op} {isa} x={inputs[0].Shape} n={n}: relative L2 {err:e2} > {Tol:e0}");
            }
        }
    }

    /// <summary>
    /// A stage-3-like pair: 7×7 positions (a full strip and a ragged one), K long enough to run in several blocks
    /// (256 or 128 per block of the row tile, 512 per block of the dot tile) with a ragged last block.
    /// </summary>
    [Theory]
    [InlineData((int)GemmVectors.Avx2)]
    [InlineData((int)GemmVectors.Avx512)]
    public void StageThreePairMatches(int isaValue)
    {
        var isa = (GemmVectors)isaValue;
        Require(isa);
        var rng = new Random(3);
        var expand = new Gemm(true, false, GemmAct.Gelu, true, true, 1e-6, false);
        var project = new Gemm(false, true, GemmAct.None, true, false, 1e-6, true);
        double e1 = GemmError(expand, isa, GemmInputs(rng, expand, 2, 7, 7, 600, 70));
        double e2 = GemmError(project, isa, GemmInputs(rng, project, 2, 7, 7, 1100, 30));
        Assert.True(e1 <= Tol && e2 <= Tol, $"{isa}: relative L2 {e1:e2} (expand), {e2:e2} (project) > {Tol:e0}");
    }

    /// <summary>
    /// The folded GRN pair off the tiled path (two GEMM kernels, GRN applied to the intermediate): at batch 1, and at
    /// batch 3, where it runs one sample at a time (GemmGrnFoldKernel.RunPerSample), with and without the
    /// residual, on OpenBLAS (plain and blocked) and the managed GEMM; against the reference executor.
    /// </summary>
    [Theory]
    [InlineData((int)BlasBackend.OpenBlas)]
    [InlineData((int)BlasBackend.OpenBlasBlocked)]
    [InlineData((int)BlasBackend.Managed)]
    public void GrnFoldOffTheTiledPathMatchesTheReference(int backendValue)
    {
        var backend = (BlasBackend)backendValue;
        var lib = ShiftWise.Runtime.Native.NativeLibraries.Load(ShiftWise.Runtime.Native.NativeLibraries.OpenBlas);
        Assert.SkipUnless(lib.Found || backend == BlasBackend.Managed, lib.Missing("This backend is OpenBLAS."));
        var rng = new Random(11 + backendValue);
        foreach (var (b, residual) in new[] { (1, true), (3, true), (3, false) })
        {
            var fold = new GemmGrnFold(true, GemmAct.Gelu, true, 1e-6, GemmAct.None, true, residual);
            int h = 5, w = 9, c = 19, e = 4 * 19;
            var inputs = new List<Tensor>
            {
                Rand(rng, b, c, h, w), Rand(rng, new Shape(e, c), 1 / Math.Sqrt(c)), Rand(rng, e),
                Rand(rng, 1, 1, 1, e), Rand(rng, new Shape(c, e), 1 / Math.Sqrt(e)), Rand(rng, c),
            };
            if (residual) inputs.Add(Rand(rng, b, c, h, w));
            // twice (RunTwiceError): the second run reuses the per-sample kernels and must give the same bits
            double err = RunTwiceError(fold, inputs.ToArray(), r =>
            {
                var kernel = new GemmGrnFoldKernel(r) { Backend = backend };
                Assert.False(kernel.Tiled);
                return kernel;
            });
            Assert.True(err <= Tol, $"grn fold {backend} batch {b} residual {residual}: relative L2 {err:e2}");
        }
    }

    /// <summary>
    /// The folded GRN pair on the tiled path: GRN's scale goes into the second GEMM's weights per sample, and the
    /// intermediate is channel-first; against the reference executor's gemm_grn_fold.
    /// </summary>
    [Theory]
    [InlineData((int)GemmVectors.Avx2)]
    [InlineData((int)GemmVectors.Avx512)]
    public void GrnFoldMatchesTheUnfoldedPair(int isaValue)
    {
        var isa = (GemmVectors)isaValue;
        Require(isa);
        var rng = new Random(7);
        var fold = new GemmGrnFold(true, GemmAct.Gelu, true, 1e-6, GemmAct.None, true, true);
        int b = 2, h = 5, w = 9, c = 19, e = 4 * 19;
        Tensor[] inputs =
        [
            Rand(rng, b, c, h, w), Rand(rng, new Shape(e, c), 1 / Math.Sqrt(c)), Rand(rng, e), Rand(rng, 1, 1, 1, e),
            Rand(rng, new Shape(c, e), 1 / Math.Sqrt(e)), Rand(rng, c), Rand(rng, b, c, h, w),
        ];
        var expected = ReferenceExecutor.Evaluate(fold, inputs)[0].ToDoubles();
        var types = inputs.Select(t => t.Type).ToArray();
        var kernel = new GemmGrnFoldKernel(new KernelRequest(NodeFor(fold, types), types, new Tensor?[types.Length]))
        {
            Isa = isa,
            Backend = BlasBackend.Tiled,
        };
        Assert.True(kernel.Tiled);
        var y = new float[expected.Length];
        Array.Fill(y, float.NaN);
        kernel.Run(inputs.Select(t => Buf.Of(t.ToDoubles().Select(v => (float)v).ToArray())).ToArray(), [Buf.Of(y)]);
        double err = RelL2(y.Select(v => (double)v).ToArray(), expected);
        Assert.True(err <= Tol, $"grn fold {isa}: relative L2 {err:e2} > {Tol:e0}");
    }

    public static TheoryData<GemmAct, bool, bool, bool> BlockedFlags()
    {
        var d = new TheoryData<GemmAct, bool, bool, bool>();
        foreach (var act in Enum.GetValues<GemmAct>())
        foreach (bool bias in new[] { false, true })
        foreach (bool grn in new[] { false, true })
        foreach (bool res in new[] { false, true })
        {
            d.Add(act, bias, grn, res);
        }
        return d;
    }

    /// <summary>
    /// The blocked OpenBLAS path (<see cref="GemmBlocked"/>: the expand GEMM, in_nchw with a channel-last output,
    /// each block's epilogue right after its BLAS call) with 16 positions per block, so that a sample spans several
    /// blocks and a ragged last one; with 16 and 24 channels per block (ragged last ones too), alone and with 16
    /// positions per block; and once with the default block size, as Auto runs it.
    /// </summary>
    [Theory]
    [MemberData(nameof(BlockedFlags))]
    public void BlockedOpenBlasMatchesTheReference(GemmAct act, bool bias, bool grn, bool res)
    {
        var lib = ShiftWise.Runtime.Native.NativeLibraries.Load(ShiftWise.Runtime.Native.NativeLibraries.OpenBlas);
        Assert.SkipUnless(lib.Found, lib.Missing("The blocked path runs on OpenBLAS only."));
        var op = new Gemm(true, false, act, bias, grn, 1e-6, res);
        var rng = new Random(5 + (int)act * 8 + (bias ? 1 : 0) + (grn ? 2 : 0) + (res ? 4 : 0));
        foreach (var (b, h, w, k, n, rows, cols) in new[]
        {
            (2, 5, 7, 13, 11, 16, 0), (1, 9, 13, 67, 50, 16, 0), (2, 7, 7, 40, 30, 0, 0), (2, 5, 7, 13, 50, 0, 16),
            (1, 9, 13, 67, 61, 16, 24),
        })
        {
            var inputs = GemmInputs(rng, op, b, h, w, k, n);
            double err = RunTwiceError(op, inputs, r =>
            {
                var kernel = new GemmKernel(r)
                {
                    Backend = BlasBackend.OpenBlasBlocked, BlockRows = rows, BlockCols = cols,
                };
                Assert.True(kernel.Blocked);
                return kernel;
            });
            Assert.True(err <= Tol, $"{op} blocked x={inputs[0].Shape} n={n}: relative L2 {err:e2} > {Tol:e0}");
        }
    }

    [Fact]
    public void TheTiledGemmFollowsTheIsaOfTheGeneratedKernels()
    {
        using (CpuIsa.Force(CpuIsaKind.Avx2))
        {
            Assert.Equal(GemmIsa.Supported(GemmVectors.Avx2) ? GemmVectors.Avx2 : GemmVectors.None, GemmIsa.Current);
        }
        if (!CpuIsa.HasAvx512) return;
        using (CpuIsa.Force(CpuIsaKind.Avx512))
        {
            Assert.Equal(GemmVectors.Avx512, GemmIsa.Current);
        }
    }
}
