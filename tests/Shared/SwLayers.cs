using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes;

namespace ShiftWise.Tests.Shared;

/// <summary>
/// Random compiled SW layers, one fused_shiftwise node each: the test matrix of the CPU and CUDA SW kernels (this
/// file is linked into both test projects).
/// </summary>
public static class SwLayers
{
    /// <summary>
    /// Seeded layer: big kernels odd and even up to 63, small 3 and 5, N_rep 1–4, batch 1–2, sizes smaller than
    /// the band and not multiples of any tile, ~30% pruned sub-kernels.
    /// </summary>
    public static (Graph Graph, Dictionary<string, Tensor> Weights) Layer(int seed, int maxSize = 0)
    {
        var rng = new Random(seed);
        int small = rng.Next(2) == 0 ? 3 : 5;
        int big = rng.Next(small, 64);
        int n = (big + small - 1) / small;
        int lim = maxSize > 0 ? maxSize : n * small + 12;
        var m = ShiftWiseV2.BuildLayer(rng.Next(3, 12), rng.Next(1, Math.Min(lim, n * small + 4)), rng.Next(1, lim), big,
            small, rng.Next(1, 5), 0.23, rng.Next(1, 3));
        return Fuse(m, seed, rng);
    }

    /// <summary>
    /// The fused SW layer of <paramref name="channels"/> channels on <paramref name="height"/>×<paramref name="width"/>
    /// planes (ghost ratio 0.23), lively weights from <paramref name="seed"/>, 30% of the sub-kernels pruned.
    /// </summary>
    public static (Graph Graph, Dictionary<string, Tensor> Weights) Layer(int channels, int height, int width, int big,
        int small, int nrep, int batch, int seed) =>
        Fuse(ShiftWiseV2.BuildLayer(channels, height, width, big, small, nrep, 0.23, batch), seed, new Random(seed));

    private static (Graph Graph, Dictionary<string, Tensor> Weights) Fuse(Model m, int seed, Random rng)
    {
        int small = ((ShiftAdd)m.Graph.Nodes.First(x => x.Op is ShiftAdd).Op).Small;
        var weights = WeightInit.Draw(m, InitScheme.Lively, (uint)seed);
        foreach (var name in weights.Keys.Where(k => k.StartsWith("LoRAs.", StringComparison.Ordinal)).ToList())
        {
            var v = weights[name].ToDoubles();
            for (int i = 0; i < v.Length / (small * small); i++)
            {
                if (rng.NextDouble() < 0.3) Array.Clear(v, i * small * small, small * small);
            }
            weights[name] = Tensor.FromDoubles(weights[name].Type, v);
        }
        var ctx = new PassContext(m.Graph, weights);
        new PassManager(Pipelines.Get("inference")).Run(ctx);
        Assert.IsType<FusedShiftWise>(Assert.Single(ctx.Graph.Nodes).Op);
        return (ctx.Graph, ctx.Weights);
    }

    /// <summary>A random input for the graph's first input.</summary>
    public static Dictionary<string, Tensor> Input(Graph g, int seed)
    {
        var rng = new Random(seed);
        var t = g.Inputs[0].Type;
        var x = Tensor.FromDoubles(t, Enumerable.Range(0, (int)t.Shape.Elements).Select(_ => rng.NextDouble() * 2 - 1).ToArray());
        return new Dictionary<string, Tensor> { [g.Inputs[0].Name] = x };
    }
}
