using ShiftWise.CodegenCuda;
using ShiftWise.Frontend.Tables;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Ops;
using ShiftWise.Passes;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// The layout ops of the training graph on the CUDA target (<c>LayoutLowering</c>): channel_select, concat and
/// permute, forward and backward. Each case is a one-node graph with random inputs: sw-tiny's and sw-fmnist's stage
/// shapes with the model's own rep/ghost index lists, and random ranks, axes, permutations, batch 1, odd sizes,
/// repeated and unpicked channels, and every wrt subset of a concat. The kernels follow the source conventions (no
/// atomics), compile with the real NVRTC for compute_80 and compute_90 without local memory and, run in emulation,
/// match the float64 reference executor (they copy, so exactly) and give the same bits when run twice.
/// </summary>
public sealed class LayoutEmuTests
{
    private const double Tol = 1e-5;

    private static TensorType F(params int[] d) => TensorType.Of(DType.F32, d);

    private static Graph One(string label, Op op, params TensorType[] inputs) => OpCatalog.OneNode(label, op, inputs);

    /// <summary>The grad node of <paramref name="of"/> with dy=[0]: inputs x…, y, gy.</summary>
    private static Graph GradOf(string label, Op of, Vec<int> wrt, params TensorType[] fwd)
    {
        var y = of.Infer(fwd)[0];
        return One("grad_" + label, new Grad(of, wrt, Vec.Of(0)), [.. fwd, y, y]);
    }

    private static int BlockOf(Random r) => 32 << r.Next(6);

    private static int[] RandomShape(Random r, int rank) =>
        Enumerable.Range(0, rank).Select(d => d == 0 ? r.Next(1, 4) : r.Next(1, 12)).ToArray();

    /// <summary>Every case by label.</summary>
    private static readonly Dictionary<string, OneNodeEmu.Case> Cases = BuildCases();

    private static Dictionary<string, OneNodeEmu.Case> BuildCases()
    {
        var c = new Dictionary<string, OneNodeEmu.Case>();
        var r = new Random(57);
        void Both(string label, Op op, TensorType[] fwd, int block)
        {
            c[label] = new(One(label, op, fwd), block);
            for (int w = 0; w < fwd.Length; w++)
            {
                c[$"{label}_grad_w{w}"] = new(GradOf($"{label}{w}", op, Vec.Of(w), fwd), BlockOf(r));
            }
            if (fwd.Length > 1)
            {
                var all = Vec.Of(Enumerable.Range(0, fwd.Length).Reverse().ToArray());
                c[$"{label}_grad_all"] = new(GradOf($"{label}all", op, all, fwd), BlockOf(r));
            }
        }
        // sw-tiny's first stage (80 channels, the model's rep and ghost picks) at its 56x56 plane and on 14x14, its
        // last stage (640 channels, 7x7); sw-fmnist's first stage at 7x7
        var tiny = new ShiftWiseV2Options();
        foreach (var (label, ch, hw, n) in new[]
        {
            ("tiny0_56", 80, 56, 2), ("tiny0", 80, 14, 2), ("tiny3", 640, 7, 2), ("fmnist0", 24, 7, 2),
        })
        {
            var split = SwTables.Split(ch, tiny.GhostRatio);
            var x = F(n, ch, hw, hw);
            Both($"channel_select_{label}_rep", new ChannelSelect(1, Vec.Of(split.Rep)), [x], 1024);
            Both($"channel_select_{label}_ghost", new ChannelSelect(1, Vec.Of(split.Ghost)), [x], 256);
            Both($"concat_{label}", new Concat(1),
                [F(n, split.Rep.Length, hw, hw), F(n, split.Ghost.Length, hw, hw)], 512);
            Both($"permute_{label}_to_last", new Permute(Vec.Of(0, 2, 3, 1)), [x], 256);
            Both($"permute_{label}_to_first", new Permute(Vec.Of(0, 3, 1, 2)), [F(n, hw, hw, ch)], 128);
        }
        // channel_select: repeated and unpicked channels, other axes, batch 1, a single pick
        Both("channel_select_repeats", new ChannelSelect(1, Vec.Of(3, 0, 3, 3, 5, 0)), [F(1, 7, 5, 3)], 32);
        Both("channel_select_last_axis", new ChannelSelect(-1, Vec.Of(4, 4, 1, 10, 2)), [F(3, 5, 11)], 64);
        Both("channel_select_axis0", new ChannelSelect(0, Vec.Of(2, 0, 2)), [F(3, 6, 5)], 32);
        Both("channel_select_single", new ChannelSelect(1, Vec.Of(6)), [F(2, 37, 9)], 128);
        for (int s = 0; s < 4; s++)
        {
            var shape = RandomShape(r, 2 + s % 3);
            int axis = r.Next(shape.Length);
            shape[axis] = Math.Max(shape[axis], 2);
            var picks = Enumerable.Range(0, r.Next(1, 2 * shape[axis] + 1)).Select(_ => r.Next(shape[axis]))
                .ToArray();
            Both($"channel_select_random{s}", new ChannelSelect(axis, Vec.Of(picks)), [F(shape)], BlockOf(r));
        }
        // concat: three inputs, other axes, a single input, batch 1 with odd sizes
        Both("concat_three_axis2", new Concat(2), [F(2, 3, 5), F(2, 3, 1), F(2, 3, 7)], 64);
        Both("concat_axis0", new Concat(0), [F(1, 4, 3), F(2, 4, 3)], 32);
        Both("concat_last_axis", new Concat(-1), [F(3, 5, 2), F(3, 5, 9)], 128);
        Both("concat_single", new Concat(1), [F(2, 13, 3, 3)], 32);
        Both("concat_batch1_odd", new Concat(1), [F(1, 37, 5, 3), F(1, 11, 5, 3)], 256);
        for (int s = 0; s < 3; s++)
        {
            var shape = RandomShape(r, 2 + s);
            int axis = r.Next(shape.Length);
            var fwd = Enumerable.Range(0, 2 + s % 2).Select(_ =>
            {
                var d = (int[])shape.Clone();
                d[axis] = r.Next(1, 9);
                return F(d);
            }).ToArray();
            Both($"concat_random{s}", new Concat(axis), fwd, BlockOf(r));
        }
        // permute: every permutation of rank 3 with odd sizes, size-1 axes, rank 5, the identity (a copy), batch 1
        int[][] perms3 = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
        foreach (var p in perms3)
        {
            Both($"permute_rank3_{string.Concat(p)}", new Permute(Vec.Of(p)), [F(3, 37, 41)], BlockOf(r));
        }
        Both("permute_size1_axes", new Permute(Vec.Of(3, 1, 0, 2)), [F(1, 5, 1, 33)], 64);
        Both("permute_batch1_nchw", new Permute(Vec.Of(0, 2, 3, 1)), [F(1, 45, 3, 5)], 32);
        Both("permute_rank5", new Permute(Vec.Of(4, 1, 3, 0, 2)), [F(2, 3, 4, 5, 3)], 128);
        Both("permute_rank2", new Permute(Vec.Of(1, 0)), [F(70, 33)], 1024);
        for (int s = 0; s < 3; s++)
        {
            var shape = RandomShape(r, 3 + s);
            var p = Enumerable.Range(0, shape.Length).OrderBy(_ => r.Next()).ToArray();
            Both($"permute_random{s}", new Permute(Vec.Of(p)), [F(shape)], BlockOf(r));
        }
        return c;
    }

    public static TheoryData<string> CaseLabels() => new(Cases.Keys.Order(StringComparer.Ordinal));

    /// <summary>
    /// <see cref="OneNodeEmu.Check"/> on inputs uniform in ±3 from <paramref name="seed"/>: conventions, NVRTC, error
    /// against the reference and bit-identical reruns; returns the error.
    /// </summary>
    private static double Check(Graph g, CudaOptions o, int seed) =>
        OneNodeEmu.Check(g, o, OneNodeEmu.Inputs(g, seed, scale: 3), Tol);

    [Theory]
    [MemberData(nameof(CaseLabels))]
    public void KernelMatchesTheReference(string label)
    {
        var c = Cases[label];
        Check(c.Graph, c.Options, label.Length * 31 + label[^1]);
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
    }

    /// <summary>
    /// The permute of the ConvNeXt block on NCHW is a batched transpose after merging H and W; a permutation that
    /// keeps the innermost axis, or moves it elsewhere than a swap of the last two merged axes, takes the generic
    /// kernel; size-1 axes do not count.
    /// </summary>
    [Fact]
    public void PermutesAreMergedIntoTheirSimplestForm()
    {
        var toLast = new PermuteModel("k", "permute", 256, new Shape(2, 80, 56, 56), [0, 2, 3, 1]);
        Assert.Equal(("tiled", 2L, 80L, 3136L), (toLast.Mode, toLast.Batch, toLast.Rows, toLast.Cols));
        var toFirst = new PermuteModel("k", "permute", 256, new Shape(2, 56, 56, 80), [0, 3, 1, 2]);
        Assert.Equal(("tiled", 2L, 3136L, 80L), (toFirst.Mode, toFirst.Batch, toFirst.Rows, toFirst.Cols));
        Assert.Equal(98L * 3 * 2, toFirst.Blocks);
        var copy = new PermuteModel("k", "permute", 256, new Shape(1, 5, 1, 33), [2, 0, 1, 3]);
        Assert.Equal("generic", copy.Mode);
        Assert.Equal([165L], copy.MergedDims);
        var keepsInner = new PermuteModel("k", "permute", 256, new Shape(3, 4, 5), [1, 0, 2]);
        Assert.Equal("generic", keepsInner.Mode);
        Assert.Equal([1, 0, 2], keepsInner.MergedPerm);
        var swapOuter = new PermuteModel("k", "permute", 64, new Shape(3, 4, 5), [2, 0, 1]);
        Assert.Equal(("tiled", 1L, 12L, 5L), (swapOuter.Mode, swapOuter.Batch, swapOuter.Rows, swapOuter.Cols));
    }

    /// <summary>The backward table lists, per input channel, the output positions that picked it, in order.</summary>
    [Fact]
    public void TheChannelSelectGradTableGroupsThePicksByChannel()
    {
        var m = new ChannelSelectModel("k", 32, 1, 7, [3, 0, 3, 3, 5, 0], 15, grad: true);
        Assert.Equal("0, 2, 2, 2, 5, 5, 6, 6", m.Starts);
        Assert.Equal("1, 5, 0, 2, 3, 4", m.Picks);
        Assert.Equal(3, m.MaxRepeat);
        Assert.Equal(7 * 15L, m.Total);
    }

    /// <summary>A seeding grad (dy=[]) of a layout op is refused naming the node and the op.</summary>
    [Fact]
    public void ASeedingLayoutGradIsRefused()
    {
        var g = One("seed", new Grad(new ChannelSelect(1, Vec.Of(1)), Vec.Of(0), Vec<int>.Empty), F(1, 2), F(1, 1));
        var e = Assert.Throws<IrException>(() => CudaCodegen.Lower(g));
        Assert.Contains("%d.d0 (grad)", e.Message, StringComparison.Ordinal);
        Assert.Contains("no CUDA lowering for grad of channel_select", e.Message, StringComparison.Ordinal);
    }

    /// <summary>An index table too big for constant memory is refused naming the node.</summary>
    [Fact]
    public void AnIndexTableBeyondConstantMemoryIsRefused()
    {
        var picks = Enumerable.Range(0, ChannelSelectModel.MaxTableInts + 1).Select(i => i % 2).ToArray();
        var g = One("huge", new ChannelSelect(1, Vec.Of(picks)), F(1, 2));
        var e = Assert.Throws<IrException>(() => CudaCodegen.Lower(g));
        Assert.Contains("%d (channel_select)", e.Message, StringComparison.Ordinal);
        Assert.Contains("constant memory", e.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// Every channel_select, concat and permute node and every grad of one that the autodiff pass emits for a
    /// sw-fmnist training graph (batch 2) lowers and matches the reference.
    /// </summary>
    [Fact]
    public void TheLayoutNodesOfTheFmnistTrainingGraphMatchTheReference()
    {
        var o = ShiftWiseV2Options.FashionMnist with { Batch = 2, DropPathRate = 0.2 };
        var m = ShiftWiseV2.Build(o, "sw-fmnist", DType.F32, new TrainingForm(0.1, 3));
        var g = AutodiffBuilder.Build(m.Graph, ShiftWiseV2.Loss).Graph;
        var types = g.ValueTypes();
        var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
        double worst = 0;
        int i = 0;
        foreach (var n in g.Nodes)
        {
            var of = n.Op is Grad gr ? gr.Of : n.Op;
            if (!LayoutOp(of)) continue;
            var one = One($"fm{i++}", n.Op, n.Inputs.Select(v => types[v]).ToArray());
            string key = n.Op is Grad gg
                ? $"grad {gg.Of.Name} wrt [{string.Join(",", gg.Wrt)}] dy [{string.Join(",", gg.OutGrads)}]"
                : n.Op.Name;
            counts[key] = counts.GetValueOrDefault(key) + 1;
            worst = Math.Max(worst, Check(one, new CudaOptions(), i));
        }
        TestContext.Current.TestOutputHelper?.WriteLine($"worst relative L2 {worst:E2}; "
            + string.Join("; ", counts.Select(kv => $"{kv.Key}: {kv.Value}")));
        foreach (var op in new[] { "channel_select", "concat", "permute" })
        {
            Assert.Contains(op, counts.Keys);
            Assert.Contains(counts.Keys, k => k.StartsWith("grad " + op, StringComparison.Ordinal));
        }
    }

    private static bool LayoutOp(Op op) => op is ChannelSelect or Concat or Permute;
}
