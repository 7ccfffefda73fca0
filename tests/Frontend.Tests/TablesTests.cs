using System.Text.Json;
using ShiftWise.Frontend.Tables;

namespace ShiftWise.Frontend.Tests;

/// <summary>The seeded generators against the exact tables dumped from the original code (sw_tiny_tables.json).</summary>
public sealed class TablesTests
{
    private static readonly JsonElement Stages = LoadStages();

    private static JsonElement LoadStages()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "Fixtures", "sw_tiny_tables.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return doc.RootElement.GetProperty("stages").Clone();
    }

    private static int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    private static int[] Flat(JsonElement e) => e.EnumerateArray().SelectMany(Ints).ToArray();

    [Fact]
    public void Mt19937MatchesTheReferenceOutput()
    {
        // init_genrand(5489) is the reference implementation's default; its 1st and 10000th outputs are published.
        var r = new Mt19937(5489);
        Assert.Equal(3499211612u, r.NextUInt32());
        for (int i = 1; i < 9999; i++) r.NextUInt32();
        Assert.Equal(4123659995u, r.NextUInt32());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void SwTinyStageTablesAreBitExact(int stage)
    {
        var s = Stages[stage];
        int dim = s.GetProperty("dim").GetInt32();
        int big = s.GetProperty("big").GetInt32(), small = s.GetProperty("small").GetInt32();
        int rep = s.GetProperty("repN").GetInt32(), nrep = s.GetProperty("N_rep").GetInt32();
        Assert.Equal(rep, SwTables.RepCount(dim, 0.23));
        var split = SwTables.Split(dim, 0.23);
        Assert.Equal(Ints(s.GetProperty("ghost")), split.Ghost);
        Assert.Equal(Ints(s.GetProperty("rep")), split.Rep);
        var op = SwTables.ShiftAdd(big, small, rep, nrep);
        Assert.Equal(s.GetProperty("nk").GetInt32(), op.N);
        Assert.Equal(s.GetProperty("extra_pad").GetInt32(), op.Extra);
        Assert.Equal(Ints(s.GetProperty("real_pad")), Enumerable.Range(0, op.N).Select(op.Rho).ToArray());
        Assert.Equal(Flat(s.GetProperty("pad_hv")), op.PadHV.ToArray());
        Assert.Equal(Flat(s.GetProperty("idx_identit")), op.Ident.ToArray());
    }

    [Fact]
    public void Spec18WorkedExample()
    {
        var split = SwTables.Split(3, 0.23);
        Assert.Equal([0], split.Ghost);
        Assert.Equal([1, 2], split.Rep);
        var op = SwTables.ShiftAdd(7, 3, 2, 2);
        Assert.Equal(
            [-5, -2, -5, 1, 1, 1, -2, -5, -2, -5, 1, -2, 1, 1, -2, -5, -2, -5, -5, 1, -5, -2, 1, -2],
            op.PadHV.ToArray());
        Assert.Equal([0, 1, 3, 4], op.Ident.ToArray());
    }

    [Theory]
    [InlineData(49, 3, 17, -24, 26)] // band [−24, +26]: 51 wide, 2 extra on the right (SPEC 2.3)
    [InlineData(47, 3, 16, -23, 24)]
    [InlineData(13, 3, 5, -6, 8)]
    [InlineData(51, 5, 11, -25, 29)] // the throughput configuration, k = 5
    public void OffCentreBandsWhenKDoesNotDivideB(int big, int small, int n, int lo, int hi)
    {
        var op = SwTables.ShiftAdd(big, small, 6, 3);
        Assert.Equal(n, op.N);
        // a filter placed with shift s covers dx = v − (k−1) − s for v in [0, k): the band's extent over all shifts
        var shifts = op.PadHV.ToArray();
        Assert.Equal(lo, shifts.Min(s => -(small - 1) - s));
        Assert.Equal(hi, shifts.Max(s => small - 1 - (small - 1) - s));
        Assert.Equal(n * small, hi - lo + 1);
        // each (channel, replica) places its n sub-kernels on the n blocks exactly once, on each axis
        for (int o = 0; o < 6; o++)
        for (int g = 0; g < 6; g++)
        {
            var h = Enumerable.Range(0, n).Select(j => op.PadHV[(o * n + j) * 6 + g % 3 + (g >= 3 ? 3 : 0)]).Order();
            Assert.Equal(Enumerable.Range(0, n).Select(op.Rho).Order(), h);
        }
    }

    [Theory]
    [InlineData(2, 3, 3)]
    [InlineData(7, 2, 2)]
    [InlineData(7, 0, 2)]
    public void BadLayerConfigurationsAreRejected(int big, int small, int nrep)
    {
        Assert.ThrowsAny<ShiftWise.IR.IrException>(() => SwTables.ShiftAdd(big, small, 2, nrep));
    }
}
