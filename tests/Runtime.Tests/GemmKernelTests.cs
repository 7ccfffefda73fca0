using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;
using ShiftWise.Runtime.Cpu;
using ShiftWise.Runtime.Native;
using static ShiftWise.Runtime.Tests.KernelHarness;

namespace ShiftWise.Runtime.Tests;

/// <summary>
/// <see cref="GemmKernel"/> against <see cref="ReferenceExecutor"/> for every flag combination of the gemm op and
/// for linear at ranks 2..4, with both GEMM backends. The bound is 1e-5 relative L2: the kernel is float32 against a float64 reference, each output a sum of at most ~100 products (√K·u ≈
/// 6e-7) followed by float32 epilogue steps of a few ulps each (GELU, GRN's scale), so 1e-5 has headroom while a
/// wrong index or a missed step (an O(1) error) still fails by orders of magnitude.
/// </summary>
public sealed class GemmKernelTests
{
    private const double Tol = 1e-5;

    public static TheoryData<bool, bool, GemmAct, bool, bool, bool> Flags()
    {
        var d = new TheoryData<bool, bool, GemmAct, bool, bool, bool>();
        foreach (bool inNchw in new[] { false, true })
        foreach (bool outNchw in new[] { false, true })
        foreach (var act in Enum.GetValues<GemmAct>())
        foreach (bool bias in new[] { false, true })
        foreach (bool grn in new[] { false, true })
        foreach (bool res in new[] { false, true })
        {
            d.Add(inNchw, outNchw, act, bias, grn, res);
        }
        return d;
    }

    /// <summary>Both backends, managed first: without OpenBLAS a test runs its managed half, then reports a skip.</summary>
    private static IEnumerable<BlasBackend> Backends() => [BlasBackend.Managed, BlasBackend.OpenBlas];

    private static void Require(BlasBackend backend)
    {
        var openBlas = NativeLibraries.Load(NativeLibraries.OpenBlas);
        Assert.SkipWhen(backend == BlasBackend.OpenBlas && !openBlas.Found,
            openBlas.Missing("The managed half of this test passed; the OpenBLAS half did not run."));
    }

    /// <summary>Builds the kernel directly (to choose the backend); <see cref="RunTwiceError"/>.</summary>
    private static double Error(Op op, BlasBackend backend, Tensor[] inputs)
    {
        Require(backend);
        return RunTwiceError(op, inputs, r => new GemmKernel(r) { Backend = backend });
    }

    [Theory]
    [MemberData(nameof(Flags))]
    public void EveryFlagCombinationMatchesTheReference(bool inNchw, bool outNchw, GemmAct act, bool bias, bool grn,
        bool res)
    {
        var op = new Gemm(inNchw, outNchw, act, bias, grn, 1e-6, res);
        int seed = (inNchw ? 1 : 0) + (outNchw ? 2 : 0) + 4 * (int)act + (bias ? 16 : 0) + (grn ? 32 : 0) + (res ? 64 : 0);
        var rng = new Random(seed);
        foreach (var backend in Backends())
        {
            for (int trial = 0; trial < 3; trial++)
            {
                // small random shapes, odd sizes included, then one past the managed GEMM's 120-row and 16-column tiles
                var (b, h, w, k, n) = trial < 2
                    ? (rng.Next(1, 4), rng.Next(1, 8), rng.Next(1, 8), rng.Next(1, 40), rng.Next(1, 40))
                    : (2, 13, 11, 37, 21);
                var inputs = GemmInputs(rng, op, b, h, w, k, n);
                double err = Error(op, backend, inputs);
                Assert.True(err <= Tol, $"{op} {backend} x={inputs[0].Shape} n={n}: relative L2 {err:e2} > {Tol:e0}");
            }
        }
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void LinearAtRanksTwoToFour(int rank)
    {
        var rng = new Random(rank);
        foreach (var backend in Backends())
        {
            for (int trial = 0; trial < 4; trial++)
            {
                var x = Rand(rng, RandShape(rng, rank, trial < 3 ? 7 : 30));
                int k = x.Shape[^1], n = rng.Next(1, trial < 3 ? 9 : 70);
                var w = Rand(rng, n, k);
                foreach (var inputs in new[] { new[] { x, w }, new[] { x, w, Rand(rng, n) } })
                {
                    double err = Error(new Linear(), backend, inputs);
                    Assert.True(err <= Tol, $"linear {backend} x={x.Shape} n={n}: relative L2 {err:e2} > {Tol:e0}");
                }
            }
        }
    }

    /// <summary>A stage-0-like pointwise pair (HW 56·56 would be slow in the reference; 24·24 keeps the shape class).</summary>
    [Fact]
    public void ConvNeXtBlockPairMatches()
    {
        var rng = new Random(1);
        var expand = new Gemm(true, false, GemmAct.Gelu, true, true, 1e-6, false);
        var project = new Gemm(false, true, GemmAct.None, true, false, 1e-6, true);
        foreach (var backend in Backends())
        {
            Assert.True(Error(expand, backend, GemmInputs(rng, expand, 1, 24, 24, 80, 320)) <= Tol);
            Assert.True(Error(project, backend, GemmInputs(rng, project, 1, 24, 24, 320, 80)) <= Tol);
        }
    }

    [Fact]
    public void NonF32AndOtherOpsAreRefusedNamingTheNode()
    {
        var x = TensorType.Of(DType.F64, 3, 4);
        var w = TensorType.Of(DType.F64, 2, 4);
        var e = Assert.Throws<IrException>(() => new GemmKernel(new KernelRequest(NodeFor(new Linear(), [x, w]), [x, w], [null, null])));
        Assert.Contains("%y (linear)", e.Message);
        Assert.Contains("f32", e.Message);
        var f = TensorType.Of(DType.F32, 3, 4);
        var relu = new Unary(UnaryKind.Relu);
        var e2 = Assert.Throws<IrException>(() => new GemmKernel(new KernelRequest(NodeFor(relu, [f]), [f], [null])));
        Assert.Contains("gemm and linear", e2.Message);
    }

    /// <summary>
    /// K = 0 leaves only the bias. Checked by hand: the reference executor sizes Linear's output from x's element
    /// count, which is 0 here, so it cannot serve as the oracle for this case.
    /// </summary>
    [Fact]
    public void ZeroDepthGivesTheBias()
    {
        var op = new Gemm(false, false, GemmAct.None, true, false, 1e-6, false);
        var types = new[] { TensorType.Of(DType.F32, 1, 2, 3, 0), TensorType.Of(DType.F32, 5, 0), TensorType.Of(DType.F32, 5) };
        foreach (var backend in Backends())
        {
            Require(backend);
            var kernel = new GemmKernel(new KernelRequest(NodeFor(op, types), types, [null, null, null])) { Backend = backend };
            float[] bias = [1, -2, 3, -4, 5];
            var y = new float[30];
            Array.Fill(y, float.NaN);
            kernel.Run([Buf.Of([]), Buf.Of([]), Buf.Of(bias)], [Buf.Of(y)]);
            for (int i = 0; i < y.Length; i++) Assert.Equal(bias[i % 5], y[i]);
        }
    }
}
