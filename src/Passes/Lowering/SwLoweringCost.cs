using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Passes.Lowering;

/// <summary>A way to compute an SW layer, with its estimated arithmetic and memory traffic.</summary>
public sealed record SwLowering(string Name, long Flops, long Bytes);

/// <summary>
/// The two lowerings every target has for an SW layer and what each costs: the IR counts ops, these count the forms
/// a target may run them in (<see cref="IR.Analysis.Cost.Of"/> takes <see cref="Cheapest"/> for them).
/// </summary>
public static class SwLoweringCost
{
    /// <summary>
    /// The two lowerings of an SW layer (<see cref="SwCross"/> or <see cref="FusedShiftWise"/>) on input shape
    /// <paramref name="x"/>: the collapsed cross (a dense 2·n·k² − k² tap depthwise conv per rep channel) and the
    /// factorised form (the kept k×k sub-kernels on the (H+2e)×(W+2e) map, then the shifted sums). Bytes assume the
    /// factorised intermediate stays on chip, as the fused kernels keep it.
    /// </summary>
    public static IReadOnlyList<SwLowering> Of(Op op, Shape x)
    {
        var (s, subs, ghost) = op switch
        {
            SwCross c => (c.Shift, c.Subs.Count, 0),
            FusedShiftWise f => (f.Shift, f.Subs.Count, f.Ghost.Count),
            _ => throw new ArgumentException("not an SW layer op", nameof(op)),
        };
        long nb = x[0], h = x[2], w = x[3], r = s.Rep, k = s.Small, e = s.Extra;
        long taps = 2 * s.N * k * k - k * k;
        long outs = nb * (r + ghost) * h * w;
        long io = 4 * (nb * x[1] * h * w + outs);
        long cross = 2 * nb * r * h * w * taps + 2 * nb * ghost * h * w;
        // every kept sub-kernel is placed 2·N_rep times (clipped at borders: an upper bound here) plus identity picks
        long placements = 2L * subs * s.NRep * h * w + r * s.NRep * h * w;
        long factorised = 2 * nb * subs * (h + 2 * e) * (w + 2 * e) * k * k + nb * placements + 5 * nb * r * h * w
            + 2 * nb * ghost * h * w;
        return
        [
            new SwLowering("cross", cross, io + 4 * r * taps),
            new SwLowering("factorised", factorised, io + 4 * subs * k * k),
        ];
    }

    /// <summary>The cost of an SW layer op in its cheapest lowering (FLOPs and bytes each at their minimum).</summary>
    public static (long Flops, long Bytes) Cheapest(Op op, Shape x)
    {
        var l = Of(op, x);
        return (l.Min(c => c.Flops), l.Min(c => c.Bytes));
    }
}
