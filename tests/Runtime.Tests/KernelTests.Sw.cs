using ShiftWise.Frontend.Tables;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using static ShiftWise.Runtime.Tests.KernelHarness;

namespace ShiftWise.Runtime.Tests;

/// <summary>
/// The SW kernels (shift_add and the factorised sw_cross / fused_shiftwise fallbacks) on tables as the original
/// draws them: big kernels odd and even, small kernels 3 and 5, images smaller than the band and larger.
/// </summary>
public sealed partial class KernelTests
{
    public static TheoryData<int, int, int> SwConfigs()
    {
        var d = new TheoryData<int, int, int>();
        foreach (var (big, small) in new[] { (7, 3), (8, 3), (13, 5), (14, 5), (31, 5), (12, 3), (5, 5), (51, 5) })
        {
            for (int seed = 0; seed < 3; seed++) d.Add(big, small, seed);
        }
        return d;
    }

    /// <summary>Tables as the original draws them; sizes from 1 (below the band) to past the band.</summary>
    private static (ShiftAdd S, int H, int W) Sw(int big, int small, Random rng)
    {
        var s = SwTables.ShiftAdd(big, small, rng.Next(1, 4), rng.Next(1, 4));
        int band = s.N * small;
        return (s, rng.Next(1, band + 3), rng.Next(1, band + 3));
    }

    [Theory]
    [MemberData(nameof(SwConfigs))]
    public void ShiftAdd(int big, int small, int seed)
    {
        var rng = new Random(seed);
        var (s, h, w) = Sw(big, small, rng);
        var x = Rand(rng, rng.Next(1, 3), s.Rep * s.N, h + 2 * s.Extra, w + 2 * s.Extra);
        Matches($"shift_add B={big} k={small} R={s.Rep} G={s.NRep} {h}x{w}", s, x);
    }

    [Theory]
    [MemberData(nameof(SwConfigs))]
    public void SwCross(int big, int small, int seed)
    {
        var rng = new Random(seed);
        var (s, h, w) = Sw(big, small, rng);
        int r = s.Rep, rn = r * s.N;
        // seed 0 keeps every sub-kernel; the others prune about a third
        var subs = Enumerable.Range(0, rn).Where(_ => seed == 0 || rng.Next(3) > 0).ToArray();
        var x = Rand(rng, rng.Next(1, 3), r, h, w);
        Matches($"sw_cross B={big} k={small} R={r} G={s.NRep} {h}x{w} subs {subs.Length}/{rn}", new SwCross(s, subs),
            x, Rand(rng, subs.Length, 1, small, small), Rand(rng, 4, r), Rand(rng, r));
    }

    [Theory]
    [MemberData(nameof(SwConfigs))]
    public void FusedShiftWise(int big, int small, int seed)
    {
        var rng = new Random(seed);
        var (s, h, w) = Sw(big, small, rng);
        int r = s.Rep, g = rng.Next(0, 3), c = r + g + rng.Next(0, 2);
        var perm = Enumerable.Range(0, c).OrderBy(_ => rng.Next()).ToArray();
        var subs = Enumerable.Range(0, r * s.N).Where(_ => seed != 1 || rng.Next(3) > 0).ToArray();
        var op = new FusedShiftWise(s, subs, perm[..r], perm[r..(r + g)]);
        Matches($"fused_shiftwise B={big} k={small} R={r} G={g} C={c} {h}x{w}", op, Rand(rng, rng.Next(1, 3), c, h, w),
            Rand(rng, subs.Length, 1, small, small), Rand(rng, 4, r), Rand(rng, r + g), Rand(rng, g));
    }

    [Fact]
    public void SwLayerAtModelSize()
    {
        var rng = new Random(5);
        var s = SwTables.ShiftAdd(51, 5, 8, 2);
        var op = new FusedShiftWise(s, SwCore.AllSubs(s), Enumerable.Range(0, 8).ToArray(), Vec.Of(8, 9, 10));
        Matches("fused_shiftwise 51/5 on 2x12x28x28", op, Rand(rng, 2, 12, 28, 28),
            Rand(rng, 8 * s.N, 1, 5, 5), Rand(rng, 4, 8), Rand(rng, 11), Rand(rng, 3));
    }
}
