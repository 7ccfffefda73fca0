using ShiftWise.CodegenCuda;
using ShiftWise.Frontend.Tables;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// conv2d, mean and the layout kernels (channel_select, concat, permute, forward and backward) in bf16 and fp16
/// (issue 22): a one-node graph whose values are declared 16-bit lowers to the same kernels with 16-bit loads and
/// stores and float32 arithmetic (<see cref="Emu16"/>). Inputs are random 16-bit values; each output is checked
/// against the float64 reference of the same graph in float32 on those values (exact inputs), element by element:
/// <c>|got − want| ≤ (u + 2⁻²⁴)·|want| + (1 + u)·γ_K·mag + η</c>, where u is the unit roundoff (2⁻⁸ bf16, 2⁻¹¹ fp16:
/// the store's one rounding), K the float32 roundings of the accumulation (conv: one fmaf per weight tap; mean: one
/// add per value, the scale and 1/count; channel_select's gradient: one add per repeat), γ_K = K·2⁻²⁴/(1 − K·2⁻²⁴),
/// mag the reference on the inputs' absolute values (Σ|x·w| + |bias|, mean |x|), η half the smallest subnormal step
/// (2⁻²⁵ fp16) and 2⁻²⁴·|want| the reference's own float32 output. The copies (channel_select, concat and permute,
/// forward, and the gradients of concat and permute) must give the input bits exactly. The kernels follow the
/// conventions of <see cref="OneNodeEmu.Lower"/> (NVRTC for compute_80/90, no local memory, deterministic rendering)
/// and compile to CUBIN for sm_80/90.
/// </summary>
public sealed class Conv16EmuTests
{
    /// <summary>A case: the op, its input shapes, tunables, float32 roundings per output, whether it copies.</summary>
    private sealed record Case(Op Op, int[][] Shapes, Dictionary<string, int> Tunables, int Terms, bool Copy);

    private static readonly Dictionary<string, Case> Cases = BuildCases();

    private static Dictionary<string, int> Block(int b) => new() { ["block"] = b };

    private static Dictionary<string, Case> BuildCases()
    {
        var c = new Dictionary<string, Case>();
        void Conv(string label, int[] x, int[] w, int s, int p, int d, int groups, bool bias, int channels, int block)
        {
            var op = new Conv2d(Vec.Of(s, s), Vec.Of(p, p), Vec.Of(d, d), groups);
            int[][] shapes = bias ? [x, w, [w[0]]] : [x, w];
            // the direct kernel (16-bit dense convs default to the implicit GEMM: ConvIgemmEmuTests)
            c["conv_" + label] = new(op, shapes, new() { ["block"] = block, ["channels"] = channels, ["gemm"] = 0 },
                w[1] * w[2] * w[3], false);
        }
        // sw-fmnist: the stride-4 stem as two 3x3 stride-2 convolutions, the 2x2 stride-2 downsample of stage 0,
        // the 3x3 and 7x7 depthwise convolutions of its 7x7 stage, a 1x1 expansion with bias
        Conv("stem1", [2, 1, 28, 28], [12, 1, 3, 3], 2, 1, 1, 1, true, 4, 256);
        Conv("stem2", [2, 12, 14, 14], [24, 12, 3, 3], 2, 1, 1, 1, true, 2, 128);
        Conv("down", [2, 24, 7, 7], [48, 24, 2, 2], 2, 0, 1, 1, true, 4, 64);
        Conv("depthwise3", [2, 24, 7, 7], [24, 1, 3, 3], 1, 1, 1, 24, true, 1, 256);
        Conv("depthwise7", [2, 24, 7, 7], [24, 1, 7, 7], 1, 3, 1, 24, false, 1, 32);
        Conv("pointwise", [2, 24, 7, 7], [96, 24, 1, 1], 1, 0, 1, 1, true, 8, 256);
        // batch 1, odd sizes: grouped and dilated without bias, a long accumulation (1000 taps, no unrolling)
        Conv("odd_grouped", [1, 6, 11, 13], [4, 3, 3, 3], 2, 1, 2, 2, false, 2, 64);
        Conv("batch1_long", [1, 40, 9, 9], [8, 40, 5, 5], 1, 2, 1, 1, true, 1, 32);
        // mean: K = count adds, the product with 1/count and 1/count's own rounding
        void Mean(string label, int[] x, int[] axes, bool keep, int count, int block) =>
            c["mean_" + label] = new(new Mean(Vec.Of(axes), keep), [x], Block(block), count + 2, false);
        Mean("gap", [2, 96, 7, 7], [2, 3], false, 49, 256);
        Mean("se", [2, 48, 4, 4], [2, 3], true, 16, 64);
        Mean("block", [1, 3, 48, 48], [2, 3], false, 48 * 48, 256);
        Mean("batch1_odd", [1, 5, 3, 7], [1, 2, 3], false, 105, 32);
        // layout: the forward op (a copy) and its gradient (dy=[0]) with respect to every input
        // (channel_select's gradient sums the gradients of a channel's picks in float32: K = the most picks of one
        // channel, and it copies where no channel is picked twice)
        void Layout(string label, Op op, int[][] x, int block)
        {
            c["layout_" + label] = new(op, x, Block(block), 0, true);
            int terms = op is ChannelSelect s ? s.Indices.CountBy(i => i).Max(p => p.Value) : 0;
            c["layout_grad_" + label] = new(new Grad(op, Vec.Of(Enumerable.Range(0, x.Length).ToArray()), Vec.Of(0)),
                x, Block(block), terms, terms <= 1);
        }
        var split = SwTables.Split(24, new ShiftWiseV2Options().GhostRatio);
        Layout("channel_select_rep", new ChannelSelect(1, Vec.Of(split.Rep)), [[2, 24, 7, 7]], 256);
        Layout("channel_select_ghost", new ChannelSelect(1, Vec.Of(split.Ghost)), [[2, 24, 7, 7]], 128);
        // repeated (up to three times: the gradient sums them) and unpicked channels, batch 1
        Layout("channel_select_repeats", new ChannelSelect(1, Vec.Of(3, 0, 3, 3, 5, 0)), [[1, 7, 5, 3]], 32);
        Layout("concat", new Concat(1), [[2, split.Rep.Length, 7, 7], [2, split.Ghost.Length, 7, 7]], 512);
        Layout("concat_batch1_odd", new Concat(-1), [[1, 3, 5, 2], [1, 3, 5, 9], [1, 3, 5, 1]], 64);
        Layout("permute_to_last", new Permute(Vec.Of(0, 2, 3, 1)), [[2, 24, 7, 7]], 256);
        Layout("permute_to_first", new Permute(Vec.Of(0, 3, 1, 2)), [[2, 7, 7, 24]], 128);
        Layout("permute_batch1_odd", new Permute(Vec.Of(2, 0, 3, 1)), [[1, 3, 5, 7]], 32);
        return c;
    }

    public static TheoryData<string, string> CaseLabels() =>
        Emu16.ByType(Cases.Keys.Order(StringComparer.Ordinal));

    /// <summary>The one-node graph of <paramref name="c"/> on values of type <paramref name="t"/>.</summary>
    private static Graph Build(string name, Case c, DType t)
    {
        var inputs = c.Shapes.Select(s => TensorType.Of(t, s)).ToList();
        if (c.Op is Grad g)
        {
            // a grad node's inputs: the forward inputs, the forward output and its gradient
            var y = g.Of.Infer(inputs)[0];
            inputs.AddRange([y, y]);
        }
        return OpCatalog.OneNode(name, c.Op, inputs);
    }

    [Theory]
    [MemberData(nameof(CaseLabels))]
    public void TheSixteenBitKernelMatchesTheReferenceWithinItsRoundings(string type, string label)
    {
        TestKernels.RequireEmulator();
        var dt = type == "bf16" ? DType.BF16 : DType.F16;
        var c = Cases[label];
        var g16 = Build("c16_" + label, c, dt);
        var g32 = Build("c32_" + label, c, DType.F32);
        var plan = OneNodeEmu.Lower(g16, OneNodeEmu.Tunables(g16, c.Tunables));
        foreach (var k in plan.Kernels)
        {
            // the kernel proper (after the prelude, which defines every 16-bit type and conversion)
            var body = k.Source[k.Source.IndexOf("extern \"C\"", StringComparison.Ordinal)..];
            Assert.Contains($"_{type}_", k.Name, StringComparison.Ordinal);
            Assert.Contains($"swc_{type}* __restrict__", body, StringComparison.Ordinal);
            bool sums = c.Terms > 0;
            Assert.Equal(sums, body.Contains("swc_round_" + type + "(", StringComparison.Ordinal));
            Assert.Equal(sums, body.Contains("swc_widen(", StringComparison.Ordinal));
        }

        var (bits, widened) = Emu16.Inputs(g16, dt, new Random(label.GetHashCode(StringComparison.Ordinal) ^ (int)dt));
        var got = Emu16.Run(plan, g16, bits);
        var none = new Dictionary<string, Tensor>();
        var want = ReferenceExecutor.Run(g32, none, widened);
        var abs = widened.ToDictionary(p => p.Key, p => Tensor.Wrap(p.Value.Type,
            ((float[])p.Value.Data).Select(MathF.Abs).ToArray()));
        var mag = ReferenceExecutor.Run(g32, none, abs);
        double u = Emu16.Unit(dt), eps = Math.Pow(2, -24), gamma = c.Terms * eps / (1 - c.Terms * eps);
        double eta = dt == DType.F16 ? Math.Pow(2, -25) : 0;
        for (int o = 0; o < g16.Outputs.Count; o++)
        {
            var g = got[g16.Outputs[o]];
            var w = want[g32.Outputs[o]].ToDoubles();
            var m = mag[g32.Outputs[o]].ToDoubles();
            var gotF = g.Select(b => (double)Float16Bits.Widen(b, dt)).ToArray();
            double worst = 0;
            for (int i = 0; i < g.Length; i++)
            {
                double bound = (u + eps) * Math.Abs(w[i]) + (1 + u) * gamma * Math.Abs(m[i]) + eta;
                double diff = Math.Abs(gotF[i] - w[i]);
                Assert.True(diff <= bound, $"{type} {label} %{g16.Outputs[o]}[{i}]: got {gotF[i]:R}, want "
                    + $"{w[i]:R}, |diff| {diff:E2} > bound {bound:E2}");
                if (bound > 0) worst = Math.Max(worst, diff / bound);
                if (c.Copy)
                {
                    var exact = Float16Bits.Round((float)w[i], dt);
                    Assert.True(g[i] == exact, $"{type} {label}[{i}]: kernel 0x{g[i]:X4}, copy of 0x{exact:X4}");
                }
            }
            double rel = Error.RelL2(gotF, w);
            TestContext.Current.TestOutputHelper?.WriteLine($"{type} {label} %{g16.Outputs[o]}: relative L2 "
                + $"{rel:E2} (u = {u:E2}), worst |diff| / bound {worst:F3}");
            // the sums of many terms must round: a kernel that stored float32 would show no error
            if (c.Terms > 3) Assert.True(rel > 0, $"{type} {label}: no rounding");
        }
        Emu16.Compiles(plan, "sm_80", "sm_90");
    }
}
