using ShiftWise.CodegenCpu;
using ShiftWise.IR;
using ShiftWise.IR.Reference;
using ShiftWise.Passes.Lowering;
using ShiftWise.Runtime.Cpu;
using ShiftWise.Tests.Shared;

namespace ShiftWise.Runtime.Tests;

/// <summary>
/// The generated CPU cross kernel on both vector ISAs (AVX2 always; AVX-512 where the CPU has AVX-512F, skipped
/// elsewhere), forced with <see cref="CpuIsa.Force"/>, against the float64 reference executor: tiny planes (1×1 to
/// 7×7), sizes that are not multiples of the vector or the row tile, batch 1–3, few planes (which the kernel cuts into
/// row chunks so that both cores work) and many. Bound: relative L2 ≤ 1e-5 (float32 sums of up to ~300 taps against
/// a float64 reference, the bound of every fp32 kernel here).
/// </summary>
public sealed class SwCrossIsaTests
{
    public static TheoryData<CpuIsaKind, int, int, int, int, int, int> Cases()
    {
        var d = new TheoryData<CpuIsaKind, int, int, int, int, int, int>();
        // channels, height, width, big, batch, seed
        int[][] shapes =
        [
            [3, 1, 1, 5, 1, 1], [3, 2, 3, 7, 2, 2], [5, 5, 4, 13, 1, 3], [4, 7, 7, 13, 3, 4], [3, 3, 7, 9, 1, 5],
            [3, 40, 9, 11, 1, 6], [3, 9, 13, 31, 2, 7], [3, 17, 30, 51, 1, 8], [17, 14, 14, 47, 1, 9],
            [6, 6, 33, 21, 2, 10],
        ];
        foreach (var isa in new[] { CpuIsaKind.Avx2, CpuIsaKind.Avx512 })
        {
            foreach (var s in shapes) d.Add(isa, s[0], s[1], s[2], s[3], s[4], s[5]);
        }
        return d;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesTheReferenceOnBothIsas(CpuIsaKind isa, int channels, int h, int w, int big, int batch, int seed)
    {
        Require(isa);
        var (g, wts) = SwLayers.Layer(channels, h, w, big, 3, 2, batch, seed);
        double err = Check(g, wts, seed, isa, null);
        Assert.True(err <= 1e-5, $"{isa} C{channels} {h}x{w} B{big} N{batch}: {err:e2}");
    }

    [Theory]
    [InlineData(CpuIsaKind.Avx2, 4, 3)]
    [InlineData(CpuIsaKind.Avx2, 1, 8)]
    [InlineData(CpuIsaKind.Avx2, 8, 1)]
    [InlineData(CpuIsaKind.Avx512, 7, 2)]
    [InlineData(CpuIsaKind.Avx512, 4, 6)]
    [InlineData(CpuIsaKind.Avx512, 3, 8)]
    [InlineData(CpuIsaKind.Avx512, 2, 1)]
    public void WideTilesMatch(CpuIsaKind isa, int rb, int cv)
    {
        Require(isa);
        var (g, wts) = SwLayers.Layer(3, 11, 70, 25, 5, 2, 2, 31);
        var t = new Dictionary<string, int> { ["lowering"] = 0, ["row_block"] = rb, ["col_vectors"] = cv };
        double err = Check(g, wts, 31, isa, t);
        Assert.True(err <= 1e-5, $"{isa} tile {rb}x{cv}: {err:e2}");
    }

    [Fact]
    public void TheIsaDecidesTheVectorType()
    {
        var (g, _) = SwLayers.Layer(3, 9, 20, 13, 3, 2, 1, 1);
        var spec = SwLayerSpec.Of(g.Nodes[0], g.ValueTypes()[g.Nodes[0].Inputs[0]].Shape);
        var avx2 = CpuCodegen.SwCross(spec, null, 8).Source;
        var avx512 = CpuCodegen.SwCross(spec, null, 16).Source;
        Assert.Contains("Vector256", avx2);
        Assert.DoesNotContain("Vector512", avx2);
        Assert.Contains("Avx512F.FusedMultiplyAdd", avx512);
        Assert.DoesNotContain("Vector256", avx512);
        Assert.Throws<ArgumentException>(() => CpuCodegen.SwCross(spec, null, 4));
        // the 16-wide kernel takes larger tiles (32 registers: 24 accumulators), the 8-wide one rejects them (12)
        var wide = new Dictionary<string, int> { ["lowering"] = 0, ["row_block"] = 4, ["col_vectors"] = 4 };
        var (g2, _) = SwLayers.Layer(3, 9, 70, 13, 3, 2, 1, 1);
        var spec2 = SwLayerSpec.Of(g2.Nodes[0], g2.ValueTypes()[g2.Nodes[0].Inputs[0]].Shape);
        Assert.Throws<ArgumentException>(() => new SwCrossCpuModel(spec2, wide, 8));
        var m16 = new SwCrossCpuModel(spec2, wide, 16);
        Assert.Equal((4, 4, 5), (m16.RowBlock, m16.ColVectors, m16.VectorsPerRow));
        // planes of 8 or fewer columns keep Vector256 under AVX-512; wider ones take Vector512
        var (g7, _) = SwLayers.Layer(3, 7, 7, 13, 3, 2, 1, 1);
        var spec7 = SwLayerSpec.Of(g7.Nodes[0], g7.ValueTypes()[g7.Nodes[0].Inputs[0]].Shape);
        Assert.Equal(8, SwCrossCpuModel.WidthFor(spec7, 16));
        Assert.Equal(16, SwCrossCpuModel.WidthFor(spec, 16));
        Assert.Equal(8, SwCrossCpuModel.WidthFor(spec, 8));
    }

    [Theory]
    [InlineData(null, false, CpuIsaKind.Avx2)]
    [InlineData(null, true, CpuIsaKind.Avx512)]
    [InlineData("", true, CpuIsaKind.Avx512)]
    [InlineData("auto", false, CpuIsaKind.Avx2)]
    [InlineData("AVX2", true, CpuIsaKind.Avx2)]
    [InlineData(" avx512 ", true, CpuIsaKind.Avx512)]
    public void TheVariableSelectsTheIsa(string? setting, bool hasAvx512, CpuIsaKind expected) =>
        Assert.Equal(expected, CpuIsa.Resolve(setting, hasAvx512));

    [Fact]
    public void BadSettingsAreErrorsNamingTheVariable()
    {
        var e = Assert.Throws<InvalidOperationException>(() => CpuIsa.Resolve("avx512", false));
        Assert.Contains("SWC_CPU_ISA", e.Message);
        Assert.Contains("SWC_CPU_ISA=sse", Assert.Throws<InvalidOperationException>(() => CpuIsa.Resolve("sse", true)).Message);
    }

    [Fact]
    public void ForceScopesTheChoiceAndTheKernelRecordsIt()
    {
        var outside = CpuIsa.Current;
        using (CpuIsa.Force(CpuIsaKind.Avx2))
        {
            Assert.Equal(CpuIsaKind.Avx2, CpuIsa.Current);
            Assert.Equal(8, CpuIsa.VectorWidth);
            var (g, w) = SwLayers.Layer(3, 5, 5, 7, 3, 1, 1, 3);
            var req = Request(g, w);
            Assert.Equal(CpuIsaKind.Avx2, new SwLayerKernel(req, SwLayerSpec.Of(req.Node, req.InputTypes[0].Shape)).Isa);
        }
        Assert.Equal(outside, CpuIsa.Current);
    }

    private static void Require(CpuIsaKind isa)
    {
        Assert.SkipUnless(SwLayerKernel.Supported, "the generated SW kernels need AVX2 and FMA, which this CPU lacks");
        Assert.SkipWhen(isa == CpuIsaKind.Avx512 && !CpuIsa.HasAvx512, "this CPU lacks AVX-512F");
    }

    private static KernelRequest Request(Graph g, Dictionary<string, Tensor> w)
    {
        var node = g.Nodes[0];
        var types = g.ValueTypes();
        return new KernelRequest(node, node.Inputs.Select(i => types[i]).ToArray(),
            node.Inputs.Select(i => w.GetValueOrDefault(i)).ToArray());
    }

    private static double Check(Graph g, Dictionary<string, Tensor> w, int seed, CpuIsaKind isa,
        IReadOnlyDictionary<string, int>? t)
    {
        var x = SwLayers.Input(g, seed);
        var expected = ReferenceExecutor.Run(g, w, x)[g.Outputs[0]].ToDoubles();
        var req = Request(g, w);
        SwLayerKernel k;
        using (CpuIsa.Force(isa))
        {
            k = new SwLayerKernel(req, SwLayerSpec.Of(req.Node, req.InputTypes[0].Shape), t);
        }
        Assert.Equal(isa, k.Isa);
        Assert.Equal(isa == CpuIsaKind.Avx512 && req.InputTypes[0].Shape[3] > 8 ? 16 : 8, k.VectorWidth);
        var xs = ((float[])x.Values.Single().Data).Prepend(0f).ToArray(); // a non-zero offset
        var y = new float[expected.Length + 3];
        k.Run([new Buf(xs, 1, xs.Length - 1)], [new Buf(y, 2, expected.Length)]);
        var got = y.AsSpan(2, expected.Length).ToArray().Select(v => (double)v).ToArray();
        return IR.Analysis.Error.RelL2(got, expected);
    }
}
