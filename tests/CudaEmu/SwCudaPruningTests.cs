using ShiftWise.CodegenCuda;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes;
using ShiftWise.Passes.Lowering;

namespace ShiftWise.CudaEmu;

/// <summary>
/// Each pruning rule of <see cref="SwCudaTunables.Candidates"/> against an oracle that enumerates the documented
/// search space and applies the rules with every quantity (threads, shared bytes, outputs per thread, registers)
/// computed here from the tunables and the layer, not read from the kernel models. The candidates must equal the
/// oracle's set; and for each rule some test layer has a configuration that only that rule excludes, so dropping the
/// rule from the product changes the set and fails the equality.
/// </summary>
public sealed class SwCudaPruningTests
{
    [Flags]
    public enum Rule
    {
        None = 0,
        Threads1024 = 1,
        Warp = 2,
        DeviceShared = 4,
        StaticShared = 8,
        Outputs16 = 16,
        Registers = 32,
        TileHeight64 = 64,
        TileWithinTwicePlane = 128,
        ChannelsWithinTwiceRep = 256,
        All = 511,
    }

    private const int StaticShared = 48 * 1024;   // static __shared__ per block on every CUDA arch
    private const int RegistersPerBlock = 65536;   // 64 K 32-bit registers per block since sm_50

    private static readonly Dictionary<string, SwLayerSpec> Cache = [];

    /// <summary>
    /// The test layers: "wide" (40×40, B 51: a band of 51 so big tiles overflow shared memory, rows of 40 so a
    /// factorised block overflows 16 outputs per thread), "tiny" (3×3 with 2 rep channels: tiles and channel groups
    /// past the plane), "tall" (64×64: tiles up to 128 rows pass the plane rule, so the 64-row cap decides).
    /// </summary>
    public static SwLayerSpec Layer(string name)
    {
        lock (Cache)
        {
            if (Cache.TryGetValue(name, out var s)) return s;
            var (c, h, w, big) = name switch
            {
                "wide" => (8, 40, 40, 51),
                "tiny" => (3, 3, 3, 7),
                _ => (8, 64, 64, 13),
            };
            var m = ShiftWiseV2.BuildLayer(c, h, w, big, 3, 4, 0.23, 1);
            var ctx = new PassContext(m.Graph, WeightInit.Draw(m, InitScheme.Lively, 1));
            new PassManager(Pipelines.Get("inference")).Run(ctx);
            var node = ctx.Graph.Nodes.Single(n => n.Op is FusedShiftWise);
            return Cache[name] = SwLayerSpec.Of(node, ctx.Graph.ValueTypes()[node.Inputs[0]].Shape);
        }
    }

    private static string Key(IReadOnlyDictionary<string, int> c) =>
        string.Join(",", c.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={kv.Value}"));

    /// <summary>
    /// The search space as documented (the cross at every tile width, rows per thread, power-of-two threads down a
    /// column up to 32 and channels per block up to 16, unrolled or not; the register-blocked cross; the factorised form at every thread count
    /// and power-of-two row block up to the plane), in that order, keeping what <paramref name="rules"/> allow.
    /// </summary>
    public static List<IReadOnlyDictionary<string, int>> Oracle(SwLayerSpec spec, int maxShared, Rule rules)
    {
        bool On(Rule r) => (rules & r) != 0;
        var def = SwCudaTunables.Defaults(spec);
        int h = spec.Input[2], w = spec.Input[3], rep = spec.Rep, k = spec.Op.Shift.Small, band = spec.BandWidth;
        bool SharedOk(long bytes) =>
            (!On(Rule.DeviceShared) || bytes <= maxShared) && (!On(Rule.StaticShared) || bytes <= StaticShared);
        bool Common(long threads, long shared, long outputs) =>
            (!On(Rule.Threads1024) || threads <= 1024) && (!On(Rule.Warp) || threads >= 32) && SharedOk(shared)
            && (!On(Rule.Registers) || threads * (32 + 4 * outputs) <= RegistersPerBlock);
        var list = new List<IReadOnlyDictionary<string, int>>();
        foreach (int tw in new[] { 8, 16, 32, 64 })
        foreach (int rpt in new[] { 1, 2, 4, 8 })
        foreach (int ty in new[] { 1, 2, 4, 8, 16, 32 })
        foreach (int cpb in new[] { 1, 2, 4, 8, 16 })
        foreach (int unroll in new[] { 0, 1 })
        {
            int th = ty * rpt;
            if (On(Rule.TileHeight64) && th > 64) continue;
            if (On(Rule.TileWithinTwicePlane) && (tw > 2 * Math.Max(8, w) || th > 2 * Math.Max(1, h))) continue;
            if (On(Rule.ChannelsWithinTwiceRep) && cpb > 2 * rep) continue;
            // per channel: the horizontal band's window (th + k − 1) × (tw + band − 1), the vertical band's
            // (th + band − 1) × (tw + k − 1), and both bands' weights, k × band each
            long shared = 4L * cpb * ((th + k - 1) * (tw + band - 1) + (th + band - 1) * (tw + k - 1) + 2 * k * band);
            if (!Common((long)tw * ty * cpb, shared, rpt)) continue;
            list.Add(new Dictionary<string, int>(def)
            {
                ["lowering"] = 0, ["tile_w"] = tw, ["tile_h"] = th, ["rows_per_thread"] = rpt, ["ch_per_block"] = cpb,
                ["unroll"] = unroll,
            });
        }
        // the register-blocked cross (lowering 2, unrolled): R × X outputs per thread, threads down a column up to 16,
        // channels per block up to 4
        static int Up(int v, int m) => (v + m - 1) / m * m;
        foreach (int tw in new[] { 8, 16, 32, 64 })
        foreach (int r in new[] { 2, 4, 8 })
        foreach (int x in new[] { 2, 4, 8 })
        foreach (int ty in new[] { 1, 2, 4, 8, 16 })
        foreach (int cpb in new[] { 1, 2, 4 })
        {
            int th = ty * r;
            if (tw % x != 0 || (On(Rule.TileHeight64) && th > 64)) continue;
            if (On(Rule.TileWithinTwicePlane) && (tw > 2 * Math.Max(8, w) || th > 2 * Math.Max(1, h))) continue;
            if (On(Rule.ChannelsWithinTwiceRep) && cpb > 2 * rep) continue;
            // windows: horizontal (th + k − 1) rows × whole chunks of x taps past the tile, vertical (th + band − 1)
            // rows × the tile less x plus a segment of x + k − 1 values in whole vectors, rows padded to 4 floats;
            // the horizontal weights in whole chunks, the vertical ones
            int chunks = (band + x - 1) / x, seg = Up(x + k - 1, Math.Min(x, 4));
            long shared = 4L * cpb * ((th + k - 1) * Up(tw + chunks * x, 4) + (th + band - 1) * Up(tw - x + seg, 4)
                + k * Up(chunks * x, 4) + band * k);
            long threads = (long)(tw / x) * ty * cpb;
            // registers: 32, the sums, and the larger working set of the two bands' loops
            long regs = 32 + r * x + Math.Max((r + k - 1) * x + x + k * x, r * seg + k);
            if ((On(Rule.Threads1024) && threads > 1024) || (On(Rule.Warp) && threads < 32) || !SharedOk(shared)
                || (On(Rule.Registers) && (regs > 255 || threads * regs > RegistersPerBlock)))
            {
                continue;
            }
            list.Add(new Dictionary<string, int>(def)
            {
                ["lowering"] = 2, ["tile_w"] = tw, ["tile_h"] = th, ["rows_per_thread"] = r, ["cols_per_thread"] = x,
                ["ch_per_block"] = cpb, ["unroll"] = 1,
            });
        }
        var (lo, hi) = SwFactorisedCudaModel.RowReach(spec);
        int p = k - 1, win = w + 2 * spec.Op.Shift.Extra;
        foreach (int threads in new[] { 64, 128, 256, 512 })
        for (int rows = 1; rows <= Math.Max(1, h); rows *= 2)
        {
            long outputs = ((long)rows * w + threads - 1) / threads;
            if (On(Rule.Outputs16) && outputs > 16) continue;
            // the zero-padded input rows the block's X rows need, and the X rows themselves
            long xrows = rows + hi - lo;
            if (!Common(threads, 4 * ((xrows + p) * (win + p) + xrows * win), outputs)) continue;
            list.Add(new Dictionary<string, int>(def)
            {
                ["lowering"] = 1, ["fact_threads"] = threads, ["fact_rows"] = rows,
            });
        }
        return list;
    }

    public static TheoryData<string, int> Devices() => new()
    {
        { "wide", StaticShared }, { "wide", 8 * 1024 }, { "wide", 1 << 20 },
        { "tiny", StaticShared }, { "tall", StaticShared }, { "tall", 16 * 1024 },
    };

    [Theory]
    [MemberData(nameof(Devices))]
    public void Candidates_are_the_oracles_set_default_first_without_duplicates_nearest_first(string layer,
        int maxShared)
    {
        var spec = Layer(layer);
        var got = SwCudaTunables.Candidates(spec, maxShared);
        var def = SwCudaTunables.Defaults(spec);
        Assert.Equal(Key(def), Key(got[0]));
        Assert.Equal(got.Count, got.Select(Key).Distinct().Count());
        var want = Oracle(spec, maxShared, Rule.All).Select(Key).Append(Key(def)).ToHashSet();
        Assert.Equal(want.Order(StringComparer.Ordinal), got.Select(Key).Order(StringComparer.Ordinal));
        var distance = got.Select(c => c.Count(kv => def[kv.Key] != kv.Value)).ToList();
        Assert.Equal(distance.Order(), distance);
    }

    [Fact]
    public void Without_dropping_duplicates_and_sorting_the_checks_above_would_fail()
    {
        // this layer's default tile is on the grid, so the search space generates the default a second time
        var spec = Layer("wide");
        var def = SwCudaTunables.Defaults(spec);
        var raw = Oracle(spec, StaticShared, Rule.All);
        Assert.Contains(Key(def), raw.Select(Key));
        // and in generation order the distance from the default goes down somewhere
        var distance = raw.Select(c => c.Count(kv => def[kv.Key] != kv.Value)).ToList();
        Assert.NotEqual(distance.Order(), distance);
    }

    public static TheoryData<Rule, string, int> BindingRules() => new()
    {
        { Rule.Warp, "wide", StaticShared },
        { Rule.DeviceShared, "wide", 8 * 1024 },
        { Rule.StaticShared, "wide", 1 << 20 },
        { Rule.Outputs16, "wide", StaticShared },
        { Rule.TileHeight64, "tall", StaticShared },
        { Rule.TileWithinTwicePlane, "tiny", StaticShared },
        { Rule.ChannelsWithinTwiceRep, "tiny", StaticShared },
        // each of these two alone is implied by the other for the current value lists (every block size is a power
        // of two, so a block past 1024 threads has 2048 and needs 2048 × 36 registers); together they bind. Each
        // is also tested alone below, on the model and on the predicate.
        { Rule.Threads1024 | Rule.Registers, "wide", StaticShared },
    };

    [Theory]
    [MemberData(nameof(BindingRules))]
    public void Each_rule_excludes_a_configuration_only_it_excludes(Rule rule, string layer, int maxShared)
    {
        var spec = Layer(layer);
        var all = Oracle(spec, maxShared, Rule.All).Select(Key).ToHashSet();
        var without = Oracle(spec, maxShared, Rule.All & ~rule).Select(Key).ToHashSet();
        Assert.True(without.Count > all.Count, $"{rule} excludes nothing the other rules allow on {layer}");
        // what the rule alone excludes is not among the candidates, the default aside: it is always kept (first),
        // even where it is past a smaller device limit (every CUDA device so far offers 48 KiB)
        var cands = SwCudaTunables.Candidates(spec, maxShared).Skip(1).Select(Key).ToHashSet();
        Assert.Empty(without.Except(all).Intersect(cands));
    }

    [Fact]
    public void A_cross_block_over_1024_threads_is_refused_by_the_model()
    {
        var spec = Layer("wide");
        var t = new Dictionary<string, int>(SwCudaTunables.Defaults(spec))
        {
            ["tile_w"] = 64, ["tile_h"] = 32, ["rows_per_thread"] = 1, ["ch_per_block"] = 1,
        };
        // 64 × 32 × 1 = 2048 threads (its shared memory, 38 KB, would fit)
        var e = Assert.Throws<IrException>(() => new SwCrossCudaModel(spec, t, "k"));
        Assert.Contains("exceeds 1024", e.Message, StringComparison.Ordinal);
        t["tile_h"] = 16; // 1024 threads: allowed
        Assert.Equal(1024, new SwCrossCudaModel(spec, t, "k").Threads);
    }

    [Fact]
    public void The_limits_predicate_bounds_warp_shared_memory_and_the_register_file()
    {
        // a block at the register file exactly: 1024 threads × (32 + 4·8) = 65536
        Assert.True(SwCudaTunables.WithinLimits(1024, 1000, 8, 2000));
        Assert.False(SwCudaTunables.WithinLimits(1024, 1000, 9, 2000));   // 1024 × 68 registers
        Assert.True(SwCudaTunables.WithinLimits(512, 1000, 24, 2000));    // 512 × 128 = 65536
        Assert.False(SwCudaTunables.WithinLimits(512, 1000, 25, 2000));
        Assert.False(SwCudaTunables.WithinLimits(31, 1000, 1, 2000));     // less than a warp
        Assert.True(SwCudaTunables.WithinLimits(32, 2000, 1, 2000));
        Assert.False(SwCudaTunables.WithinLimits(32, 2001, 1, 2000));     // over the device's shared memory
    }
}
