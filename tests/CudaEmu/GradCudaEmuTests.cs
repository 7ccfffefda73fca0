using System.Globalization;
using System.Text.RegularExpressions;
using ShiftWise.CodegenCuda;
using ShiftWise.Frontend.Tables;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// The SW layer's backward kernels on the CUDA target: the shift-add's input gradient (adjoint gather) and a
/// depthwise conv2d's input and weight gradients. Each case is a one-node grad graph whose inputs (forward inputs,
/// forward outputs, output gradients) are random; its kernels must follow the source conventions (no atomics),
/// compile with the real NVRTC for compute_80 and compute_90 without local memory, and, run in emulation, match the
/// float64 reference executor (<c>Backward.Vjp</c>) to a relative L2 error of 1e-5.
/// </summary>
public sealed class GradCudaEmuTests
{
    private const double Tol = 1e-5;

    private static TensorType F(params int[] d) => TensorType.Of(DType.F32, d);

    /// <summary>A graph of one grad node; every input is a graph input.</summary>
    private static Graph One(string label, Grad op, TensorType[] inputs) => OpCatalog.OneNode("grad_" + label, op, inputs);

    /// <summary>
    /// Shift-add case <paramref name="seed"/>: random SW tables (big 5–13, small 3 or 5, 1–3 reps, 1–3 replicas), planes
    /// smaller than the band (at least k − 1), batch 1–2; dy is the non-empty subset seed % 7 + 1 of {h, v, identity} (listed in
    /// reverse order for odd seeds).
    /// </summary>
    private static (Graph Graph, CudaOptions Options) ShiftAddCase(int seed)
    {
        var r = new Random(seed);
        int small = r.Next(2) == 0 ? 3 : 5;
        int big = small + 2 * r.Next(1, 5);
        int rep = r.Next(1, 4), nrep = r.Next(1, 4);
        var s = SwTables.ShiftAdd(big, small, rep, nrep);
        int h = r.Next(small - 1, big), w = r.Next(small - 1, big);
        int nb = r.Next(1, 3);
        int mask = seed % 7 + 1;
        var dy = Enumerable.Range(0, 3).Where(p => (mask >> p & 1) != 0).ToArray();
        if (seed % 2 == 1) Array.Reverse(dy);
        return ShiftAddGrad($"sa{seed}", s, nb, h, w, dy, 32 << r.Next(4));
    }

    /// <summary>
    /// The one-node grad graph of <paramref name="s"/> wrt x on a batch of <paramref name="nb"/>, outputs
    /// <paramref name="h"/>×<paramref name="w"/>, with the gradients of the paths <paramref name="dy"/> in that order;
    /// its values of type <paramref name="t"/>.
    /// </summary>
    internal static (Graph Graph, CudaOptions Options) ShiftAddGrad(string label, ShiftAdd s, int nb, int h, int w,
        int[] dy, int block, DType t = DType.F32)
    {
        var y = TensorType.Of(t, nb, s.Rep, h, w);
        var x = TensorType.Of(t, nb, s.Rep * s.N, h + 2 * s.Extra, w + 2 * s.Extra);
        var types = new List<TensorType> { x, y, y, y };
        types.AddRange(dy.Select(_ => y));
        var g = One(label, new Grad(s, Vec.Of(0), Vec.Of(dy)), types.ToArray());
        return (g, OneNodeEmu.Tunables(g, new() { ["block"] = block }));
    }

    /// <summary>
    /// The shift-add's input gradient on real SW tables, planes shrunk: sw-tiny's stages 1 and 2 (160 and 320
    /// channels, big 49 and 47) and sw-small's stage 2 (384 channels, big 47), whose tables of ints overflowed the
    /// 64 KiB constant bank; sw-tiny's stage 2 with the h and identity paths only (listed identity first); 267
    /// sub-kernels per channel (16-bit block indices) with the v and identity paths.
    /// </summary>
    private static readonly Dictionary<string, (Graph Graph, CudaOptions Options)> RealTables = new()
    {
        ["tiny_stage1"] = ShiftAddGrad("tiny1", TrainForwardEmuTests.Sw(160, 49, 3, 4), 1, 9, 10, [0, 1, 2], 128),
        ["tiny_stage2"] = ShiftAddGrad("tiny2", TrainForwardEmuTests.Sw(320, 47, 3, 4), 1, 5, 4, [0, 1, 2], 256),
        ["tiny_stage2_hi"] = ShiftAddGrad("tiny2hi", TrainForwardEmuTests.Sw(320, 47, 3, 4), 2, 3, 4, [2, 0], 64),
        ["swsmall_stage2"] = ShiftAddGrad("small2", TrainForwardEmuTests.Sw(384, 47, 3, 4), 1, 4, 5, [0, 1, 2], 256),
        ["wide_n"] = ShiftAddGrad("widen", SwTables.ShiftAdd(801, 3, 2, 2), 1, 3, 4, [1, 2], 32),
    };

    /// <summary>
    /// Depthwise conv case <paramref name="seed"/>: n = 1..5 outputs per channel, k 3 or 5, padding k−1 or random per
    /// axis, dilation 1 (sometimes 2), batch 1–2; wrt x, w or both (with and without a bias input).
    /// </summary>
    private static (Graph Graph, CudaOptions Options) ConvCase(int seed)
    {
        var r = new Random(1000 + seed);
        int k = r.Next(2) == 0 ? 3 : 5;
        int c = r.Next(1, 4), n = seed % 5 + 1, nb = r.Next(1, 3);
        int dil = seed % 4 == 3 ? 2 : 1;
        var pad = seed % 2 == 0 ? Vec.Of(k - 1, k - 1) : Vec.Of(r.Next(0, k), r.Next(0, k));
        var op = new Conv2d(Vec.Of(1, 1), pad, Vec.Of(dil, dil), c);
        int h = dil * (k - 1) + r.Next(1, 9), w = dil * (k - 1) + r.Next(1, 12);
        var wrt = (seed % 3) switch { 0 => Vec.Of(0, 1), 1 => Vec.Of(1), _ => Vec.Of(0) };
        bool bias = seed % 4 == 1;
        var x = F(nb, c, h, w);
        var wt = F(c * n, 1, k, k);
        var fwd = new List<TensorType> { x, wt };
        if (bias) fwd.Add(F(c * n));
        var y = op.Infer(fwd)[0];
        var g = One($"dw{seed}", new Grad(op, wrt, Vec.Of(0)), [.. fwd, y, y]);
        return (g, OneNodeEmu.Tunables(g, new() { ["block"] = 32 << r.Next(4), ["wblock"] = 32 << r.Next(4) }));
    }

    public static TheoryData<int> ShiftAddSeeds() => new(Enumerable.Range(0, 7));

    public static TheoryData<string> RealTableLabels() => new(RealTables.Keys.Order(StringComparer.Ordinal));

    public static TheoryData<int> ConvSeeds() => new(Enumerable.Range(0, 6));

    /// <summary>
    /// <see cref="OneNodeEmu.Check"/> on inputs uniform in ±1 from <paramref name="seed"/>, one emulated run: the
    /// source conventions, NVRTC, the error against the reference.
    /// </summary>
    private static void CheckCase(Graph g, CudaOptions o, int seed)
    {
        OneNodeEmu.Check(g, o, OneNodeEmu.Inputs(g, seed), Tol, $"{g.Nodes[0].Op} on {OneNodeEmu.InputTypes(g)}",
            twice: false);
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
    }

    [Theory]
    [MemberData(nameof(ShiftAddSeeds))]
    public void ShiftAddInputGradientMatchesTheReference(int seed)
    {
        var (g, o) = ShiftAddCase(seed);
        CheckCase(g, o, seed);
    }

    /// <summary>
    /// Real tables (<see cref="RealTables"/>): conventions, NVRTC to PTX for compute_80 and compute_90 and to CUBIN
    /// for sm_80 and sm_90 (ptxas places the tables: the PTX of the old int tables compiled, their CUBIN failed with
    /// "too much global constant data"), relative L2 against the float64 reference at most 1e-5, the same bits on a
    /// rerun.
    /// </summary>
    [Theory]
    [MemberData(nameof(RealTableLabels))]
    public void ShiftAddInputGradientOnRealTablesMatchesTheReference(string label)
    {
        var (g, o) = RealTables[label];
        if (NvrtcCompiler.Available)
        {
            var k = Assert.Single(CudaCodegen.Lower(g, o).Kernels);
            foreach (var arch in new[] { "sm_80", "sm_90" })
            {
                Assert.True(NvrtcCompiler.Compile(k.Source, k.FileName, arch).IsCubin);
            }
        }
        TrainForwardEmuTests.Check(g, o, label.Length);
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
    }

    /// <summary>
    /// The tables are bytes in constant memory while they fit 32 KiB (sw-tiny's stage 2: 2 × 3936 × 4 block indices
    /// and 246 × 4 identity sub-channels, 32472 bytes), in global memory above (sw-small's stage 2), 16 bits past 256
    /// sub-kernels per channel.
    /// </summary>
    [Fact]
    public void ShiftAddGradTablesGoWhereTheyFit()
    {
        string Source(string label) =>
            Assert.Single(CudaCodegen.Lower(RealTables[label].Graph, RealTables[label].Options).Kernels).Source;
        var tiny = Source("tiny_stage2");
        Assert.Equal(3, Regex.Matches(tiny, "^__constant__ unsigned char ", RegexOptions.Multiline).Count);
        var large = Source("swsmall_stage2");
        Assert.Equal(3, Regex.Matches(large, "^__device__ const unsigned char ", RegexOptions.Multiline).Count);
        Assert.DoesNotContain("__constant__", large, StringComparison.Ordinal);
        var wide = Source("wide_n");
        Assert.Equal(2, Regex.Matches(wide, "^__constant__ unsigned short ", RegexOptions.Multiline).Count);
        Assert.DoesNotContain("_block_h[", wide, StringComparison.Ordinal);
    }

    /// <summary>
    /// Every shift_add grad kernel of sw-tiny's and sw-base's training graphs (batch 1) declares the tables of its
    /// paths in dy, bytes (n ≤ 256) that stay in constant memory up to 32 KiB, in global memory above: its constant
    /// data stays under the 64 KiB bank. Read off the rendered source; nothing is run.
    /// </summary>
    [Theory]
    [InlineData("sw-tiny")]
    [InlineData("sw-base")]
    public void ShiftAddGradTablesStayUnderTheConstantBank(string preset)
    {
        var o = ShiftWiseV2Options.Preset(preset)! with { Batch = 1, DropPathRate = 0 };
        var g = AutodiffBuilder.Build(ShiftWiseV2.Build(o, preset, DType.F32, new TrainingForm()).Graph,
            ShiftWiseV2.Loss).Graph;
        var types = g.ValueTypes();
        var decl = new Regex(
            @"(?m)^(__constant__|__device__ const) (unsigned char|unsigned short|int) \w+\[(\d+)\] = \{");
        var seen = new SortedDictionary<string, string>(StringComparer.Ordinal);
        int count = 0;
        foreach (var n in g.Nodes.Where(n => n.Op is Grad { Of: ShiftAdd }))
        {
            var op = (Grad)n.Op;
            var s = (ShiftAdd)op.Of;
            var k = Assert.Single(CudaCodegen.Lower(One($"c{count++}", op, n.Inputs.Select(i => types[i]).ToArray()))
                .Kernels);
            long constant = 0, global = 0;
            var found = decl.Matches(k.Source);
            foreach (Match d in found)
            {
                int size = d.Groups[2].Value switch { "unsigned char" => 1, "unsigned short" => 2, _ => 4 };
                long bytes = size * long.Parse(d.Groups[3].Value, CultureInfo.InvariantCulture);
                if (d.Groups[1].Value == "__constant__") constant += bytes;
                else global += bytes;
            }
            Assert.Equal(found.Count(d => d.Groups[1].Value == "__constant__"),
                Regex.Matches(k.Source, "__constant__").Count);
            long shifts = (long)s.Rep * s.N * s.NRep, expected = (op.OutGrads.Contains(0) ? shifts : 0)
                + (op.OutGrads.Contains(1) ? shifts : 0) + (op.OutGrads.Contains(2) ? (long)s.Rep * s.NRep : 0);
            Assert.Equal(expected, constant + global);
            Assert.True(constant < 64 * 1024, $"{n.Describe()}: {constant} bytes of constant data");
            Assert.True(constant == 0 || global == 0, $"{n.Describe()}: tables split between constant and global");
            Assert.True(constant <= ShiftAddKernelModel.MaxConstantBytes && (global == 0 ||
                global > ShiftAddKernelModel.MaxConstantBytes), $"{n.Describe()}: {constant} + {global} bytes");
            seen[$"R·n {s.Rep * s.N}, B {s.Big}"] = constant > 0 ? $"{constant} B constant" : $"{global} B global";
        }
        TestContext.Current.TestOutputHelper?.WriteLine($"{preset}: {count} shift_add grads; "
            + string.Join("; ", seen.Select(kv => $"{kv.Key}: {kv.Value}")));
        Assert.Equal(o.Depths.Sum(), count);
    }

    [Theory]
    [MemberData(nameof(ConvSeeds))]
    public void DepthwiseConvGradientsMatchTheReference(int seed)
    {
        var (g, o) = ConvCase(seed);
        CheckCase(g, o, seed);
    }

    [Fact]
    public void OtherGradsAreRefusedNamingTheNode()
    {
        var f = F(2, 3);
        var softmax = One("softmax", new Grad(new Softmax(1), Vec.Of(0), Vec.Of(0)), [f, f, f]);
        var e = Assert.Throws<IrException>(() => CudaCodegen.Lower(softmax));
        Assert.Contains("%d.d0 (grad)", e.Message, StringComparison.Ordinal);
        Assert.Contains("no CUDA lowering for grad of softmax", e.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// The grad nodes the autodiff pass emits for the SW layers of a small ShiftWise_v2 training graph: every
    /// shift_add and depthwise conv2d grad lowers (and the first of each kind matches the reference in emulation);
    /// every other conv2d grad (the stem, downsampling, SE) lowers too (ConvGradEmuTests checks their values).
    /// </summary>
    [Fact]
    public void TheSwLayerGradsOfATrainingGraphLower()
    {
        var o = new ShiftWiseV2Options
        {
            InChans = 2, NumClasses = 5, Depths = [1, 1, 0, 1], Dims = [8, 12, 16, 16], KernelSize = [7, 5, 5, 3, 3],
            Batch = 2, Height = 24, Width = 24, DropPathRate = 0,
        };
        var m = ShiftWiseV2.Build(o, "small", DType.F32, new TrainingForm());
        var g = AutodiffBuilder.Build(m.Graph, ShiftWiseV2.Loss).Graph;
        var types = g.ValueTypes();
        int shiftAdds = 0, depthwise = 0, others = 0;
        foreach (var n in g.Nodes.Where(n => n.Op is Grad { Of: ShiftAdd or Conv2d }))
        {
            var op = (Grad)n.Op;
            var one = One($"t{shiftAdds + depthwise + others}", op, n.Inputs.Select(i => types[i]).ToArray());
            bool dw = op.Of is Conv2d c && c.Groups == types[n.Inputs[0]].Shape[1] && types[n.Inputs[1]].Shape[1] == 1 &&
                c.Stride.All(s => s == 1) && !op.Wrt.Contains(2);
            if (op.Of is ShiftAdd || dw)
            {
                var plan = CudaCodegen.Lower(one);
                Assert.NotEmpty(plan.Steps);
                bool first = op.Of is ShiftAdd ? shiftAdds++ == 0 : depthwise++ == 0;
                if (first && CudaEmulator.Available)
                {
                    double err = EmuCheck.ErrorVsReference(plan, one, new Dictionary<string, Tensor>(), OneNodeEmu.Inputs(one, 5));
                    Assert.True(err <= Tol, $"{n.Describe()}: relative L2 {err:E2}");
                }
            }
            else
            {
                others++;
                Assert.NotEmpty(CudaCodegen.Lower(one).Steps);
            }
        }
        Assert.True(shiftAdds >= 2 && depthwise >= 2 && others >= 1, $"{shiftAdds} shift_add, {depthwise} depthwise, {others} other conv grads");
        if (!CudaEmulator.Available) Assert.Skip("lowering checked; the kernels were not run: " + CudaEmulator.MissingReason);
    }
}
