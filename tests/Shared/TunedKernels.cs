using ShiftWise.CodegenCuda;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes.Lowering;
using ShiftWise.Runtime.Tune;

namespace ShiftWise.Tests;

/// <summary>
/// Tuning-cache entries with configurations the cost model would not pick, and how to see them in the CUDA sources a
/// compile wrote: for the tests that tuned configurations reach the kernels (Cli.Tests without a GPU, Gpu with one).
/// </summary>
internal static class TunedKernels
{
    public static TuneEntry Entry(TuneKey key, SwLayerSpec spec, IReadOnlyDictionary<string, int> def,
        IReadOnlyDictionary<string, int> best) =>
        new(key, spec.Name, best, 1.0, def, 2.0, [def, best], [new TuneTime(def, 2.0), new TuneTime(best, 1.0)]);

    /// <summary>The files under OUT/kernels by name, and the optimised graph compile wrote.</summary>
    public static (Dictionary<string, string> Kernels, Graph Graph) Compiled(string dir)
    {
        var kernels = Directory.GetFiles(Path.Combine(dir, "kernels"))
            .ToDictionary(f => Path.GetFileName(f), File.ReadAllText, StringComparer.Ordinal);
        return (kernels, ModelLoader.LoadGraph(Path.Combine(dir, "model.swir")));
    }

    public static Dictionary<string, string> Expected(Graph g, CudaOptions options) =>
        CudaCodegen.Lower(g, options).Kernels.ToDictionary(k => k.FileName, k => k.Source, StringComparer.Ordinal);

    public static void AssertSameKernels(Dictionary<string, string> expected, Dictionary<string, string> actual)
    {
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, src) in expected)
        {
            Assert.True(src == actual[name], $"kernels/{name} is not the expected source");
        }
    }

    public static (Node Node, SwLayerSpec Spec)[] SwNodes(Graph g)
    {
        var types = g.ValueTypes();
        return g.Nodes.Where(n => n.Op is FusedShiftWise)
            .Select(n => (n, SwLayerSpec.Of(n, types[n.Inputs[0]].Shape))).ToArray();
    }

    /// <summary>
    /// Puts an entry for every SW spec into <paramref name="cache"/> (saved) under <paramref name="keyFor"/>'s keys: the
    /// first layer tuned to the factorised form, the others to a cross with another tile than the default's.
    /// </summary>
    public static Dictionary<string, IReadOnlyDictionary<string, int>> PutOtherConfigurations(TuningCache cache,
        (Node Node, SwLayerSpec Spec)[] sw, int maxShared, Func<SwLayerSpec, TuneKey> keyFor)
    {
        var chosen = new Dictionary<string, IReadOnlyDictionary<string, int>>(StringComparer.Ordinal);
        for (int i = 0; i < sw.Length; i++)
        {
            var spec = sw[i].Spec;
            var def = SwCudaTunables.Defaults(spec);
            Assert.Equal(0, def["lowering"]);
            var cands = SwCudaTunables.Candidates(spec, maxShared);
            var best = i == 0
                ? cands.First(c => c["lowering"] == 1)
                : cands.First(c => c["lowering"] == 0 && (c["tile_w"] != def["tile_w"] || c["tile_h"] != def["tile_h"]));
            chosen[sw[i].Node.Name] = best;
            cache.Put(Entry(keyFor(spec), spec, def, best));
        }
        cache.Save();
        return chosen;
    }

    /// <summary>What those configurations look like in the sources: the factorised kernel, and each cross kernel's tile.</summary>
    public static void AssertTheConfigurationsShow(Dictionary<string, string> kernels, (Node Node, SwLayerSpec Spec)[] sw,
        Dictionary<string, IReadOnlyDictionary<string, int>> chosen)
    {
        Assert.Contains(kernels.Keys, f => f.StartsWith("sw_fact_", StringComparison.Ordinal));
        foreach (var (node, spec) in sw.Skip(1))
        {
            var t = chosen[node.Name];
            var s = spec.Op.Shift;
            var shape = $"b{s.Big}k{s.Small}g{s.NRep}_c{spec.Input[1]}_h{spec.Input[2]}w{spec.Input[3]}";
            var src = kernels.Single(kv => kv.Key.StartsWith("sw_cross_" + shape, StringComparison.Ordinal)).Value;
            Assert.Contains($"Tile {t["tile_h"]}x{t["tile_w"]},", src);
        }
    }
}
