using ShiftWise.Passes.Lowering;

namespace ShiftWise.CodegenCpu;

/// <summary>
/// The CPU tunables of an SW layer: lowering (0 the collapsed cross, 1 the factorised form), and the cross's register
/// tile: row_block rows by col_vectors column vectors of 8 floats (AVX2; at most 12 accumulators of its 16
/// registers) or 16 (AVX-512; at most 24 of 32). The value sets are those of the 8-wide kernel, which the 16-wide
/// one accepts too (its column vectors are clamped to the row).
/// </summary>
public sealed class SwCpuTunables : ISwTunables
{
    /// <summary>The one instance (the tunables hold no state).</summary>
    public static SwCpuTunables Instance { get; } = new();

    /// <summary>Legal values: rows 1..8, column vectors 1..min(8, the plane's vectors).</summary>
    public static IReadOnlyDictionary<string, int[]> Values(SwLayerSpec spec) =>
        new Dictionary<string, int[]>(StringComparer.Ordinal)
        {
            ["lowering"] = [0, 1],
            ["row_block"] = [1, 2, 3, 4, 5, 6, 7, 8],
            ["col_vectors"] = Enumerable.Range(1, Math.Min(Vectors(spec), 8)).ToArray(),
        };

    /// <summary>
    /// The cost model's choice for vectors of <paramref name="vectorWidth"/> floats (8: AVX2, 16: AVX-512).
    /// </summary>
    public static IReadOnlyDictionary<string, int> Defaults(SwLayerSpec spec, int vectorWidth = 8)
    {
        // The horizontal band slides a window of col_vectors vectors, one load per tap, so it wants wide tiles; the
        // vertical band loads col_vectors vectors per tap and broadcasts row_block weights, so it wants both. AVX2
        // (16 registers): 4 vectors by 2 rows (3 and 4 rows for 3 and 2 vectors): 8-12 accumulators plus the window
        // and a broadcast. AVX-512 (32 registers): up to 4 vectors by 4 rows. A row of one vector (stages 2-3 of
        // sw-tiny) takes up to 8 rows, as few row tiles as that allows and the fewest rows past the plane (7 for 7
        // and 14 rows: measured 1.25-1.4x faster than 4 rows there). Measured (single thread, sw-tiny stages 0-1):
        // AVX2 2x4 is 1.1-1.2x faster than 3x3; AVX-512 4x4 is within 3% of the best of 2x4..6x4
        int vectors = (spec.Input[3] + vectorWidth - 1) / vectorWidth, h = Math.Max(1, spec.Input[2]);
        int cv = Math.Min(4, vectors);
        int tiles = (h + 7) / 8;
        int rb = cv == 1 ? (h + tiles - 1) / tiles : Math.Min(vectorWidth == 16 || cv == 2 ? 4 : cv == 3 ? 3 : 2, h);
        return new Dictionary<string, int>(StringComparer.Ordinal)
        {
            // the cross: dense FMAs beat the gather's loads on CPUs (PERFORMANCE.md); tuning may flip it
            ["lowering"] = 0,
            ["row_block"] = rb,
            ["col_vectors"] = cv,
        };
    }

    /// <summary>
    /// The legal configurations, the default first: the factorised lowering (it has no tile: one candidate, the tile
    /// tunables left at their defaults) and the cross at every tile the kernel model accepts that fits the plane.
    /// </summary>
    public static List<IReadOnlyDictionary<string, int>> Candidates(SwLayerSpec spec)
    {
        var def = Defaults(spec);
        var values = Values(spec);
        var list = new List<IReadOnlyDictionary<string, int>>
        {
            def,
            new Dictionary<string, int>(def) { ["lowering"] = 1 },
        };
        foreach (int rb in values["row_block"])
        foreach (int cv in values["col_vectors"])
        {
            // more rows than the plane are wasted; the kernel model rejects tiles that would spill (> 12 accumulators)
            if (rb > Math.Max(1, spec.Input[2])) continue;
            var c = new Dictionary<string, int>(def) { ["lowering"] = 0, ["row_block"] = rb, ["col_vectors"] = cv };
            try
            {
                _ = new SwCrossCpuModel(spec, c);
                list.Add(c);
            }
            catch (ArgumentException)
            {
                // illegal tile: pruned before compiling
            }
        }
        return list.DistinctBy(ISwTunables.Text).ToList();
    }

    IReadOnlyDictionary<string, int[]> ISwTunables.ValuesOf(SwLayerSpec spec) => Values(spec);

    IReadOnlyDictionary<string, int> ISwTunables.DefaultsOf(SwLayerSpec spec) => Defaults(spec);

    List<IReadOnlyDictionary<string, int>> ISwTunables.SearchSpace(SwLayerSpec spec) => Candidates(spec);

    private static int Vectors(SwLayerSpec spec) => (spec.Input[3] + 7) / 8;
}
