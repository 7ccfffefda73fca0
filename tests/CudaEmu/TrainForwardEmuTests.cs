using ShiftWise.CodegenCuda;
using ShiftWise.Frontend.Tables;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Ops;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// The forward ops a training graph keeps unfused on the CUDA target: shift_add (<c>ShiftAddLowering</c>, a gather
/// kernel writing h, v and i) and linear (<c>LinearLowering</c>, one cuBLAS GEMM call and an in-place bias kernel).
/// Each case is a one-node graph with random inputs: shift_add on the SW layers of sw-tiny (the real tables of its
/// four stages, planes shrunk) and sw-fmnist, and on random layers (batch 1, odd planes, big kernels the small one
/// does not divide, more than 256 sub-kernels, tables too large for constant memory, channel counts that are not
/// multiples of the block); linear on (N, H, W, C) and (N, C) inputs with and without bias and odd sizes. Its kernels
/// follow the source conventions (no atomics), compile with the real NVRTC for compute_80 and compute_90 without
/// local memory, and, run in emulation, match the float64 reference executor to a relative L2 error of 1e-5 and
/// give the same bits when run twice.
/// </summary>
public sealed class TrainForwardEmuTests
{
    private const double Tol = 1e-5;

    private static TensorType F(params int[] d) => TensorType.Of(DType.F32, d);

    private static Graph One(string label, Op op, params TensorType[] inputs) => OpCatalog.OneNode(label, op, inputs);

    /// <summary>The shift_add of an SW layer of <paramref name="channels"/> channels (the ghost ratio 0.23).</summary>
    internal static ShiftAdd Sw(int channels, int big, int small, int nrep) =>
        SwTables.ShiftAdd(big, small, SwTables.RepCount(channels, 0.23), nrep);

    /// <summary>
    /// A one-node shift_add graph whose outputs are <paramref name="h"/>×<paramref name="w"/>, its values of type
    /// <paramref name="t"/>.
    /// </summary>
    internal static Graph ShiftAddGraph(string label, ShiftAdd s, int batch, int h, int w, DType t = DType.F32) =>
        One(label, s, TensorType.Of(t, batch, s.Rep * s.N, h + 2 * s.Extra, w + 2 * s.Extra));

    /// <summary>Every case by label.</summary>
    private static readonly Dictionary<string, OneNodeEmu.Case> Cases = BuildCases();

    private static Dictionary<string, OneNodeEmu.Case> BuildCases()
    {
        var c = new Dictionary<string, OneNodeEmu.Case>();
        // sw-tiny's four stages (80, 160, 320, 640 channels; big 51, 49, 47, 13; small 3; 4 replicas) with their
        // real tables, planes shrunk from 56, 28, 14, 7
        c["sa_tiny_stage0"] = new(ShiftAddGraph("tiny0", Sw(80, 51, 3, 4), 2, 14, 13), 256);
        c["sa_tiny_stage1"] = new(ShiftAddGraph("tiny1", Sw(160, 49, 3, 4), 1, 9, 10), 128);
        c["sa_tiny_stage2"] = new(ShiftAddGraph("tiny2", Sw(320, 47, 3, 4), 1, 5, 4), 256);
        c["sa_tiny_stage3"] = new(ShiftAddGraph("tiny3", Sw(640, 13, 3, 4), 1, 7, 7), 512);
        // sw-small's stage 2 (384 channels, big 47): its tables (38.8 KB) go to global memory
        c["sa_swsmall_stage2"] = new(ShiftAddGraph("small2", Sw(384, 47, 3, 4), 1, 4, 5), 256);
        // sw-fmnist's stages 0 and 1 (24 and 48 channels, big 7 and 5) at their planes, batch 2
        c["sa_fmnist_stage0"] = new(ShiftAddGraph("fm0", Sw(24, 7, 3, 4), 2, 7, 7), 64);
        c["sa_fmnist_stage1"] = new(ShiftAddGraph("fm1", Sw(48, 5, 3, 4), 2, 3, 3), 32);
        // batch 1, odd plane, big 13 that small 5 does not divide (an off-centre band), 8 rep channels
        c["sa_batch1_offcentre"] = new(ShiftAddGraph("off", Sw(11, 13, 5, 3), 1, 5, 7), 64);
        // an even big kernel (8 = 3·3 − 1), batch 3, one-column plane
        c["sa_even_big"] = new(ShiftAddGraph("even", SwTables.ShiftAdd(8, 3, 4, 2), 3, 6, 1), 32);
        // 267 sub-kernels per channel: 16-bit block indices
        c["sa_wide_n"] = new(ShiftAddGraph("widen", SwTables.ShiftAdd(801, 3, 2, 2), 1, 3, 4), 32);
        // small kernel 1 (no border), one replica; small 7 with big 7
        c["sa_small1"] = new(ShiftAddGraph("k1", SwTables.ShiftAdd(5, 1, 3, 1), 2, 4, 5), 32);
        c["sa_small7"] = new(ShiftAddGraph("k7", SwTables.ShiftAdd(7, 7, 5, 2), 1, 3, 2), 64);
        var r = new Random(45);
        for (int s = 0; s < 6; s++)
        {
            int small = 2 * r.Next(4) + 1;
            int big = r.Next(small, 40);
            var op = SwTables.ShiftAdd(big, small, r.Next(1, 14), r.Next(1, 6));
            c[$"sa_random{s}"] = new(ShiftAddGraph($"sar{s}", op, r.Next(1, 4), r.Next(1, 12), r.Next(1, 12)),
                32 << r.Next(5));
        }
        // linear: sw-fmnist's pwconv1 and pwconv2 on (N, H, W, C), its head on (N, C); without bias; odd sizes
        var lin = new Linear();
        c["linear_fmnist_pwconv1"] = new(One("pw1", lin, F(2, 7, 7, 24), F(96, 24), F(96)), 256);
        c["linear_fmnist_pwconv2"] = new(One("pw2", lin, F(2, 3, 3, 192), F(48, 192), F(48)), 128);
        c["linear_fmnist_head"] = new(One("head", lin, F(2, 192), F(10, 192), F(10)), 32);
        c["linear_nhwc_nobias"] = new(One("nb4", lin, F(3, 5, 3, 13), F(11, 13)), 64);
        c["linear_2d_nobias"] = new(One("nb2", lin, F(5, 7), F(3, 7)), 32);
        c["linear_batch1_bias"] = new(One("b1", lin, F(1, 1, 1, 1), F(1, 1), F(1)), 32);
        c["linear_odd_bias"] = new(One("odd", lin, F(1, 9, 5, 17), F(19, 17), F(19)), 512);
        c["linear_1d_bias"] = new(One("vec", lin, F(23), F(7, 23), F(7)), 32);
        for (int s = 0; s < 4; s++)
        {
            int rank = 1 + s % 4;
            var x = Enumerable.Range(0, rank).Select(_ => r.Next(1, 9)).ToArray();
            int k = x[^1], o = r.Next(1, 40);
            TensorType[] ins = s % 2 == 0 ? [F(x), F(o, k), F(o)] : [F(x), F(o, k)];
            c[$"linear_random{s}"] = new(One($"lr{s}", lin, ins), 32 << r.Next(6));
        }
        return c;
    }

    public static TheoryData<string> CaseLabels() => new(Cases.Keys.Order(StringComparer.Ordinal));

    /// <summary>
    /// <see cref="OneNodeEmu.Check"/> on inputs uniform in ±3 from <paramref name="seed"/>: conventions, NVRTC, error
    /// against the reference and bit-identical reruns; returns the error (GradCudaEmuTests checks the shift-add's
    /// backward on real tables with it too).
    /// </summary>
    internal static double Check(Graph g, CudaOptions o, int seed) =>
        OneNodeEmu.Check(g, o, OneNodeEmu.Inputs(g, seed, scale: 3), Tol);

    [Theory]
    [MemberData(nameof(CaseLabels))]
    public void KernelMatchesTheReference(string label)
    {
        var c = Cases[label];
        Check(c.Graph, c.Options, label.Length);
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
    }

    /// <summary>
    /// The shift_add kernel keeps its tables in constant memory while they fit 32 KB (sw-tiny's stages: stage 2 needs
    /// 3936 sub-channels × 4 replicas × 2 bytes and 984 identity bytes), in global memory above (sw-small's stage 2),
    /// and 16-bit block indices past 256 blocks.
    /// </summary>
    [Fact]
    public void ShiftAddTablesGoWhereTheyFit()
    {
        string Source(string label) => Assert.Single(CudaCodegen.Lower(Cases[label].Graph).Kernels).Source;
        var stage0 = Source("sa_tiny_stage0");
        Assert.Contains("__constant__ unsigned char", stage0, StringComparison.Ordinal);
        Assert.Contains("__constant__ unsigned char", Source("sa_tiny_stage2"), StringComparison.Ordinal);
        var large = Source("sa_swsmall_stage2");
        Assert.Contains("__device__ const unsigned char", large, StringComparison.Ordinal);
        Assert.DoesNotContain("__constant__", large, StringComparison.Ordinal);
        Assert.Contains("__constant__ unsigned short", Source("sa_wide_n"), StringComparison.Ordinal);
    }

    /// <summary>Linear is one GEMM call, then the in-place bias kernel when it has a bias; nothing else.</summary>
    [Fact]
    public void LinearIsOneGemmAndABiasKernel()
    {
        var withBias = CudaCodegen.Lower(Cases["linear_fmnist_pwconv1"].Graph);
        Assert.Collection(withBias.Steps, s => Assert.IsType<GemmCall>(s), s => Assert.IsType<KernelLaunch>(s));
        var gemm = (GemmCall)withBias.Steps[0];
        Assert.Equal((96, 98, 24, 1), (gemm.M, gemm.N, gemm.K, gemm.Batch));
        var noBias = CudaCodegen.Lower(Cases["linear_nhwc_nobias"].Graph);
        Assert.IsType<GemmCall>(Assert.Single(noBias.Steps));
        Assert.Empty(noBias.Kernels);
    }

    /// <summary>
    /// Every shift_add and linear node of a sw-fmnist training graph (batch 2, drop path 0.2, label smoothing 0.1)
    /// lowers and matches the reference.
    /// </summary>
    [Fact]
    public void TheForwardOpsOfTheFmnistTrainingGraphMatchTheReference()
    {
        var o = ShiftWiseV2Options.FashionMnist with { Batch = 2, DropPathRate = 0.2 };
        var g = ShiftWiseV2.Build(o, "sw-fmnist", DType.F32, new TrainingForm(0.1, 3)).Graph;
        var types = g.ValueTypes();
        var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
        double worst = 0;
        int i = 0;
        foreach (var n in g.Nodes.Where(n => n.Op is ShiftAdd or Linear))
        {
            var one = One($"fm{i++}", n.Op, n.Inputs.Select(v => types[v]).ToArray());
            counts[n.Op.Name] = counts.GetValueOrDefault(n.Op.Name) + 1;
            worst = Math.Max(worst, Check(one, new CudaOptions(), i));
        }
        TestContext.Current.TestOutputHelper?.WriteLine($"worst relative L2 {worst:E2}; "
            + string.Join("; ", counts.Select(kv => $"{kv.Key}: {kv.Value}")));
        Assert.Equal(4, counts["shift_add"]);
        Assert.True(counts["linear"] >= 9, $"{counts["linear"]} linear nodes");
    }
}
