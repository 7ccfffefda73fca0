using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Text;

namespace ShiftWise.Passes.Tests;

/// <summary>
/// The 16-bit storage pass (--precision bf16 / fp16, issue 22): what it retypes, where it casts, and what storing in
/// 16 bits alone costs the logits (the reference executor rounds each stored value to the graph's type and computes
/// in float64, so the kernels' float32 arithmetic is not part of this).
/// </summary>
public sealed class StoreIn16BitsTests
{
    private static (Model, Dictionary<string, Tensor>) SmallV2(int seed = 0)
    {
        var o = new ShiftWiseV2Options
        {
            InChans = 3, NumClasses = 10, Depths = [1, 1, 2, 1], Dims = [16, 32, 48, 64], KernelSize = [13, 11, 7, 5, 3],
            Batch = 2, Height = 48, Width = 40, DropPathRate = 0.1,
        };
        var m = ShiftWiseV2.Build(o, dtype: DType.F32);
        return (m, WeightInit.Draw(m, InitScheme.Lively, (uint)seed));
    }

    private static PassContext Compile(Graph g, IReadOnlyDictionary<string, Tensor> w, Precision p)
    {
        var ctx = new PassContext(g, w);
        new PassManager(Pipelines.Get("inference", p)).Run(ctx);
        return ctx;
    }

    public static TheoryData<Precision> Sixteen() => new(Precision.Bf16, Precision.Fp16);

    [Theory]
    [MemberData(nameof(Sixteen))]
    public void StoresEveryActivationAndWeightIn16BitsWithFloat32AtTheEdges(Precision p)
    {
        var (m, w) = SmallV2();
        var f32 = Compile(m.Graph, w, Precision.Fp32);
        var ctx = Compile(m.Graph, w, p);
        var g = ctx.Graph;
        var t = p.Storage();
        // the caller's view is unchanged: the same inputs and outputs, by name and float32 type
        Assert.Equal(f32.Graph.Inputs, g.Inputs);
        Assert.Equal(f32.Graph.Outputs, g.Outputs);
        var types = g.ValueTypes();
        Assert.All(g.Outputs, o => Assert.Equal(DType.F32, types[o].DType));
        // one cast in (f32 -> 16 bits) per input, one cast out per output, nothing else in float32
        var casts = g.Nodes.Where(n => n.Op is Cast).ToArray();
        Assert.Equal(g.Inputs.Count + g.Outputs.Count, casts.Length);
        Assert.Equal(g.Inputs.Select(i => i.Name), casts.Where(c => ((Cast)c.Op).To == t).Select(c => c.Inputs[0]));
        Assert.Equal(g.Outputs, casts.Where(c => ((Cast)c.Op).To == DType.F32).Select(c => c.Outputs[0]));
        Assert.All(g.Nodes.Where(n => n.Op is not Cast), n => Assert.All(n.Types, x => Assert.Equal(t, x.DType)));
        Assert.All(g.Params, d => Assert.Equal(t, d.Type.DType));
        // the weights are the float32 pipeline's, rounded once to nearest even
        foreach (var d in g.Params)
        {
            Assert.Equal(t, ctx.Weights[d.Name].DType);
            var want = f32.Weights[d.Name].ToDoubles().Select(v => t.Round(v));
            Assert.Equal(want, ctx.Weights[d.Name].ToDoubles());
        }
        // the same nodes otherwise, and a graph that prints and parses back
        Assert.Equal(f32.Graph.Nodes.Count + casts.Length, g.Nodes.Count);
        Assert.Equal(g, SwirParser.Parse(SwirPrinter.Print(g)));
    }

    /// <summary>
    /// Storage alone against float64: every stored value is rounded once (relative error at most u = 2⁻⁸ for bf16,
    /// 2⁻¹¹ for fp16), and the roundings of the ~20 tensors on the path from input to logits add in quadrature, some
    /// amplified and some damped by what follows (the norms rescale). Measured on this net and input: 2.28u (8.9e-3,
    /// bf16) and 2.17u (1.1e-3, fp16); the bound is 4u. Storing nothing in 16 bits would give 0, which fails too.
    /// </summary>
    [Theory]
    [MemberData(nameof(Sixteen))]
    public void LogitsStayWithinTheStorageRoundingBound(Precision p)
    {
        var (m, w) = SmallV2(seed: 5);
        var x = PassTestUtil.Input(m.Graph, 7);
        var want = IR.Reference.ReferenceExecutor.Run(m.Graph, w, x)[m.Graph.Outputs[0]];
        var ctx = Compile(m.Graph, w, p);
        var got = IR.Reference.ReferenceExecutor.Run(ctx.Graph, ctx.Weights, x)[m.Graph.Outputs[0]];
        double u = p == Precision.Bf16 ? Math.Pow(2, -8) : Math.Pow(2, -11);
        double err = PassTestUtil.RelL2(got, want);
        Assert.True(err > 0, "16-bit storage changed nothing: the pass did not round");
        Assert.True(err <= 4 * u, $"{p.Name()}: logits relative L2 {err:E2} > 4u = {4 * u:E2}");
    }

    [Fact]
    public void Float32AndTf32LeaveThePipelineAsItWas()
    {
        foreach (var p in new[] { Precision.Fp32, Precision.Tf32 })
        {
            Assert.Equal(Pipelines.Get("inference").Select(x => x.Name), Pipelines.Get("inference", p).Select(x => x.Name));
        }
        Assert.Equal("store-16bit", Pipelines.Get("none", Precision.Bf16).Single().Name);
    }

    [Fact]
    public void TheTrainingPipelineMixesPrecisionBeforeAutodiff()
    {
        Assert.Equal(["dce", "mixed-precision", "autodiff"],
            Pipelines.Get("training", Precision.Fp16).Select(x => x.Name));
    }
}
