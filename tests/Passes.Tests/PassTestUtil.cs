using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Reference;

namespace ShiftWise.Passes.Tests;

internal static class PassTestUtil
{
    /// <summary>A random SW configuration: big 3..63 (odd or even), small 3 or 5, N_rep 1..4, sizes below and above the band.</summary>
    public static (Model Model, Dictionary<string, Tensor> Weights) RandomLayer(int seed, bool bn = true, int npath = 2)
    {
        var rng = new Random(seed);
        int small = rng.Next(2) == 0 ? 3 : 5;
        int big = rng.Next(small, 64);
        int n = (big + small - 1) / small;
        int channels = rng.Next(3, 12);
        int h = rng.Next(1, n * small + 3), w = rng.Next(1, n * small + 3);
        var m = ShiftWiseV2.BuildLayer(channels, h, w, big, small, rng.Next(1, 5), 0.23, rng.Next(1, 3), npath, bn,
            DType.F64);
        var weights = WeightInit.Draw(m, InitScheme.Lively, (uint)seed);
        ZeroSubkernels(weights, rng, 0.3);
        return (m, weights);
    }

    /// <summary>Zeroes a fraction of the k×k sub-kernels of every small-conv weight, as sparse training leaves them.</summary>
    public static void ZeroSubkernels(Dictionary<string, Tensor> weights, Random rng, double fraction)
    {
        foreach (var name in weights.Keys.Where(k => k.Contains("LoRAs.", StringComparison.Ordinal)).ToList())
        {
            var t = weights[name];
            var v = t.ToDoubles();
            int per = (int)(t.Length / t.Shape[0]);
            for (int i = 0; i < t.Shape[0]; i++)
            {
                if (rng.NextDouble() < fraction) Array.Clear(v, i * per, per);
            }
            weights[name] = Tensor.FromDoubles(t.Type, v);
        }
    }

    public static Dictionary<string, Tensor> Input(Graph g, int seed)
    {
        var rng = new Random(seed);
        return g.Inputs.ToDictionary(i => i.Name, i => Tensor.FromDoubles(i.Type,
            Enumerable.Range(0, (int)i.Type.Shape.Elements).Select(_ => rng.NextDouble() * 2 - 1).ToArray()));
    }

    public static double RelL2(Tensor a, Tensor b)
    {
        Assert.Equal(b.Shape, a.Shape);
        return IR.Analysis.Error.RelL2(a, b);
    }

    /// <summary>Runs passes and checks the outputs against the graph before them; returns the rewritten context.</summary>
    public static PassContext CheckPreserves(Graph g, Dictionary<string, Tensor> w, IReadOnlyList<Pass> passes,
        double tol = 1e-10, int seed = 1)
    {
        var x = Input(g, seed);
        var before = ReferenceExecutor.Run(g, w, x);
        var ctx = new PassContext(g, w);
        new PassManager(passes).Run(ctx);
        var after = ReferenceExecutor.Run(ctx.Graph, ctx.Weights, x);
        foreach (var o in g.Outputs)
        {
            double err = RelL2(after[o], before[o]);
            Assert.True(err <= tol, $"{string.Join(",", passes.Select(p => p.Name))}: output {o} relative L2 {err:e3}");
        }
        return ctx;
    }

    public static int Count<T>(Graph g) => g.Nodes.Count(n => n.Op is T);
}
