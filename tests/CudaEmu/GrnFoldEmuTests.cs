using ShiftWise.CodegenCuda;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;
using ShiftWise.Passes;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// GRN's apply folded into the next GEMM (<see cref="GemmGrnFold"/>, the fold-grn-apply pass) in the emulator: the
/// node alone (rows or NCHW in, rows or NCHW out, with and without residual) and a small ShiftWise_v2 end to end, in
/// float32 (relative L2 ≤ 1e-5 against float64) and in bf16 / fp16. Every plan is checked to be the folded one: GEMM,
/// GRN stats and scale, the weight fold, one strided-batched GEMM over the samples with a per-sample weight, and no
/// GRN apply launch (what would fail first if the fold silently stopped happening).
/// <para>
/// 16-bit bound of the node alone, with u the unit roundoff (2⁻⁸ bf16, 2⁻¹¹ fp16) and exact 16-bit inputs: u is
/// rounded twice (GEMM 1's output, then bias + GELU in place), the scaled weights once, GEMM 2's output once and its
/// epilogue (bias, residual) once; each is at most u relative per element and passes through sums of random-sign
/// terms without growing in relative L2, so relative L2 ≤ 5u + 1e-5 (float32 arithmetic). End to end the bound is
/// PrecisionEmuTests' 10u against float64.
/// </para>
/// </summary>
public sealed class GrnFoldEmuTests
{
    public static TheoryData<string> Layouts() => new("rows_in_rows_out_relu", "nchw_in_nchw_out_residual");

    // x (2, 3, 4, 12) rows or (2, 12, 3, 4) NCHW: P = 12 positions, K = 20 GRN channels, O = 9 outputs (P ≥ O)
    private static Graph Node(string layout, DType t)
    {
        bool nchw = layout.StartsWith("nchw", StringComparison.Ordinal);
        var op = new GemmGrnFold(nchw, GemmAct.Gelu, true, 1e-6, nchw ? GemmAct.None : GemmAct.Relu, nchw, nchw);
        var types = new List<TensorType>
        {
            nchw ? TensorType.Of(t, 2, 12, 3, 4) : TensorType.Of(t, 2, 3, 4, 12), TensorType.Of(t, 20, 12),
            TensorType.Of(t, 20), TensorType.Of(t, 1, 1, 1, 20), TensorType.Of(t, 9, 20), TensorType.Of(t, 9),
        };
        if (nchw) types.Add(TensorType.Of(t, 2, 9, 3, 4));
        return OpCatalog.OneNode($"grn_fold_{layout}_{t.Name()}", op, types);
    }

    /// <summary>The folded node's steps: the two GEMMs, stats, scale and fold launches, no apply.</summary>
    private static void AssertFolded(CudaPlan plan, string node, int batch, long weights)
    {
        var steps = plan.Steps.Where(s => s.Node == node).ToList();
        var launches = steps.OfType<KernelLaunch>().ToList();
        Assert.DoesNotContain(launches, l => l.Entry.EndsWith("_apply", StringComparison.Ordinal));
        Assert.Single(launches, l => l.Entry.EndsWith("_stats", StringComparison.Ordinal));
        Assert.Single(launches, l => l.Entry.EndsWith("_scale", StringComparison.Ordinal));
        Assert.Single(launches, l => plan.Kernel(l.Kernel).Kind == "grn_fold");
        var gemms = steps.OfType<GemmCall>().ToList();
        Assert.Equal(2, gemms.Count);
        Assert.Equal(batch, gemms[1].Batch);
        Assert.Contains(weights, new[] { gemms[1].StrideA, gemms[1].StrideB });
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void TheFoldedNodeMatchesTheReferenceInFloat32(string layout)
    {
        var g = Node(layout, DType.F32);
        var plan = OneNodeEmu.Lower(g, null);
        AssertFolded(plan, "d", 2, 9 * 20);
        double err = OneNodeEmu.Emulate(plan, g, OneNodeEmu.Inputs(g, 7));
        TestContext.Current.TestOutputHelper?.WriteLine($"{layout} f32: relative L2 {err:E2}");
        Assert.True(err <= 1e-5, $"{layout}: relative L2 {err:E2}");
    }

    public static TheoryData<string, string> Sixteen() => Emu16.ByType(["rows_in_rows_out_relu",
        "nchw_in_nchw_out_residual"]);

    [Theory]
    [MemberData(nameof(Sixteen))]
    public void TheFoldedNodeIn16BitsMatchesTheReferenceWithinItsRoundings(string type, string layout)
    {
        TestKernels.RequireEmulator();
        var dt = type == "bf16" ? DType.BF16 : DType.F16;
        var (g16, g32) = (Node(layout, dt), Node(layout, DType.F32));
        var plan = CudaCodegen.Lower(g16);
        AssertFolded(plan, "d", 2, 9 * 20);
        Assert.All(plan.Steps.OfType<GemmCall>(), c => Assert.Equal(dt, c.Storage));
        var (bits, widened) = Emu16.Inputs(g16, dt, new Random(layout.Length * 7 + (int)dt), scale: 1);
        var in16 = g16.Inputs.ToDictionary(d => d.Name, d => dt == DType.BF16 ? Tensor.Wrap(d.Type, bits[d.Name])
            : Tensor.Wrap(d.Type, bits[d.Name].Select(BitConverter.UInt16BitsToHalf).ToArray()));
        var none = new Dictionary<string, Tensor>();
        var got = EmuPlanRunner.Run(plan, g16, none, in16)[g16.Outputs[0]];
        var want = ReferenceExecutor.Run(g32, none, widened)[g32.Outputs[0]];
        double err = Error.RelL2(got.ToDoubles(), want.ToDoubles()), u = Emu16.Unit(dt), bound = 5 * u + 1e-5;
        TestContext.Current.TestOutputHelper?.WriteLine($"{type} {layout}: relative L2 {err:E2} = {err / u:F2}u "
            + $"(bound {bound:E2})");
        Assert.True(err <= bound, $"{type} {layout}: relative L2 {err:E2} > {bound:E2}");
        Assert.True(err > 0, $"{type} {layout}: no rounding, the plan is not 16-bit");
        Emu16.Compiles(plan);
    }

    // fp16 end to end: PrecisionEmuTests' nets fold their first stage too (7×7 = 49 positions, 8 channels)
    public static TheoryData<Precision> Precisions() => new(Precision.Fp32, Precision.Bf16);

    /// <summary>
    /// A ShiftWise_v2 of two stages at 16×16 (batch 2): stage 0 (4×4 = 16 positions, 8 channels) folds, stage 1
    /// (2×2 = 4 positions, 16 channels) keeps its GRN apply.
    /// </summary>
    [Theory]
    [MemberData(nameof(Precisions))]
    public void ASmallShiftWiseV2FoldsItsFirstStage(Precision p)
    {
        TestKernels.RequireEmulator();
        var args = new ModelArgs
        {
            Depths = [1, 1, 0, 0], Dims = [8, 16, 16, 32], KernelSize = [5, 3, 3, 3, 3], ImageSize = 16, NumClasses = 5,
            Batch = 2, Seed = 4,
        };
        var src = ModelSource.Load("sw-v2", args, withWeights: true);
        var ctx = new PassContext(src.Graph, src.Weights);
        new PassManager(Pipelines.Get("inference", p)).Run(ctx);
        var g = ctx.Graph;
        var folded = Assert.Single(g.Nodes, n => n.Op is GemmGrnFold);
        var plan = CudaCodegen.Lower(g);
        AssertFolded(plan, folded.Name, 2, 8 * 32);
        var kept = Assert.Single(g.Nodes, n => n.Op is Gemm { HasGrn: true });
        Assert.Contains(plan.Steps.OfType<KernelLaunch>(), l => l.Node == kept.Name
            && l.Entry.EndsWith("_apply", StringComparison.Ordinal));
        var inputs = SwLayers.Input(src.Graph, 12);
        var o = g.Outputs[0];
        var got = EmuPlanRunner.Run(plan, g, ctx.Weights, inputs)[o].ToDoubles();
        var want = ReferenceExecutor.Run(src.Graph, src.Weights, inputs)[src.Graph.Outputs[0]].ToDoubles();
        double err = Error.RelL2(got, want);
        double bound = p == Precision.Fp32 ? 1e-5 : 10 * Emu16.Unit(p.Storage());
        TestContext.Current.TestOutputHelper?.WriteLine($"{p.Name()}: logits relative L2 {err:E2} (bound {bound:E2})");
        Assert.True(err <= bound, $"{p.Name()}: logits relative L2 {err:E2} > {bound:E2}");
    }
}
