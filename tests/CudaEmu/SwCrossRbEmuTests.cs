using System.Globalization;
using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.IR.Reference;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// The register-blocked cross kernel (SW lowering 2), executed by the emulator. Float32 against the float64 reference:
/// random layers (odd and even widths, planes smaller than a tile and than the band, bands not a multiple of X,
/// ghost channels, batch 1–2) and a matrix of R × X register blocks, tiles and channels per block, unrolled or not;
/// bound relative L2 ≤ 1e-5 (float32 sums of a few hundred taps against float64, as SwCudaEmuTests). bf16 / fp16:
/// x, y, bias, ghost scales and the bands 16-bit, sums float32; bound 2u + 1e-5 (u = 2⁻⁸ bf16, 2⁻¹¹ fp16): one
/// rounding at the store (u) and each band weight rounded once (relative error at most u per term, so at most u of
/// Σ|w·x|, which the random layers keep within a factor of about 1 of |y| in L2), plus the float32 sums.
/// </summary>
public sealed class SwCrossRbEmuTests
{
    private const double Tol = 1e-5;

    private static Dictionary<string, int> Parse(string s)
    {
        var d = s.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split('='))
            .ToDictionary(p => p[0], p => int.Parse(p[1], CultureInfo.InvariantCulture));
        d["lowering"] = 2;
        return d;
    }

    public static TheoryData<int> Seeds() => new(0, 1, 2, 4, 6, 9);

    /// <summary>Random layers at the default tile with R = X = 4 (the lowering's defaults).</summary>
    [Theory]
    [MemberData(nameof(Seeds))]
    public void RandomLayersMatchTheReference(int seed)
    {
        TestKernels.RequireEmulator();
        var (g, w) = SwLayers.Layer(200 + seed, maxSize: 22);
        var o = OneNodeEmu.Tunables(g, new() { ["lowering"] = 2 });
        Assert.StartsWith("sw_crossrb_", Assert.Single(CudaCodegen.Lower(g, o).Kernels).Name, StringComparison.Ordinal);
        double err = EmuCheck.ErrorVsReference(g, w, SwLayers.Input(g, seed), o);
        Assert.True(err <= Tol, $"relative L2 {err:E2} for {g.Inputs[0].Type}");
    }

    public static TheoryData<string> Blocks() => new(
        "tile_w=8 tile_h=2 rows_per_thread=2 cols_per_thread=2 ch_per_block=1 unroll=1",
        "tile_w=16 tile_h=8 rows_per_thread=4 cols_per_thread=4 ch_per_block=2 unroll=1",
        "tile_w=16 tile_h=8 rows_per_thread=8 cols_per_thread=8 ch_per_block=1 unroll=0",
        "tile_w=32 tile_h=4 rows_per_thread=1 cols_per_thread=4 ch_per_block=3 unroll=1",
        "tile_w=8 tile_h=12 rows_per_thread=4 cols_per_thread=2 ch_per_block=2 unroll=0",
        "tile_w=64 tile_h=8 rows_per_thread=2 cols_per_thread=8 ch_per_block=1 unroll=1");

    /// <summary>
    /// Every register block on two layers: seed 3 (a 5×5 small kernel) and an explicit 3×3 one with a 15-wide band
    /// (not a multiple of 2, 4 or 8) on a 13×11 plane with ghost channels.
    /// </summary>
    [Theory]
    [MemberData(nameof(Blocks))]
    public void EveryRegisterBlockMatchesTheReference(string tiles)
    {
        TestKernels.RequireEmulator();
        foreach (var (g, w, seed) in new[] { Seeded(3), Explicit(9, 13, 11, 15, 2, 5) })
        {
            double err = EmuCheck.ErrorVsReference(g, w, SwLayers.Input(g, seed), OneNodeEmu.Tunables(g, Parse(tiles)));
            Assert.True(err <= Tol, $"relative L2 {err:E2} for {g.Inputs[0].Type} with {tiles}");
        }
    }

    private static (Graph, Dictionary<string, Tensor>, int) Seeded(int seed)
    {
        var (g, w) = SwLayers.Layer(seed, maxSize: 21);
        return (g, w, seed);
    }

    private static (Graph, Dictionary<string, Tensor>, int) Explicit(int c, int h, int w, int big, int batch, int seed)
    {
        var (g, wt) = SwLayers.Layer(c, h, w, big, 3, 4, batch, seed);
        return (g, wt, seed);
    }

    [Fact]
    public void AnOffByOneInTheHaloIsCaught()
    {
        TestKernels.RequireEmulator();
        var (g, w, seed) = Explicit(6, 10, 12, 9, 1, 7);
        var x = SwLayers.Input(g, seed);
        var t = Parse("tile_w=8 tile_h=4 rows_per_thread=2 cols_per_thread=4 ch_per_block=1 unroll=1");
        Assert.True(EmuCheck.ErrorVsReference(g, w, x, OneNodeEmu.Tunables(g, t)) <= Tol);
        var broken = OneNodeEmu.Tunables(g, t) with { MutateModel = m => ((SwCrossRbCudaModel)m).HaloLeft += 1 };
        double err = EmuCheck.ErrorVsReference(g, w, x, broken);
        Assert.False(err <= 1e-2, $"the broken halo went unnoticed (relative L2 {err:E2})");
    }
}
