using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;

namespace ShiftWise.CudaEmu;

/// <summary>The index arithmetic of the CUDA view-models and the GEMM mapping, checked without running a kernel.</summary>
public sealed class CudaViewModelTests
{
    [Fact]
    public void PerChannelBroadcastCollapsesToTwoAxes()
    {
        var m = new BinaryModel("k", 256, "*", new Shape(2, 3, 5, 7), new Shape(2, 3, 1, 1), new Shape(2, 3, 5, 7));
        Assert.True(m.DirectA);
        Assert.False(m.DirectB);
        Assert.Equal([new BroadcastAxis(35, 1, 0, false, false, false, true), new BroadcastAxis(6, 35, 1, true, false, true)],
            m.Axes);
    }

    [Fact]
    public void SameShapesNeedNoIndexArithmetic()
    {
        var m = new BinaryModel("k", 256, "+", new Shape(2, 3, 4), new Shape(2, 3, 4), new Shape(2, 3, 4));
        Assert.True(m.DirectA && m.DirectB);
        Assert.False(m.AnyUsed);
    }

    [Fact]
    public void CollapsedStridesAddressEveryElementLikeTheReference()
    {
        var rng = new Random(5);
        for (int trial = 0; trial < 200; trial++)
        {
            int rank = rng.Next(1, 5);
            var o = Enumerable.Range(0, rank).Select(_ => rng.Next(1, 5)).ToArray();
            int[] Squash(int[] s) => s.Select(d => rng.Next(3) == 0 ? 1 : d).ToArray();
            var a = Squash(o)[rng.Next(rank)..];
            var b = Squash(o);
            var outShape = Binary.Broadcast(new Shape(a), new Shape(b));
            var m = new BinaryModel("k", 32, "+", new Shape(a), new Shape(b), outShape);
            var sa = new Shape(a).BroadcastStrides(outShape);
            var sb = new Shape(b).BroadcastStrides(outShape);
            var ost = outShape.Strides();
            for (long i = 0; i < outShape.Elements; i++)
            {
                long ea = 0, eb = 0;
                for (int d = 0; d < outShape.Rank; d++)
                {
                    long q = i / ost[d] % outShape[d];
                    ea += q * sa[d];
                    eb += q * sb[d];
                }
                long r = i, ia = 0, ib = 0;
                foreach (var ax in m.Axes)
                {
                    long q = ax.IsOuter ? r : r % ax.Size;
                    if (ax.UseA) ia += q * ax.StrideA;
                    if (ax.UseB) ib += q * ax.StrideB;
                    if (ax.Divides) r /= ax.Size;
                    else if (!ax.IsOuter) r = 0;
                }
                Assert.Equal(ea, m.DirectA ? i : ia);
                Assert.Equal(eb, m.DirectB ? i : ib);
            }
        }
    }

    [Fact]
    public void MeanTakesABlockPerOutputOnlyForFewLongRows()
    {
        Assert.Equal("warp", new MeanModel("k", 256, 6, 35).PerBlock);
        Assert.Equal("block", new MeanModel("k", 256, 6, 1640).PerBlock);
        Assert.Equal("warp", new MeanModel("k", 256, 4096, 3136).PerBlock);
        Assert.Equal(1, new MeanModel("k", 256, 6, 35).Blocks);
    }

    [Fact]
    public void LayerNormCachesRowsUpTo512Channels()
    {
        var m = new LayerNormLastModel("k", 256, 10, 40, 1e-6);
        Assert.Equal([new RowSlot(0, 0, true), new RowSlot(1, 32, false)], m.Slots);
        Assert.True(new LayerNormLastModel("k", 256, 1, 512, 1e-6).Cached);
        Assert.False(new LayerNormLastModel("k", 256, 1, 513, 1e-6).Cached);
        Assert.Equal("1E-06f", m.Eps);
        Assert.Equal("0.025f", m.InvChannels);
    }

    [Fact]
    public void ConvModelCountsThreadsAndChecksBoundsOnlyWithPadding()
    {
        var m = new ConvModel("k", 256, new Conv2d(Vec.Of(2, 1), Vec.Of(1, 0), Vec.Of(2, 1), 2), new Shape(1, 8, 6, 7),
            new Shape(12, 4, 3, 3), true, 2);
        Assert.Equal((2, 5), (m.OutHeight, m.OutWidth));
        Assert.Equal(6, m.ChannelBlocks);
        Assert.Equal(60, m.Work);
        Assert.True(m.CheckRows);
        Assert.False(m.CheckColumns);
        Assert.Throws<ArgumentException>(() => new ConvModel("k", 256, Conv2d.Simple(0), new Shape(1, 3, 4, 4),
            new Shape(6, 3, 1, 1), false, 4));
    }

    [Fact]
    public void IndicesWidenPastTwoToThe31Elements()
    {
        Assert.Equal("int", new MeanModel("k", 256, 1 << 20, 1 << 10).IndexType);
        Assert.Equal("long long", new MeanModel("k", 256, 1 << 21, 1 << 10).IndexType);
    }

    public static TheoryData<bool, bool> Layouts() => new() { { false, false }, { true, false }, { false, true }, { true, true } };

    /// <summary>Runs the mapped call with a plain column-major strided-batched SGEMM and compares with the reference.</summary>
    [Theory]
    [MemberData(nameof(Layouts))]
    public void GemmMappingWritesTheOutputLayoutDirectly(bool inNchw, bool outNchw)
    {
        var op = new Gemm(inNchw, outNchw, GemmAct.None, false, false, 1e-6, false);
        var types = KernelCases.GemmInputs(op, n: 2, h: 3, w: 5, k: 7, o: 6).Select(t => t with { DType = DType.F64 }).ToArray();
        var rng = new Random(9);
        var x = Random(types[0], rng);
        var w = Random(types[1], rng);
        var want = ReferenceExecutor.Evaluate(op, [x, w])[0].ToDoubles();
        var call = GemmMapping.Map(op, types[0].Shape, types[1].Shape, new ArgRef(ArgKind.Value, "x"),
            new ArgRef(ArgKind.Param, "w"), new ArgRef(ArgKind.Value, "y"));
        var buffers = new Dictionary<string, double[]> { ["x"] = x.ToDoubles(), ["w"] = w.ToDoubles(), ["y"] = new double[want.Length] };
        RunGemm(call, buffers);
        double err = ShiftWise.IR.Analysis.Error.RelL2(buffers["y"], want);
        Assert.True(err < 1e-12, $"relative L2 {err:e3}");
        Assert.Equal((1f, 0f), (call.Alpha, call.Beta));
    }

    private static Tensor Random(TensorType t, Random rng)
    {
        var v = new double[t.Shape.Elements];
        for (int i = 0; i < v.Length; i++) v[i] = rng.NextDouble() * 2 - 1;
        return Tensor.FromDoubles(t, v);
    }

    private static void RunGemm(GemmCall c, Dictionary<string, double[]> buf)
    {
        double[] a = buf[c.A.Name], b = buf[c.B.Name], y = buf[c.C.Name];
        for (int bi = 0; bi < c.Batch; bi++)
        for (int i = 0; i < c.M; i++)
        for (int j = 0; j < c.N; j++)
        {
            double s = 0;
            for (int k = 0; k < c.K; k++)
            {
                double av = c.TransA ? a[bi * c.StrideA + k + (long)i * c.Lda] : a[bi * c.StrideA + i + (long)k * c.Lda];
                double bv = c.TransB ? b[bi * c.StrideB + j + (long)k * c.Ldb] : b[bi * c.StrideB + k + (long)j * c.Ldb];
                s += av * bv;
            }
            y[bi * c.StrideC + i + (long)j * c.Ldc] = c.Alpha * s;
        }
    }
}
