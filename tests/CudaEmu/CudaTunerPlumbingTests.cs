using ShiftWise.CodegenCpu;
using ShiftWise.CodegenCuda;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes;
using ShiftWise.Passes.Lowering;
using ShiftWise.Runtime.Tune;

namespace ShiftWise.CudaEmu;

/// <summary>
/// <see cref="CudaTuner"/> above the driver, on a fake device (<see cref="CudaTuneDevice"/>): which kernels are tuned,
/// the timing plan of copies of the layer, the candidates against the device's shared memory, the budget, and the
/// cache entry. The fake times a bound plan from its launch geometry, so what it reports depends on the candidate
/// that reached the lowered plan. The key and cache file of a real GPU, NVRTC and the event timing need a device
/// (tests/Gpu).
/// </summary>
public sealed class CudaTunerPlumbingTests
{
    private sealed class FakeGpu(string arch, int maxShared, Func<KernelLaunch, double> msPerLayer)
    {
        public readonly List<(CudaPlan Plan, Graph Graph, int Inputs)> Bound = [];
        public int Disposed;

        public CudaTuneDevice Device => new(arch, maxShared,
            spec => new TuneKey(spec.Hash, "fake gpu", arch, "fake driver", "fake nvrtc", "fake codegen"), Bind);

        private TuneTrial Bind(CudaPlan plan, Graph g, IReadOnlyDictionary<string, Tensor> w,
            IReadOnlyDictionary<string, Tensor> inputs)
        {
            lock (Bound) Bound.Add((plan, g, g.Inputs.Count(i => inputs.ContainsKey(i.Name))));
            // one run of the plan: every copy of the layer, each priced by its launch
            double ms = plan.Steps.OfType<KernelLaunch>().Sum(msPerLayer);
            return new TuneTrial(() => ms, new Disposer(() => Interlocked.Increment(ref Disposed)));
        }
    }

    private sealed class Disposer(Action a) : IDisposable
    {
        public void Dispose() => a();
    }

    private static string Key(IReadOnlyDictionary<string, int> c) =>
        string.Join(",", c.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={kv.Value}"));

    private static (Graph G, Dictionary<string, Tensor> W) Layer(int c, int h, int w, int big, uint seed)
    {
        var m = ShiftWiseV2.BuildLayer(c, h, w, big, 3, 2, 0.23, 1);
        var ctx = new PassContext(m.Graph, WeightInit.Draw(m, InitScheme.Lively, seed));
        new PassManager(Pipelines.Get("inference")).Run(ctx);
        return (ctx.Graph, new Dictionary<string, Tensor>(ctx.Weights));
    }

    private static SwLayerSpec Spec(Graph g, Node n) => SwLayerSpec.Of(n, g.ValueTypes()[n.Inputs[0]].Shape);

    /// <summary>Layer A on two inputs (one spec, two nodes) and layer B on a third: two specs to tune.</summary>
    private static (Graph G, Dictionary<string, Tensor> W) TwoSpecs()
    {
        var (ga, wa) = Layer(4, 5, 6, 7, 1);
        var (gb, wb) = Layer(6, 4, 4, 5, 2);
        var b = new GraphBuilder("two_specs");
        var outs = new List<Value>();
        var weights = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (g, w, tag, uses) in new[] { (ga, wa, "a", 2), (gb, wb, "b", 1) })
        {
            var node = g.Nodes.Single(n => n.Op is FusedShiftWise);
            var types = g.ValueTypes();
            var ps = node.Inputs.Skip(1).Select(p => b.Param(tag + p, types[p])).ToArray();
            foreach (var p in node.Inputs.Skip(1)) weights[tag + p] = w[p];
            for (int u = 0; u < uses; u++)
            {
                var x = b.Input($"x_{tag}{u}", types[node.Inputs[0]]);
                outs.Add(b.Apply(node.Op, $"sw_{tag}{u}", [x, .. ps])[0]);
            }
        }
        b.Output([.. outs]);
        return (b.Build(), weights);
    }

    private static TuningCache TempCache() =>
        TuningCache.Load(Path.Combine(Directory.CreateTempSubdirectory("swc-cuda-tune-").FullName, "cuda-fake.json"));

    [Fact]
    public void The_fastest_candidate_is_found_through_copies_of_the_layer_and_cached()
    {
        var (g, w) = Layer(3, 3, 3, 7, 1);
        var node = g.Nodes.Single(n => n.Op is FusedShiftWise);
        var spec = Spec(g, node);
        const int MaxShared = 2 * 1024;
        // the factorised kernel at 128 threads and 2 rows per block is twice as fast as anything else; the fake sees it
        // by its launch (128 threads; ⌈3 / 2⌉ = 2 row tiles)
        static double Ms(KernelLaunch l) => l.Kernel.StartsWith("sw_fact_", StringComparison.Ordinal)
            && l.Block.X == 128 && l.Grid.X == 2 ? 0.5 : 1.0;
        var gpu = new FakeGpu("sm_89", MaxShared, Ms);
        var cache = TempCache();
        var rows = new CudaTuner(1e5) { Repeats = 3 }.Tune(g, w, cache, gpu.Device);

        var candidates = SwCudaTunables.Candidates(spec, MaxShared);
        Assert.True(candidates.Count > 3, $"{candidates.Count} candidates");
        Assert.NotEqual(candidates.Count, SwCudaTunables.Candidates(spec).Count); // the device's limit matters here
        var row = Assert.Single(rows);
        Assert.Equal(("tuned", 1, candidates.Count, candidates.Count),
            (row.Source, row.Nodes, row.Measured, row.Candidates));
        // the timing plan: copies of the layer on separate inputs; 256 MiB / (4 bytes × (input + output)), 1 to 16
        long bytes = 4 * (spec.Input.Elements + g.ValueTypes()[node.Outputs[0]].Shape.Elements);
        int copies = (int)Math.Min(16, Math.Max(1, (256L << 20) / bytes));
        Assert.Equal(candidates.Count, gpu.Bound.Count);
        foreach (var (plan, mini, inputs) in gpu.Bound)
        {
            Assert.Equal("sm_89", plan.Arch);
            Assert.Equal(copies, mini.Nodes.Count(n => n.Op is FusedShiftWise));
            Assert.Equal(copies, inputs);
            Assert.Equal(copies, plan.Steps.OfType<KernelLaunch>().Select(l => l.Node).Distinct().Count());
        }
        // every candidate reached its plan: no two bound plans are launched alike with the same kernel source
        Assert.Equal(gpu.Bound.Count, gpu.Bound.Select(b =>
            string.Join(";", b.Plan.Steps.OfType<KernelLaunch>().Select(l => $"{l.Kernel}{l.Grid}{l.Block}").Distinct())
            + string.Concat(b.Plan.Kernels.Select(k => k.Source))).Distinct().Count());
        Assert.Equal(gpu.Bound.Count, gpu.Disposed);
        // the entry: per-layer times (the plan's time divided by its copies), the winner, the candidates in order
        var entry = Assert.Single(cache.Entries);
        Assert.Equal(Key(SwCudaTunables.Defaults(spec)), Key(entry.Default));
        Assert.Equal((1, 128, 2), (entry.Best["lowering"], entry.Best["fact_threads"], entry.Best["fact_rows"]));
        Assert.Equal((0.5, 1.0), (entry.BestMs, entry.DefaultMs));
        Assert.Equal(candidates.Select(Key), entry.Candidates.Select(Key));
        Assert.All(entry.Times, t => Assert.True(t.Ms is 0.5 or 1.0, $"{t.Ms} ms for {Key(t.Config)}"));
        Assert.Equal("fake gpu", entry.Key.Device);
        // saved: a fresh load finds it, and a second run takes it from the cache without binding anything
        var again = TuningCache.Load(cache.File);
        Assert.Equal(Key(entry.Best), Key(again.Find(entry.Key)!.Best));
        var second = new CudaTuner(1e5).Tune(g, w, again, gpu.Device);
        Assert.Equal("cache", Assert.Single(second).Source);
        Assert.Equal(candidates.Count, gpu.Bound.Count);
    }

    [Fact]
    public void Each_distinct_spec_is_tuned_once_and_a_spent_budget_measures_only_the_defaults()
    {
        var (g, w) = TwoSpecs();
        var gpu = new FakeGpu("sm_90", 48 * 1024, _ => 1.0);
        var statuses = new List<TuneStatus>();
        var cache = TempCache();
        var tuner = new CudaTuner(0, progress: s =>
        {
            lock (statuses) statuses.Add(s);
        }) { Repeats = 1 };
        var rows = tuner.Tune(g, w, cache, gpu.Device);
        // two specs, the first on two nodes; with no budget each measures its default alone
        Assert.Equal([2, 1], rows.Select(r => r.Nodes));
        Assert.All(rows, r => Assert.Equal(("tuned (budget cut)", 1), (r.Source, r.Measured)));
        Assert.Equal(2, gpu.Bound.Count);
        Assert.Equal(2, cache.Entries.Count);
        foreach (var spec in g.Nodes.Select(n => Spec(g, n)).DistinctBy(s => s.Hash))
        {
            var e = cache.Find(gpu.Device.KeyFor(spec))!;
            Assert.Equal(Key(SwCudaTunables.Defaults(spec)), Key(e.Best));
            Assert.All(e.Times.Skip(1), t => Assert.Equal(TuneSearch.BudgetSpent, t.Note));
        }
        // progress names kernel 1 of 2, then 2 of 2
        Assert.Equal([1, 2], statuses.Select(s => s.Kernel).Distinct());
        Assert.All(statuses, s => Assert.Equal(2, s.Kernels));
    }

    [Theory]
    [InlineData(1L, 16)]
    [InlineData(16L << 20, 16)]
    [InlineData((16L << 20) + 4, 15)]
    [InlineData(24L << 20, 10)]
    [InlineData(256L << 20, 1)]
    [InlineData(1L << 40, 1)]
    [InlineData(0L, 16)]
    public void Copies_fill_256_MiB_between_1_and_16(long bytes, int copies) =>
        Assert.Equal(copies, CudaTuner.CopiesFor(bytes));

    [Fact]
    public void The_budget_is_shared_evenly_among_the_kernels_still_to_tune_and_what_one_leaves_goes_to_the_rest()
    {
        var (g, _) = TwoSpecs();
        var shares = new List<double>();
        TuneEntry Entry(SwLayerSpec spec, TuneKey key) => new(key, spec.Name, SwCpuTunables.Defaults(spec), 1,
            SwCpuTunables.Defaults(spec), 1, [SwCpuTunables.Defaults(spec)], [new TuneTime(SwCpuTunables.Defaults(spec), 1)]);
        TuneKey KeyOf(SwLayerSpec s) => new(s.Hash, "d", "c", "r", "n", "g");
        // a fast first kernel: the second gets (almost) all of the budget, not half of it; 1e4 s of slack is
        // far beyond anything this loop could take
        TuneSearch.All(g, KeyOf, TempCache(), false, 1e6, null, (_, spec, key, share, _) =>
        {
            shares.Add(share);
            return Entry(spec, key);
        });
        Assert.Equal(2, shares.Count);
        Assert.InRange(shares[0], 5e5 - 1e4, 5e5);
        Assert.InRange(shares[1], 1e6 - 1e4, 1e6);
        // a first kernel that overruns its share: the second gets what is left, at most 1 s − 0.8 s
        shares.Clear();
        TuneSearch.All(g, KeyOf, TempCache(), false, 1, null, (_, spec, key, share, _) =>
        {
            shares.Add(share);
            if (shares.Count == 1) Thread.Sleep(800);
            return Entry(spec, key);
        });
        Assert.InRange(shares[0], 0, 0.5);
        Assert.InRange(shares[1], 0, 0.2);
    }
}
