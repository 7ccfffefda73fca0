using ShiftWise.CodegenCuda;
using ShiftWise.Runtime.Train;

namespace ShiftWise.CudaEmu;

/// <summary>
/// The device optimizer (<see cref="OptimizerKernels"/>) in the emulator against the CPU trainer's optimizers: the
/// same parameters, gradients and learning-rate schedule give the same bits in the parameters and in every state
/// buffer, step after step, for AdamW, SGD with and without momentum, and gradient accumulation.
/// </summary>
public sealed class OptimizerEmuTests
{
    private static readonly Dictionary<string, int[]> Shapes = new(StringComparer.Ordinal)
    {
        ["stem.weight"] = [8, 3, 3, 3], ["stem.bias"] = [8], ["norm.weight"] = [8], ["head.weight"] = [5, 8],
        ["head.bias"] = [5], ["blocks.0.gamma"] = [37],
    };

    private static readonly double[] Schedule = [4e-3, 3.1e-3, 2.2e-4, 1e-2];

    private static Dictionary<string, float[]> Random(Random rng, double scale) => Shapes.ToDictionary(kv => kv.Key,
        kv => Enumerable.Range(0, kv.Value.Aggregate(1, (a, b) => a * b))
            .Select(_ => (float)((rng.NextDouble() * 2 - 1) * scale)).ToArray(), StringComparer.Ordinal);

    private static FlatParameters Layout(Optimizer o) =>
        FlatParameters.Of(Shapes.ToDictionary(kv => kv.Key, kv => kv.Value.Aggregate(1, (a, b) => a * b)),
            n => o.WeightDecayOf(n) != 0);

    private static float[] Flat(FlatParameters f, IReadOnlyDictionary<string, float[]> values)
    {
        var flat = new float[f.Total];
        foreach (var (name, offset, _) in f.Segments) values[name].CopyTo(flat, offset);
        return flat;
    }

    private static void AssertSameBits(FlatParameters f, IReadOnlyDictionary<string, float[]> want, EmuBuffer got,
        string what)
    {
        var g = got.ToArray();
        foreach (var (name, offset, size) in f.Segments)
        {
            for (int i = 0; i < size; i++)
            {
                Assert.True(BitConverter.SingleToInt32Bits(want[name][i]) == BitConverter.SingleToInt32Bits(g[offset + i]),
                    $"{what} of {name}[{i}]: CPU {want[name][i]:R}, device {g[offset + i]:R}");
            }
        }
    }

    [Fact]
    public void AdamWOnTheDeviceEqualsTheCpuOptimizerBitForBit()
    {
        TestKernels.RequireEmulator();
        var rng = new Random(3);
        var cpu = new AdamW(Shapes, weightDecay: 0.05);
        var f = Layout(cpu);
        Assert.True(f.Decaying is > 0 and < 300); // both groups present: the no-decay rule is exercised
        var parameters = Random(rng, 1);
        using var p = EmuBuffer.From(Flat(f, parameters));
        using var m = EmuBuffer.Alloc(f.Total);
        using var v = EmuBuffer.Alloc(f.Total);
        m.Span.Clear();
        v.Span.Clear();
        using var module = CudaEmulator.Compile(OptimizerKernels.AdamW(f, 0.9, 0.999, 1e-8));
        for (int step = 1; step <= Schedule.Length; step++)
        {
            var grads = Random(rng, step);
            cpu.LearningRate = Schedule[step - 1];
            cpu.Step(parameters, grads);
            var (decay, stepSize, bc2Sqrt) = AdamW.Scalars(Schedule[step - 1], 0.05f, 0.9, 0.999, step);
            using var g = EmuBuffer.From(Flat(f, grads));
            using var hyper = EmuBuffer.From([decay, stepSize, bc2Sqrt]);
            module.Launch(module.Kernel.Entries[0], OptimizerKernels.Grid(f), new(OptimizerKernels.Threads), 0,
                p.Ptr, g.Ptr, m.Ptr, v.Ptr, hyper.Ptr);
            var state = cpu.SaveState().Buffers;
            AssertSameBits(f, parameters, p, $"step {step}: parameter");
            AssertSameBits(f, Shapes.Keys.ToDictionary(n => n, n => state[n + "/exp_avg"]), m, $"step {step}: exp_avg");
            AssertSameBits(f, Shapes.Keys.ToDictionary(n => n, n => state[n + "/exp_avg_sq"]), v,
                $"step {step}: exp_avg_sq");
        }
        Assert.DoesNotContain("atomic", module.Kernel.Source);
    }

    [Theory]
    [InlineData(0.9, 1e-4)]
    [InlineData(0.0, 0.0)]
    public void SgdOnTheDeviceEqualsTheCpuOptimizerBitForBit(double momentum, double weightDecay)
    {
        TestKernels.RequireEmulator();
        var rng = new Random(5);
        var cpu = new Sgd(Shapes, 0.1, momentum, weightDecay);
        var f = Layout(cpu);
        var parameters = Random(rng, 1);
        using var p = EmuBuffer.From(Flat(f, parameters));
        using var buf = EmuBuffer.Alloc(f.Total);
        buf.Span.Clear();
        using var module = CudaEmulator.Compile(OptimizerKernels.Sgd(f, weightDecay, momentum));
        for (int step = 1; step <= Schedule.Length; step++)
        {
            var grads = Random(rng, 1);
            cpu.LearningRate = Schedule[step - 1];
            cpu.Step(parameters, grads);
            using var g = EmuBuffer.From(Flat(f, grads));
            using var hyper = EmuBuffer.From([(float)Schedule[step - 1], step == 1 ? 1f : 0f]);
            if (momentum != 0)
            {
                module.Launch(module.Kernel.Entries[0], OptimizerKernels.Grid(f), new(OptimizerKernels.Threads), 0,
                    p.Ptr, g.Ptr, buf.Ptr, hyper.Ptr);
                var state = cpu.SaveState().Buffers;
                AssertSameBits(f, Shapes.Keys.ToDictionary(n => n, n => state[n + "/momentum_buffer"]), buf,
                    $"step {step}: momentum_buffer");
            }
            else
            {
                module.Launch(module.Kernel.Entries[0], OptimizerKernels.Grid(f), new(OptimizerKernels.Threads), 0,
                    p.Ptr, g.Ptr, hyper.Ptr);
            }
            AssertSameBits(f, parameters, p, $"step {step}: parameter");
        }
    }

    [Fact]
    public void AccumulatedGradientsEqualTheCpuAccumulatorsSums()
    {
        TestKernels.RequireEmulator();
        var rng = new Random(7);
        var cpu = new Sgd(Shapes, 0.1, 0.9, 1e-4);
        var f = Layout(cpu);
        const int micro = 3;
        var parameters = Random(rng, 1);
        var acc = new GradientAccumulator(cpu, parameters, micro);
        using var sums = EmuBuffer.Alloc(f.Total);
        sums.Span.Clear();
        using var module = CudaEmulator.Compile(OptimizerKernels.Accumulate(f));
        for (int k = 0; k < micro - 1; k++)
        {
            var grads = Random(rng, 1);
            // swc train scales each micro-batch's gradient by 1 / micro before summing (TrainRun)
            var scaled = grads.ToDictionary(kv => kv.Key, kv => kv.Value.Select(x => x * acc.LossScale).ToArray());
            Assert.False(acc.Accumulate(scaled));
            using var g = EmuBuffer.From(Flat(f, grads));
            using var hyper = EmuBuffer.From([acc.LossScale]);
            module.Launch(module.Kernel.Entries[0], OptimizerKernels.Grid(f), new(OptimizerKernels.Threads), 0,
                sums.Ptr, g.Ptr, hyper.Ptr);
            AssertSameBits(f, acc.Sums, sums, $"micro-batch {k}: sum");
        }
    }

    [Fact]
    public void TheOptimizerKernelsCompileWithNvrtcForCompute80And90WithoutLocalMemory()
    {
        if (!Runtime.Cuda.NvrtcCompiler.Available) Assert.Skip(Runtime.Cuda.NvrtcCompiler.MissingReason);
        var f = Layout(new AdamW(Shapes));
        foreach (var k in new[] { OptimizerKernels.AdamW(f, 0.9, 0.999, 1e-8), OptimizerKernels.Sgd(f, 1e-4, 0.9),
            OptimizerKernels.Sgd(f, 0, 0), OptimizerKernels.Accumulate(f) })
        {
            foreach (var arch in new[] { "compute_80", "compute_90" })
            {
                var ptx = Runtime.Cuda.NvrtcCompiler.Compile(k.Source, k.FileName, arch).Ptx;
                Assert.DoesNotContain(".local", ptx);
                Assert.Contains(".entry " + k.Entries[0] + "(", ptx);
                // the __f*_rn intrinsics keep every multiply and add apart, as the CPU rounds them
                Assert.DoesNotContain("fma.rn.f32", ptx);
            }
        }
    }

    [Fact]
    public void TheLayoutPutsTheDecayingParametersFirstInNameOrder()
    {
        var f = Layout(new AdamW(Shapes));
        // 1-D parameters and biases have no decay (the no-decay rule): the matrices come first
        Assert.Equal(["head.weight", "stem.weight", "blocks.0.gamma", "head.bias", "norm.weight", "stem.bias"],
            f.Segments.Select(s => s.Name));
        Assert.Equal(40 + 216, f.Decaying);
        Assert.Equal(f.Decaying + 37 + 5 + 8 + 8, f.Total);
    }
    /// <summary>
    /// fp16's unscale-and-check: every gradient times 1 / scale (a power of two: exact), the flag set by an infinity
    /// or a NaN anywhere in the buffer (first, last or middle element) and left 0 otherwise.
    /// </summary>
    [Fact]
    public void UnscaleDividesByTheLossScaleAndFlagsNonFiniteGradients()
    {
        TestKernels.RequireEmulator();
        var rng = new Random(5);
        var f = Layout(new AdamW(Shapes, weightDecay: 0.05));
        using var module = CudaEmulator.Compile(OptimizerKernels.Unscale(f));
        var entry = OptimizerKernels.Unscale(f).Entries[0];
        var clean = Flat(f, Random(rng, 3e4));
        foreach (long bad in new long[] { -1, 0, f.Total / 2, f.Total - 1 })
        {
            foreach (float poison in new[] { float.PositiveInfinity, float.NegativeInfinity, float.NaN })
            {
                if (bad < 0 && !float.IsPositiveInfinity(poison)) continue;
                var g = (float[])clean.Clone();
                if (bad >= 0) g[bad] = poison;
                using var gb = EmuBuffer.From(g);
                using var found = EmuBuffer.From([0f]);
                using var hyper = EmuBuffer.From([1f / 65536]);
                module.Launch(entry, OptimizerKernels.Grid(f), new(OptimizerKernels.Threads), 0,
                    [gb.Ptr, found.Ptr, hyper.Ptr]);
                int flag = BitConverter.SingleToInt32Bits(found.ToArray()[0]);
                Assert.Equal(bad >= 0 ? 1 : 0, flag);
                var got = gb.ToArray();
                for (long i = 0; i < f.Total; i++)
                {
                    if (i == bad) continue;
                    Assert.Equal(BitConverter.SingleToInt32Bits(clean[i] / 65536), BitConverter.SingleToInt32Bits(got[i]));
                }
            }
        }
    }
}
