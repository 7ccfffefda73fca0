using ShiftWise.Frontend.Tables;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Runtime.Cpu;
using ShiftWise.Runtime.Cpu.Kernels;
using static ShiftWise.Runtime.Tests.KernelHarness;

namespace ShiftWise.Runtime.Tests;

/// <summary>
/// The float32 grad kernels of conv2d, linear and shift_add beyond the shared grad tests: that they (not the float64
/// fallback) run, shapes large enough for every schedule (batch split into parts, im2col chunks, 1×1 rows,
/// depthwise with a channel multiplier), many random convs, the loss seed, and bit-identical repeated runs.
/// </summary>
public sealed class GradConvKernelTests
{
    private static Vec<int> V(params int[] xs) => xs;

    private static Conv2d Conv(int stride, int pad, int dil = 1, int groups = 1) =>
        new(V(stride, stride), V(pad, pad), V(dil, dil), groups);

    private static CpuKernel KernelFor(Grad g, Tensor[] ins) => Create(g, ins.Select(t => t.Type).ToArray());

    private static void GradMatches(string what, Random rng, Op fwd, Tensor[] xs, int[] wrt, int[]? dy = null)
    {
        var (g, ins) = KernelTests.GradCase(rng, fwd, xs, wrt, dy);
        Matches($"grad {what} wrt [{string.Join(",", wrt)}] {Describe(xs)}", g, ins);
    }

    private static Tensor[] ConvInputs(Random rng, int n, int c, int h, int w, int o, int k, int groups, bool bias = true)
    {
        Tensor[] xs = [Rand(rng, n, c, h, w), Rand(rng, o, c / groups, k, k), Rand(rng, o)];
        return bias ? xs : xs[..2];
    }

    [Theory]
    [InlineData(8, 24, 14, 14, 48, 3, 2, 1, 1, 1, "chunks")]    // stage downsample: one large GEMM per chunk
    [InlineData(5, 12, 14, 14, 24, 3, 1, 1, 1, 1, "chunks")]    // stem's second conv, stride 1
    [InlineData(16, 1, 28, 28, 12, 3, 2, 1, 1, 1, "parts")]     // stem: small GEMMs, batch split, chunks of samples
    [InlineData(7, 12, 9, 9, 18, 3, 1, 1, 1, 3, "parts")]       // grouped
    [InlineData(6, 8, 10, 10, 16, 3, 1, 1, 1, 1, "parts")]      // on two cores: two chunks of samples in a part
    [InlineData(3, 96, 4, 4, 192, 3, 2, 1, 1, 1, "chunks")]     // deep downsample, 2x2 output
    [InlineData(32, 96, 2, 2, 192, 2, 2, 0, 1, 1, "chunks x32")] // downsample to 1x1 maps: too narrow to split, one GEMM
    [InlineData(8, 24, 7, 7, 48, 2, 2, 0, 1, 1, "chunks x8")]   // sw-fmnist's first downsample (3x3 maps)
    [InlineData(4, 32, 7, 7, 16, 1, 1, 0, 1, 1, "1x1")]         // pointwise: x and dX used in place
    [InlineData(32, 48, 1, 1, 12, 1, 1, 0, 1, 1, "rows")]       // SE down on a pooled map
    [InlineData(32, 12, 1, 1, 48, 1, 1, 0, 1, 1, "rows")]       // SE up
    [InlineData(6, 8, 1, 1, 12, 1, 1, 0, 1, 2, "rows")]         // grouped rows
    [InlineData(4, 18, 14, 14, 90, 3, 1, 2, 1, 18, "depthwise")] // the SW small conv: R = 18, n = 5
    [InlineData(3, 8, 11, 11, 16, 3, 2, 1, 1, 8, "depthwise")]  // depthwise, strided
    [InlineData(2, 6, 13, 12, 12, 5, 1, 4, 2, 6, "depthwise")]  // depthwise, dilated
    [InlineData(2, 4, 9, 9, 8, 3, 1, 4, 1, 4, "depthwise")]     // padding past the kernel: dY rows that read only zeros
    [InlineData(6, 10, 1, 1, 20, 3, 1, 2, 1, 10, "depthwise pairs x9")]  // SW small conv on a 1x1 map (3x3 output)
    [InlineData(5, 12, 2, 2, 12, 3, 1, 2, 1, 12, "depthwise pairs x36")] // on a 2x2 map
    [InlineData(4, 6, 2, 3, 12, 3, 2, 1, 1, 6, "depthwise pairs")]       // strided, tiny
    [InlineData(3, 8, 7, 7, 16, 3, 1, 1, 1, 8, "depthwise")]             // 7x7: register blocks
    public void Conv2dLarge(int n, int c, int h, int w, int o, int k, int stride, int pad, int dil, int groups, string mode)
    {
        var rng = new Random(n * 100 + c + o);
        var op = Conv(stride, pad, dil, groups);
        var xs = ConvInputs(rng, n, c, h, w, o, k, groups);
        var (g, ins) = KernelTests.GradCase(rng, op, xs, [0, 1, 2]);
        var kernel = KernelFor(g, ins);
        Assert.Contains(mode, kernel.Label);
        GradMatches($"conv2d {mode}", rng, op, xs, [0, 1, 2]);
        GradMatches($"conv2d {mode} no bias", rng, op, xs[..2], [0, 1]);
        GradMatches($"conv2d {mode} x only", rng, op, xs, [0]);
        GradMatches($"conv2d {mode} weight only", rng, op, xs[..2], [1]);
        GradMatches($"conv2d {mode} bias only", rng, op, xs, [2]);
    }

    /// <summary>The sequential schedule over several chunks (dW accumulated with β = 1), forced by a small scratch cap.</summary>
    [Theory]
    [InlineData(8, 24, 14, 14, 48, 3, 2, 1, 1)]
    [InlineData(5, 6, 9, 9, 12, 3, 1, 1, 3)]
    [InlineData(7, 16, 6, 6, 8, 1, 2, 0, 1)]
    public void Conv2dSeveralChunks(int n, int c, int h, int w, int o, int k, int stride, int pad, int groups)
    {
        var rng = new Random(n + c);
        var op = Conv(stride, pad, 1, groups);
        var xs = ConvInputs(rng, n, c, h, w, o, k, groups);
        var (g, ins) = KernelTests.GradCase(rng, op, xs, [0, 1, 2]);
        int kp = c / groups * k * k * op.OutSize(h, k, 0) * op.OutSize(w, k, 1);
        GemmConvGrad.ScratchCapOverride = 3 * kp;
        try
        {
            Assert.Contains("chunks x3", KernelFor(g, ins).Label);
            Matches($"grad conv2d in chunks of 3 {Describe(xs)}", g, ins);
            var (g2, ins2) = KernelTests.GradCase(rng, op, xs[..2], [1]);
            Matches($"grad conv2d weight only in chunks of 3 {Describe(xs)}", g2, ins2);
        }
        finally
        {
            GemmConvGrad.ScratchCapOverride = 0;
        }
    }

    /// <summary>Random convs of every kind, more of them and larger than the shared test, 1×1 kernels often.</summary>
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Conv2dRandom(int seed)
    {
        var rng = new Random(1000 + seed);
        int ran = 0;
        for (int i = 0; i < 30; i++)
        {
            int kind = i % 3;
            int g = kind == 0 ? 1 : rng.Next(2, 5);
            int cpg = kind == 2 ? 1 : rng.Next(1, 5);
            int c = g * cpg, o = g * rng.Next(1, 4);
            bool one = rng.Next(3) == 0;
            int k = one ? 1 : rng.Next(1, 6);
            var op = one
                ? Conv(1, 0, 1, g)
                : new Conv2d(V(rng.Next(1, 4), rng.Next(1, 4)), V(rng.Next(0, 4), rng.Next(0, 4)), V(rng.Next(1, 3), rng.Next(1, 3)), g);
            int hw = rng.Next(3) == 0 ? 1 : rng.Next(1, 16);
            var xs = new[] { Rand(rng, rng.Next(1, 7), c, hw, one ? hw : rng.Next(1, 16)),
                Rand(rng, o, cpg, k, one ? 1 : rng.Next(1, 5)), Rand(rng, o) };
            try
            {
                op.Infer(xs.Select(t => t.Type).ToArray());
            }
            catch (IrException)
            {
                continue;
            }
            var wrt = new[] { 0, 1, 2 }.Where(_ => rng.Next(3) > 0).DefaultIfEmpty(rng.Next(3)).ToArray();
            bool bias = rng.Next(2) == 0 || wrt.Contains(2);
            GradMatches($"conv2d {op}", rng, op, bias ? xs : xs[..2], bias ? wrt : wrt.Where(j => j < 2).DefaultIfEmpty(0).ToArray());
            ran++;
        }
        // draws Infer refuses are redrawn, not checked: most must be valid (26-28 of 30 here), or the test checks little
        Assert.True(ran >= 20, $"only {ran} of 30 random convolutions were valid");
    }

    [Fact]
    public void LinearModelShapes()
    {
        var rng = new Random(7);
        // pwconv1 and pwconv2 of a 14×14 stage on batch 8 (196·8 rows), the head, and a rank-1 input
        var x = Rand(rng, 8, 14, 14, 24);
        GradMatches("linear pwconv1", rng, new Linear(), [x, Rand(rng, 96, 24), Rand(rng, 96)], [0, 1, 2]);
        var h = Rand(rng, 8, 14, 14, 96);
        GradMatches("linear pwconv2", rng, new Linear(), [h, Rand(rng, 24, 96)], [0, 1]);
        GradMatches("linear pwconv2 weight only", rng, new Linear(), [h, Rand(rng, 24, 96)], [1]);
        GradMatches("linear head", rng, new Linear(), [Rand(rng, 8, 192), Rand(rng, 10, 192), Rand(rng, 10)], [0, 1, 2]);
        GradMatches("linear bias only", rng, new Linear(), [Rand(rng, 37, 13), Rand(rng, 21, 13), Rand(rng, 21)], [2]);
        GradMatches("linear rank 1", rng, new Linear(), [Rand(rng, 5), Rand(rng, 3, 5), Rand(rng, 3)], [0, 1, 2]);
    }

    [Theory]
    [InlineData(13, 3, 18, 2, 14)] // stage 0 of sw-fmnist
    [InlineData(9, 3, 24, 1, 7)]
    [InlineData(51, 5, 4, 3, 20)]  // band wider than the image
    public void ShiftAddModelShapes(int big, int small, int r, int nrep, int hw)
    {
        var rng = new Random(big * 7 + r);
        var s = SwTables.ShiftAdd(big, small, r, nrep);
        var x = Rand(rng, 4, r * s.N, hw + 2 * s.Extra, hw + 2 * s.Extra);
        foreach (var dy in new[] { new[] { 0, 1, 2 }, [0], [1], [2], [0, 2], [1, 2] })
        {
            GradMatches($"shift_add B={big} k={small} R={r} dy [{string.Join(",", dy)}]", rng, s, [x], [0], dy);
        }
    }

    /// <summary>dy=[]: the op's single output is the loss, its gradient one.</summary>
    [Fact]
    public void LossSeed()
    {
        var rng = new Random(3);
        foreach (var (op, xs) in new (Op, Tensor[])[]
        {
            (Conv(1, 0), [Rand(rng, 1, 3, 3, 3), Rand(rng, 1, 3, 3, 3), Rand(rng, 1)]),
            (Conv(2, 1), [Rand(rng, 1, 2, 2, 2), Rand(rng, 1, 2, 3, 3)]),
            (new Linear(), [Rand(rng, 1, 6), Rand(rng, 1, 6), Rand(rng, 1)]),
            (SwTables.ShiftAdd(5, 3, 1, 2), [Rand(rng, 1, 2, 3, 3)]),
        })
        {
            var wrt = Enumerable.Range(0, xs.Length).ToArray();
            var (g, ins) = KernelTests.GradCase(rng, op, xs, wrt, []);
            Matches($"grad {op.Name} as the loss seed", g, ins);
        }
    }

    [Fact]
    public void TheFloat32KernelsRun()
    {
        var rng = new Random(1);
        foreach (var (op, xs, type) in new (Op, Tensor[], Type)[]
        {
            (Conv(2, 1), ConvInputs(rng, 2, 4, 6, 6, 8, 3, 1), typeof(Conv2dGradKernel)),
            (Conv(1, 2, 1, 3), ConvInputs(rng, 2, 3, 6, 6, 6, 3, 3), typeof(Conv2dGradKernel)),
            (Conv(1, 0), ConvInputs(rng, 2, 4, 1, 1, 8, 1, 1), typeof(Conv2dGradKernel)),
            (new Linear(), [Rand(rng, 4, 5), Rand(rng, 3, 5), Rand(rng, 3)], typeof(LinearGradKernel)),
            (SwTables.ShiftAdd(7, 3, 2, 2), [Rand(rng, 1, 2 * 3, 6, 6)], typeof(ShiftAddGradKernel)),
        })
        {
            var floats = Enumerable.Range(0, xs.Length).ToArray();
            foreach (var wrt in floats.Select(i => new[] { i }).Append(floats))
            {
                var (g, ins) = KernelTests.GradCase(rng, op, xs, wrt);
                var k = KernelFor(g, ins);
                Assert.IsType(type, k);
                Assert.False(k is ReferenceGradKernel);
            }
        }
    }

    /// <summary>The coverage samples of these ops: every input differentiated, the float32 kernel, the rule.</summary>
    [Fact]
    public void CoverageSamples()
    {
        int seen = 0;
        foreach (var (op, ins) in Coverage.Samples())
        {
            if (op is not (Conv2d or Linear or ShiftAdd)) continue;
            var floats = Enumerable.Range(0, ins.Length).Where(i => ins[i].DType == DType.F32).ToArray();
            var (g, gi) = KernelTests.GradCase(new Random(1), op, ins, floats, Enumerable.Range(0, op.OutputSuffixes.Count).ToArray());
            Assert.False(KernelFor(g, gi) is ReferenceGradKernel);
            Matches($"grad {op.Name} coverage sample", g, gi);
            seen++;
        }
        Assert.True(seen >= 3);
    }

    /// <summary>Two kernels bound to the same node, each run twice, give the same bits (fixed partitions and orders).</summary>
    [Fact]
    public void RunsAreBitIdentical()
    {
        var rng = new Random(11);
        var s = SwTables.ShiftAdd(13, 3, 18, 2);
        foreach (var (op, xs, dy) in new (Op, Tensor[], int[])[]
        {
            (Conv(2, 1), ConvInputs(rng, 8, 24, 14, 14, 48, 3, 1), [0]),
            (Conv(2, 1), ConvInputs(rng, 16, 1, 28, 28, 12, 3, 1), [0]),
            (Conv(1, 2, 1, 18), ConvInputs(rng, 8, 18, 14, 14, 90, 3, 18), [0]),
            (Conv(1, 0), ConvInputs(rng, 64, 48, 1, 1, 12, 1, 1), [0]),
            (new Linear(), [Rand(rng, 8, 14, 14, 24), Rand(rng, 96, 24), Rand(rng, 96)], [0]),
            (s, [Rand(rng, 8, 18 * s.N, 16, 16)], [0, 1, 2]),
        })
        {
            var wrt = Enumerable.Range(0, xs.Length).ToArray();
            var (g, ins) = KernelTests.GradCase(rng, op, xs, wrt, dy);
            var bufs = ins.Select(t => Buf.Of(t.ToDoubles().Select(v => (float)v).ToArray())).ToArray();
            var outTypes = g.Infer(ins.Select(t => t.Type).ToArray());
            CpuKernel[] kernels = [KernelFor(g, ins), KernelFor(g, ins)];
            float[][]? first = null;
            for (int run = 0; run < 4; run++)
            {
                var kernel = kernels[run / 2];
                var outs = outTypes.Select(t => Buf.Of(Enumerable.Repeat(float.NaN, (int)t.Shape.Elements).ToArray())).ToArray();
                kernel.Run(bufs, outs);
                var got = outs.Select(b => b.Array).ToArray();
                Assert.All(got, a => Assert.DoesNotContain(a, float.IsNaN));
                if (first is null) first = got;
                else for (int i = 0; i < got.Length; i++) Assert.Equal(first[i], got[i]);
            }
        }
    }
}
