using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// The emitted SW kernels, executed on the CPU by the emulator, against the float64 reference executor: random layers
/// (borders, planes smaller than the band, sizes not divisible by any tile, pruned sub-kernels, ghost channels, batch
/// 1–2), both lowerings, and a matrix of tile configurations. Bound: relative L2 ≤ 1e-5 (float32 sums of a few hundred
/// taps against float64).
/// </summary>
public sealed class SwCudaEmuTests
{
    private const double Tol = 1e-5;

    private static CudaOptions With(Graph g, Dictionary<string, int> t, Action<object>? mutate = null) => new()
    {
        Tunables = new Dictionary<string, IReadOnlyDictionary<string, int>> { [g.Nodes[0].Name] = t },
        MutateModel = mutate,
    };

    public static TheoryData<int, int> Layers() => new(Enumerable.Range(0, 10).SelectMany(s => new[] { (s, 0), (s, 1) }));

    [Theory]
    [MemberData(nameof(Layers))]
    public void RandomLayersMatchTheReference(int seed, int lowering)
    {
        if (!CudaEmulator.Available) Assert.Skip(CudaEmulator.MissingReason);
        var (g, w) = SwLayers.Layer(100 + seed, maxSize: 24);
        double err = EmuCheck.ErrorVsReference(g, w, SwLayers.Input(g, seed), With(g, new() { ["lowering"] = lowering }));
        Assert.True(err <= Tol, $"relative L2 {err:E2} for {g.Inputs[0].Type}, lowering {lowering}");
    }

    public static TheoryData<string> CrossTiles() => new(
        "tile_w=8 tile_h=1 rows_per_thread=1 ch_per_block=1 unroll=1",
        "tile_w=8 tile_h=6 rows_per_thread=2 ch_per_block=3 unroll=0",
        "tile_w=16 tile_h=8 rows_per_thread=4 ch_per_block=2 unroll=1",
        "tile_w=32 tile_h=12 rows_per_thread=4 ch_per_block=1 unroll=0",
        "tile_w=16 tile_h=16 rows_per_thread=8 ch_per_block=2 unroll=1",
        "tile_w=8 tile_h=3 rows_per_thread=1 ch_per_block=4 unroll=1");

    public static TheoryData<string> FactorisedTiles() => new(
        "fact_threads=64 fact_rows=1",
        "fact_threads=64 fact_rows=3",
        "fact_threads=128 fact_rows=7",
        "fact_threads=256 fact_rows=64",
        "fact_threads=512 fact_rows=13");

    private static Dictionary<string, int> Parse(string s, int lowering)
    {
        var d = s.Split(' ').Select(p => p.Split('=')).ToDictionary(p => p[0], p => int.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture));
        d["lowering"] = lowering;
        return d;
    }

    [Theory]
    [MemberData(nameof(CrossTiles))]
    public void EveryCrossTileConfigurationMatchesTheReference(string tiles)
    {
        if (!CudaEmulator.Available) Assert.Skip(CudaEmulator.MissingReason);
        foreach (var seed in new[] { 3, 8 })
        {
            var (g, w) = SwLayers.Layer(seed, maxSize: 21);
            double err = EmuCheck.ErrorVsReference(g, w, SwLayers.Input(g, seed), With(g, Parse(tiles, 0)));
            Assert.True(err <= Tol, $"relative L2 {err:E2} for {g.Inputs[0].Type} with {tiles}");
        }
    }

    [Theory]
    [MemberData(nameof(FactorisedTiles))]
    public void EveryFactorisedTileConfigurationMatchesTheReference(string tiles)
    {
        if (!CudaEmulator.Available) Assert.Skip(CudaEmulator.MissingReason);
        foreach (var seed in new[] { 3, 8 })
        {
            var (g, w) = SwLayers.Layer(seed, maxSize: 21);
            double err = EmuCheck.ErrorVsReference(g, w, SwLayers.Input(g, seed), With(g, Parse(tiles, 1)));
            Assert.True(err <= Tol, $"relative L2 {err:E2} for {g.Inputs[0].Type} with {tiles}");
        }
    }

    [Fact]
    public void AnOffByOneInTheHaloIsCaught()
    {
        if (!CudaEmulator.Available) Assert.Skip(CudaEmulator.MissingReason);
        var (g, w) = SwLayers.Layer(5, maxSize: 20);
        var x = SwLayers.Input(g, 5);
        var cross = new Dictionary<string, int> { ["lowering"] = 0 };
        Assert.True(EmuCheck.ErrorVsReference(g, w, x, With(g, cross)) <= Tol);
        // the horizontal window starts one column too far left: every horizontal tap reads its left neighbour
        double broken = EmuCheck.ErrorVsReference(g, w, x, With(g, cross, m => ((SwCrossCudaModel)m).HaloLeft += 1));
        Assert.False(broken <= 1e-2, $"the broken halo went unnoticed (relative L2 {broken:E2})");
        // the factorised form's window of X rows starts one row late, missing the top halo row (row tiles of 2, so
        // that halo rows inside the plane exist)
        var fact = new Dictionary<string, int> { ["lowering"] = 1, ["fact_rows"] = 2 };
        Assert.True(EmuCheck.ErrorVsReference(g, w, x, With(g, fact)) <= Tol);
        double broken2 = EmuCheck.ErrorVsReference(g, w, x, With(g, fact, m => ((SwFactorisedCudaModel)m).Lo += 1));
        Assert.False(broken2 <= 1e-2, $"the broken row window went unnoticed (relative L2 {broken2:E2})");
    }
}
