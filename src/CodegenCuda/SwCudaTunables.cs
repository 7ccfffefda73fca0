using ShiftWise.IR;
using ShiftWise.Passes.Lowering;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// The CUDA tunables of an SW layer and their defaults. "lowering" means what it means on the CPU (0 the collapsed
/// cross, 1 the factorised form), and 2 the register-blocked collapsed cross (CUDA only); the cross tiles outputs as
/// tile_h × tile_w per channel with rows_per_thread outputs in registers per thread and ch_per_block channels side by
/// side in a block; the register-blocked cross the same, each thread owning rows_per_thread × cols_per_thread
/// outputs; the factorised form runs fact_threads threads over fact_rows output rows (full width) per block.
/// </summary>
public sealed class SwCudaTunables : ISwTunables
{
    /// <summary>The one instance (the tunables hold no state).</summary>
    public static SwCudaTunables Instance { get; } = new();

    /// <summary>Legal values of each tunable (the model rejects combinations that break a hardware limit).</summary>
    public static readonly IReadOnlyDictionary<string, int[]> Values =
        new Dictionary<string, int[]>(StringComparer.Ordinal)
    {
        ["lowering"] = [0, 1, 2],
        ["tile_w"] = [8, 16, 32, 64],
        ["tile_h"] = Enumerable.Range(1, 64).ToArray(),
        ["rows_per_thread"] = [1, 2, 4, 8],
        ["cols_per_thread"] = [2, 4, 8],
        ["ch_per_block"] = Enumerable.Range(1, 16).ToArray(),
        ["unroll"] = [0, 1],
        ["fact_threads"] = [64, 128, 256, 512],
        ["fact_rows"] = Enumerable.Range(1, 256).ToArray(),
    };

    /// <summary>
    /// Defaults for the layer's plane size, band and rep channels (every value legal and within the limits).
    /// </summary>
    public static IReadOnlyDictionary<string, int> Defaults(SwLayerSpec spec)
    {
        int h = spec.Input[2], w = spec.Input[3];
        // warps across columns (coalesced global loads, conflict-free shared reads); 4 rows per thread reuse every
        // loaded input value for up to k FMAs of the horizontal band
        int tw = w >= 24 ? 32 : w >= 12 ? 16 : 8;
        int opy = h >= 16 ? 4 : h >= 4 ? 2 : 1;
        int ty = Math.Clamp((h + opy - 1) / opy, 1, Math.Max(1, 128 / tw));
        int th = ty * opy;
        // small planes: several channels per block so a block still has about 128 threads
        int cpb = Math.Clamp(128 / (tw * ty), 1, 16);
        cpb = Math.Min(cpb, NextPow2(spec.Rep));
        while (cpb > 1
            && SwCrossCudaModel.SharedFloats(th, tw, spec.Op.Shift.Small, spec.BandWidth, cpb) * 4
                > SwCrossCudaModel.MaxShared)
        {
            cpb /= 2;
        }
        int threads = 256;
        int rows = Math.Clamp(8 * threads / Math.Max(1, w), 1, h);
        while (rows > 1 && SwFactorisedCudaModel.SharedFloats(spec, rows) * 4 > SwCrossCudaModel.MaxShared) rows--;
        return new Dictionary<string, int>(StringComparer.Ordinal)
        {
            ["lowering"] = 0,
            ["tile_w"] = tw,
            ["tile_h"] = th,
            ["rows_per_thread"] = opy,
            ["cols_per_thread"] = 4,
            ["ch_per_block"] = cpb,
            ["unroll"] = 1,
            ["fact_threads"] = threads,
            ["fact_rows"] = rows,
        };
    }

    /// <summary>Registers a block may use in all (every CUDA arch since sm_50 has 64 K per SM and per block).</summary>
    public const int RegisterFile = 64 * 1024;

    /// <summary>
    /// The tuning search space of an SW layer, the default first: the cross at every tile width, rows per thread,
    /// threads down a column (so tile_h = that × rows per thread) and channels per block, unrolled or not; the
    /// factorised form at every thread count and power-of-two row block. Pruned before anything is compiled: the
    /// kernel models reject what breaks a limit (1024 threads, <paramref name="maxShared"/> bytes of shared memory,
    /// 16 outputs per thread), a block must hold a warp and stay within the register file at an estimate of 32 + 4
    /// registers per output in flight, and a tile may not be more than twice the plane in either direction. Then the
    /// register-blocked cross (lowering 2, fully unrolled) at 2, 4 or 8 rows and columns per thread, every tile width,
    /// threads down a column up to 16 and channels per block up to 4, under the same limits with its own register
    /// estimate (<see cref="SwCrossRbCudaModel.RegisterEstimate"/>, at most 255 per thread). Ordered by how many
    /// tunables differ from the default, fewest first.
    /// </summary>
    public static List<IReadOnlyDictionary<string, int>> Candidates(
        SwLayerSpec spec, int maxShared = SwCrossCudaModel.MaxShared)
    {
        var def = Defaults(spec);
        var list = new List<IReadOnlyDictionary<string, int>> { def };
        int h = spec.Input[2], w = spec.Input[3];
        foreach (int tw in Values["tile_w"])
        foreach (int rpt in Values["rows_per_thread"])
        foreach (int ty in new[] { 1, 2, 4, 8, 16, 32 })
        foreach (int cpb in new[] { 1, 2, 4, 8, 16 })
        foreach (int unroll in Values["unroll"])
        {
            int th = ty * rpt;
            if (th > 64 || tw > 2 * Math.Max(8, w) || th > 2 * Math.Max(1, h) || cpb > 2 * spec.Rep) continue;
            var c = new Dictionary<string, int>(def)
            {
                ["lowering"] = 0, ["tile_w"] = tw, ["tile_h"] = th, ["rows_per_thread"] = rpt,
                ["ch_per_block"] = cpb, ["unroll"] = unroll,
            };
            if (Legal(() => new SwCrossCudaModel(spec, c, "probe"), m => (m.Threads, m.SharedBytes, rpt), maxShared))
            {
                list.Add(c);
            }
        }
        foreach (int tw in Values["tile_w"])
        foreach (int rpt in new[] { 2, 4, 8 })
        foreach (int cpt in Values["cols_per_thread"])
        foreach (int ty in new[] { 1, 2, 4, 8, 16 })
        foreach (int cpb in new[] { 1, 2, 4 })
        {
            int th = ty * rpt;
            if (tw % cpt != 0 || th > 64 || tw > 2 * Math.Max(8, w) || th > 2 * Math.Max(1, h) || cpb > 2 * spec.Rep)
            {
                continue;
            }
            var c = new Dictionary<string, int>(def)
            {
                ["lowering"] = 2, ["tile_w"] = tw, ["tile_h"] = th, ["rows_per_thread"] = rpt,
                ["cols_per_thread"] = cpt, ["ch_per_block"] = cpb, ["unroll"] = 1,
            };
            try
            {
                var m = new SwCrossRbCudaModel(spec, c, "probe");
                if (WithinRegisterBlockLimits(m.Threads, m.SharedBytes, m.Registers, maxShared)) list.Add(c);
            }
            catch (IrException)
            {
            }
        }
        foreach (int threads in Values["fact_threads"])
        for (int rows = 1; rows <= Math.Max(1, h); rows *= 2)
        {
            var c = new Dictionary<string, int>(def)
            {
                ["lowering"] = 1, ["fact_threads"] = threads, ["fact_rows"] = rows,
            };
            if (Legal(() => new SwFactorisedCudaModel(spec, c, "probe"), m => (m.Threads, m.SharedBytes, m.PerThread),
                    maxShared))
            {
                list.Add(c);
            }
        }
        // nearest the default first (fewest tunables changed), so a budget cut keeps the default's neighbourhood
        return list
            .DistinctBy(c => string.Join(",", c.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Value)))
            .Select((c, i) => (c, i, d: c.Count(kv => def[kv.Key] != kv.Value))).OrderBy(t => t.d).ThenBy(t => t.i)
            .Select(t => t.c).ToList();
    }

    /// <summary>
    /// The limits a candidate's block must keep beyond those its kernel model enforces: at least a warp of threads,
    /// at most <paramref name="maxShared"/> bytes of shared memory, and the register file at 32 + 4 registers per
    /// output in flight per thread.
    /// </summary>
    public static bool WithinLimits(int threads, int sharedBytes, int outputs, int maxShared) =>
        threads >= 32 && sharedBytes <= maxShared && (long)threads * (32 + 4 * outputs) <= RegisterFile;

    /// <summary>
    /// <see cref="WithinLimits"/> for a kernel whose registers per thread are estimated directly: a warp, the shared
    /// memory, the register file, and at most 255 registers per thread (the hardware's limit).
    /// </summary>
    public static bool WithinRegisterBlockLimits(int threads, int sharedBytes, int registers, int maxShared) =>
        threads >= 32 && sharedBytes <= maxShared && registers <= 255 && (long)threads * registers <= RegisterFile;

    private static bool Legal<T>(Func<T> build, Func<T, (int Threads, int Shared, int Outputs)> facts, int maxShared)
    {
        try
        {
            var (threads, shared, outputs) = facts(build());
            return WithinLimits(threads, shared, outputs, maxShared);
        }
        catch (IrException)
        {
            return false;
        }
    }

    private static int NextPow2(int v)
    {
        int p = 1;
        while (p < v) p *= 2;
        return p;
    }

    IReadOnlyDictionary<string, int[]> ISwTunables.ValuesOf(SwLayerSpec spec) => Values;

    IReadOnlyDictionary<string, int> ISwTunables.DefaultsOf(SwLayerSpec spec) => Defaults(spec);

    List<IReadOnlyDictionary<string, int>> ISwTunables.SearchSpace(SwLayerSpec spec) => Candidates(spec);
}
