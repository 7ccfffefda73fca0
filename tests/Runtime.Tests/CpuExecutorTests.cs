using ShiftWise.Runtime.Cpu;
using ShiftWise.Runtime.Compile;
using ShiftWise.Frontend;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;

namespace ShiftWise.Runtime.Tests;

/// <summary>Whole networks compiled for the CPU against the reference executor.</summary>
public sealed class CpuExecutorTests
{
    private static double RelL2(double[] a, double[] b)
    {
        Assert.Equal(b.Length, a.Length);
        return IR.Analysis.Error.RelL2(a, b);
    }

    private static Tensor Input(TensorType t, int seed)
    {
        var rng = new Random(seed);
        return Tensor.FromDoubles(t, Enumerable.Range(0, (int)t.Shape.Elements).Select(_ => rng.NextDouble() * 2 - 1).ToArray());
    }

    [Theory]
    [InlineData(1, "inference")]
    [InlineData(2, "inference")]
    [InlineData(2, "none")]
    public void SmallV2MatchesTheReference(int batch, string pipeline)
    {
        var m = ModelSource.Load("sw-v2", new ModelArgs
        {
            Depths = [1, 1, 2, 1], Dims = [16, 32, 48, 64], KernelSize = [13, 11, 7, 5, 3], ImageSize = 40, NumClasses = 10,
            Batch = batch, Seed = 4,
        }, withWeights: true);
        var cm = Driver.Compile(m, new CpuTarget(), new CompileOptions { Pipeline = pipeline });
        var x = Input(m.Graph.Inputs[0].Type, 1);
        var y = cm.Run(x).ToDoubles();
        var r = ReferenceExecutor.Run(m.Graph, m.Weights, new Dictionary<string, Tensor> { ["x"] = x })[m.Graph.Outputs[0]].ToDoubles();
        Assert.True(RelL2(y, r) <= 1e-5, $"{RelL2(y, r):e2}");
        // the executor's arena is reused between runs: a second run gives the same bits
        Assert.Equal(y, cm.Run(x).ToDoubles());
    }

    [Fact]
    public void SwTinyLogitsMatchTheFloat64Reference()
    {
        // sw-tiny at 224² with every parameter random (lively init) but the layer scale at U(0.05, 0.15), so each block
        // visibly moves the residual stream without making the network chaotic: float32 rounding of the folded
        // weights alone then stays near 1e-6 (with layer scale U(0.5, 1.5) even a float32 reference run of the
        // unoptimised graph drifts 8e-6 from float64). Bound: relative L2 1e-5 against the float64 reference.
        var m = ModelSource.Load("sw-tiny", new ModelArgs { Seed = 21 }, withWeights: true);
        var w = m.Weights.ToDictionary(kv => kv.Key, kv => kv.Key.EndsWith(".gamma", StringComparison.Ordinal)
            ? Tensor.FromDoubles(kv.Value.Type, kv.Value.ToDoubles().Select(v => v / 10).ToArray())
            : kv.Value);
        m = m with { Weights = w };
        var cm = Driver.Compile(m, new CpuTarget());
        Assert.Equal(27, cm.Graph.Nodes.Count(n => n.Op is FusedShiftWise));
        var x = Input(m.Graph.Inputs[0].Type, 3);
        var y = cm.Run(x).ToDoubles();
        var m64 = ShiftWiseV2.Build(ShiftWiseV2Options.Preset("sw-tiny")!, dtype: DType.F64);
        var r = ReferenceExecutor.Run(m64.Graph, w, new Dictionary<string, Tensor> { ["x"] = x })[m64.Graph.Outputs[0]].ToDoubles();
        double err = RelL2(y, r);
        Assert.True(err <= 1e-5, $"sw-tiny logits: relative L2 {err:e2}");
    }
}
