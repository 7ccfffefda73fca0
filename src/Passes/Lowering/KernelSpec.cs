using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Passes.Lowering;

/// <summary>A tunable parameter of a kernel: its legal values and the default the cost model picks.</summary>
public sealed record Tunable(string Name, IReadOnlyList<int> Values, int Default);

/// <summary>
/// One specialised kernel: its name (unique per specialisation) and its tunables with their legal ranges. Shared by
/// the CPU and CUDA targets, which render the same specs.
/// </summary>
public sealed record KernelSpec(string Name, IReadOnlyList<Tunable> Tunables)
{
    /// <summary>The default value of every tunable.</summary>
    public IReadOnlyDictionary<string, int> Defaults => Tunables.ToDictionary(t => t.Name, t => t.Default);
}

/// <summary>
/// The specialised SW layer: a <see cref="FusedShiftWise"/> node on a known input shape (the target chooses the
/// lowering; the tuner measures).
/// </summary>
public sealed record SwLayerSpec(KernelSpec Spec, FusedShiftWise Op, Shape Input)
{
    /// <summary>R, rep channels.</summary>
    public int Rep => Op.Rep.Count;

    /// <summary>
    /// SHA-256 (hex) over everything that specialises the kernel: the op's attributes (shift tables, kept channels)
    /// and the input shape; it keys the tuning cache.
    /// </summary>
    public string Hash => KernelLowering.SpecHash(Op, Input);

    /// <summary>Width of the band: n·k.</summary>
    public int BandWidth => Op.Shift.N * Op.Shift.Small;

    /// <summary>Position of each kept sub-channel in <see cref="FusedShiftWise.Subs"/>, by sub-channel.</summary>
    public Dictionary<int, int> KeptSlots()
    {
        var slot = new Dictionary<int, int>();
        for (int i = 0; i < Op.Subs.Count; i++) slot[Op.Subs[i]] = i;
        return slot;
    }

    /// <summary>
    /// Per rep channel, its first kept sub-kernel (R + 1 entries; the kept ones of channel o are start[o]..start[o+1]).
    /// </summary>
    public int[] SubStart()
    {
        var start = new int[Rep + 1];
        foreach (var t in Op.Subs) start[t / Op.Shift.N + 1]++;
        for (int o = 0; o < Rep; o++) start[o + 1] += start[o];
        return start;
    }

    /// <summary>Per kept sub-kernel and replica, its horizontal (or vertical) shift: |Subs|·N_rep entries.</summary>
    public int[] KeptShifts(bool vertical)
    {
        var s = Op.Shift;
        return Op.Subs.SelectMany(t => Enumerable.Range(0, s.NRep)
            .Select(g => vertical ? s.ShiftV(t, g) : s.ShiftH(t, g))).ToArray();
    }
}

/// <summary>The spec of an SW layer (the one kernel with tunables) and the hash that keys its tuning.</summary>
public static class KernelLowering
{
    /// <summary>
    /// The SW layer spec. Tunables (CPU): lowering (0 cross, 1 factorised), rows and 8-wide column vectors per
    /// register tile (at most 12 accumulators: AVX2 has 16 vector registers), threads.
    /// </summary>
    public static SwLayerSpec Sw(Node n, Shape x)
    {
        var op = (FusedShiftWise)n.Op;
        var s = op.Shift;
        int vc = (x[3] + 7) / 8;
        var cvs = Enumerable.Range(1, Math.Min(vc, 8)).ToArray();
        var rbs = new[] { 1, 2, 3, 4 };
        // default (cost model): up to 4 vectors by 2 rows (3 rows for narrower tiles). Each loaded input vector then
        // feeds about two FMAs (1 per load with a single row, which leaves the loads as the bottleneck), and the 8-9
        // accumulators plus the loaded vectors and a broadcast fit AVX2's 16 registers without spilling
        int cv = Math.Min(4, vc);
        int rb = Math.Min(cv >= 4 ? 2 : 3, Math.Max(1, x[2]));
        int lowering = 0; // the cross: dense FMAs beat the gather's loads on CPUs (PERFORMANCE.md); tuning may flip it
        var name = string.Create(CultureInfo.InvariantCulture,
            $"sw_fused_b{s.Big}k{s.Small}g{s.NRep}_c{x[1]}_h{x[2]}w{x[3]}_{Hash8(op, x)}");
        var spec = new KernelSpec(name,
        [
            new Tunable("lowering", [0, 1], lowering),
            new Tunable("row_block", rbs, rb),
            new Tunable("col_vectors", cvs, cv),
        ]);
        return new SwLayerSpec(spec, op, x);
    }

    /// <summary>First 8 hex digits of SHA-256 over everything that specialises the kernel.</summary>
    private static string Hash8(FusedShiftWise op, Shape x) => Sha(SpecText(op, x))[..8];

    /// <summary>SHA-256 (hex) over the kind, the input shape and the attributes of an SW layer.</summary>
    public static string SpecHash(FusedShiftWise op, Shape x) => Sha("fused_shiftwise\n" + SpecText(op, x));

    private static string SpecText(FusedShiftWise op, Shape x)
    {
        var w = new AttrWriter();
        op.WriteAttrs(w);
        return x + ";" + string.Join(";", w.Items.Select(i => i.Name + "=" + i.Text));
    }

    private static string Sha(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
}
