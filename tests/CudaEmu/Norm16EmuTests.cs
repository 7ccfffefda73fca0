using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// The forward norm kernels (layer_norm_first/last.cu.sbn, grn.cu.sbn, batch_norm_train.cu.sbn) in bf16 and fp16
/// (issue 22): a one-node graph declared 16-bit lowers to the same kernels with 16-bit loads and stores; the
/// statistics (means, variances, sums of squares, GRN factors) stay float32, in scratch where they cross kernels.
/// Inputs are random 16-bit values, read exactly; every output element is a float32 value rounded once by its store
/// (y; batch_norm's updated running mean and variance too). So against the float64 reference of the same graph in
/// float32 on those values, each output's relative L2 error is at most the unit roundoff, 2⁻⁸ for bf16 and 2⁻¹¹
/// for fp16, plus the float32 error of the normalisation (sums over at most a few hundred values, a reciprocal square
/// root: well under 1e-5). The grads (grad_layer_norm.cu.sbn, grad_grn.cu.sbn, batch_norm_train.cu.sbn's backward) are
/// checked the same way: dx, dweight and dbias are float32 results rounded once, and the float32 error of their sums
/// is the 1e-5 that NormGradEmuTests allows the float32 kernels. The plan passes OneNodeEmu's source checks (with
/// NVRTC for compute_80/90) and every kernel also compiles to CUBIN for sm_80/90.
/// </summary>
public sealed class Norm16EmuTests
{
    private const double Float32Slack = 1e-5;

    public static TheoryData<string, string> Cases()
    {
        var d = new TheoryData<string, string>();
        foreach (var t in new[] { "bf16", "fp16" })
        {
            foreach (var c in new[] { "ln_first", "ln_first_batch1_odd", "ln_last", "ln_last_batch1_odd",
                "ln_last_long", "grn", "grn_batch1_odd_no_beta", "bn_train", "bn_train_batch1_odd" })
            {
                d.Add(t, c);
            }
        }
        return d;
    }

    // sw-fmnist's shapes, odd ones, batch 1; ln_last_batch1_odd has a partial register slot, ln_last_long a row too
    // long for registers
    private static (Op Op, int[][] Shapes) Case(string c)
    {
        var first = new LayerNorm(1e-6, NormLayout.ChannelsFirst);
        var last = new LayerNorm(1e-6, NormLayout.ChannelsLast);
        var bn = new BatchNorm(1e-5, 0.1, Mode.Train);
        return c switch
        {
            "ln_first" => (first, [[2, 24, 7, 7], [24], [24]]),
            "ln_first_batch1_odd" => (first, [[1, 13, 5, 3], [13], [13]]),
            "ln_last" => (last, [[2, 7, 7, 96], [96], [96]]),
            "ln_last_batch1_odd" => (last, [[1, 5, 3, 100], [100], [100]]),
            "ln_last_long" => (last, [[2, 3, 700], [700], [700]]),
            "grn" => (new Grn(1e-6), [[2, 7, 7, 96], [1, 1, 1, 96], [1, 1, 1, 96]]),
            "grn_batch1_odd_no_beta" => (new Grn(1e-6), [[1, 5, 3, 37], [1, 1, 1, 37]]),
            "bn_train" => (bn, [[4, 24, 7, 7], [24], [24], [24], [24]]),
            "bn_train_batch1_odd" => (bn, [[1, 7, 5, 3], [7], [7], [7], [7]]),
            _ => throw new ArgumentException(c),
        };
    }

    public static TheoryData<string, string> GradCases()
    {
        var d = new TheoryData<string, string>();
        foreach (var t in new[] { "bf16", "fp16" })
        {
            foreach (var c in new[] { "ln_first", "ln_last", "ln_last_batch1_odd", "grn", "grn_batch1_odd_no_beta",
                "bn_train", "bn_train_batch1_odd" })
            {
                d.Add(t, c);
            }
        }
        return d;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void TheSixteenBitKernelMatchesTheReferenceWithinOneRounding(string type, string c)
    {
        var dt = type == "bf16" ? DType.BF16 : DType.F16;
        var (op, shapes) = Case(c);
        Check(type, c, dt, t => OpCatalog.OneNode($"n{t.Name()}_{c}", op, shapes.Select(s => TensorType.Of(t, s))
            .ToArray()));
    }

    [Theory]
    [MemberData(nameof(GradCases))]
    public void TheSixteenBitGradMatchesTheReferenceWithinOneRounding(string type, string c)
    {
        var dt = type == "bf16" ? DType.BF16 : DType.F16;
        var (op, shapes) = Case(c);
        // every input with a gradient (x, weight, bias; gamma and beta for grn), from the gradient of output 0
        int[] wrt = op is Grn && shapes.Length == 2 ? [0, 1] : [0, 1, 2];
        Check(type, "grad_" + c, dt, t =>
        {
            var fwd = shapes.Select(s => TensorType.Of(t, s)).ToArray();
            var outs = op.Infer(fwd);
            return OpCatalog.OneNode($"g{t.Name()}_{c}", new Grad(op, Vec.Of(wrt), Vec.Of(0)),
                [.. fwd, .. outs, outs[0]]);
        });
    }

    // the graph of `graph` in dt, emulated on random dt inputs, against the reference of the graph in float32
    private static void Check(string type, string c, DType dt, Func<DType, Graph> graph)
    {
        TestKernels.RequireEmulator();
        var (g16, g32) = (graph(dt), graph(DType.F32));
        var op = g16.Nodes[0].Op;
        var plan = OneNodeEmu.Lower(g16, null);
        foreach (var k in plan.Kernels)
        {
            Assert.Matches($"_{type}_[0-9a-f]{{8}}$", k.Name);
            Assert.Contains("swc_round_" + type, k.Source, StringComparison.Ordinal);
        }

        // random inputs rounded to the 16-bit type: the kernel reads them exactly as the reference does; a variance
        // positive
        var rng = new Random(c.Aggregate((int)dt, (h, ch) => h * 31 + ch)); // the same values every run
        var inputs16 = new Dictionary<string, ushort[]>();
        var inputs32 = new Dictionary<string, Tensor>();
        foreach (var (decl, i) in g16.Inputs.Select((d, i) => (d, i)))
        {
            bool variance = op is BatchNorm && i == 4;
            var bits = Enumerable.Range(0, (int)decl.Type.Shape.Elements).Select(_ => Float16Bits.Round(
                (float)(variance ? 0.5 + rng.NextDouble() * 2 : rng.NextDouble() * 6 - 3), dt)).ToArray();
            inputs16[decl.Name] = bits;
            inputs32[decl.Name] = Tensor.Wrap(TensorType.Of(DType.F32, decl.Type.Shape.ToArray()),
                bits.Select(b => Float16Bits.Widen(b, dt)).ToArray());
        }
        var want = ReferenceExecutor.Run(g32, new Dictionary<string, Tensor>(), inputs32);
        Assert.Empty(plan.Derived);
        var outputs = Emu16.Run(plan, g16, inputs16);
        double bound = Emu16.Unit(dt) + Float32Slack;
        foreach (var (o, o32) in g16.Outputs.Zip(g32.Outputs))
        {
            var got = outputs[o].Select(b => (double)Float16Bits.Widen(b, dt)).ToArray();
            double err = Error.RelL2(got, want[o32].ToDoubles());
            TestContext.Current.TestOutputHelper?.WriteLine($"{type} {c} %{o}: relative L2 {err:E2}");
            Assert.True(err <= bound, $"{type} {c} %{o}: relative L2 {err:E2} > {bound:E2}");
            Assert.True(err > 0, $"{type} {c} %{o}: no rounding, the kernel is not 16-bit");
        }
        foreach (var k in plan.Kernels)
        {
            foreach (var arch in new[] { "sm_80", "sm_90" }) CudaKernelCompiler.Compile(k, arch);
        }
    }
}
