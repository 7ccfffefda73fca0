using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Frontend.Tables;

/// <summary>The rep/ghost channel split of an SW layer (SPEC 1.2).</summary>
/// <param name="Rep">Processed channels, ascending.</param>
/// <param name="Ghost">Pass-through channels, ascending.</param>
public sealed record ChannelSplit(int[] Rep, int[] Ghost);

/// <summary>
/// The seeded generators of the original SW layer, reproduced without numpy or torch: the ghost channels
/// (numpy.random.seed(123); choice(C, C−R, replace=False)) and the shift tables (torch.manual_seed(123); randperm
/// and randint on the CPU). Every layer reseeds, so the results depend only on the layer's sizes.
/// </summary>
public static class SwTables
{
    /// <summary>The seed both generators are reset to in every SW layer.</summary>
    public const uint Seed = 123;

    /// <summary>R = 2·⌊⌊C·(1−γ)⌋/2⌋, computed in double as Python does.</summary>
    public static int RepCount(int channels, double ghostRatio) => (int)(channels * (1 - ghostRatio)) / 2 * 2;

    /// <summary>The rep and ghost channel lists of an SW layer with <paramref name="channels"/> channels.</summary>
    public static ChannelSplit Split(int channels, double ghostRatio)
    {
        int rep = RepCount(channels, ghostRatio);
        if (rep <= 0)
        {
            throw new IrException($"an SW layer with {channels} channels and ghost ratio {ghostRatio} has no rep "
                + $"channels");
        }
        var ghost = LegacyPermutation(channels, new Mt19937(Seed))[..(channels - rep)];
        Array.Sort(ghost);
        var set = ghost.ToHashSet();
        return new ChannelSplit(Enumerable.Range(0, channels).Where(c => !set.Contains(c)).ToArray(), ghost);
    }

    /// <summary>
    /// numpy's legacy RandomState.permutation(n): a backward Fisher-Yates shuffle whose bounded draws take 32-bit
    /// words masked to the smallest 2^b−1 ≥ i, rejecting values above i.
    /// </summary>
    public static int[] LegacyPermutation(int n, Mt19937 rng)
    {
        var a = Enumerable.Range(0, n).ToArray();
        for (int i = n - 1; i >= 1; i--)
        {
            uint mask = (uint)i;
            mask |= mask >> 1;
            mask |= mask >> 2;
            mask |= mask >> 4;
            mask |= mask >> 8;
            mask |= mask >> 16;
            uint v;
            do
            {
                v = rng.NextUInt32() & mask;
            }
            while (v > i);
            (a[i], a[v]) = (a[v], a[i]);
        }
        return a;
    }

    /// <summary>
    /// torch.randperm(n) on the CPU for small n: forward Fisher-Yates with (32-bit word) mod (n − i).
    /// </summary>
    public static int[] TorchRandperm(int n, Mt19937 rng)
    {
        var a = Enumerable.Range(0, n).ToArray();
        for (int i = 0; i < n - 1; i++)
        {
            int z = (int)(rng.NextUInt32() % (uint)(n - i));
            (a[i], a[i + z]) = (a[i + z], a[i]);
        }
        return a;
    }

    /// <summary>
    /// The shift-add op of an SW layer with tables as AddShift_mp_module draws them (SPEC 1.4): for each replica and
    /// rep channel a horizontal permutation, then all vertical ones, then one randint per replica and channel.
    /// </summary>
    public static ShiftAdd ShiftAdd(int big, int small, int rep, int nrep)
    {
        if (small < 1 || small % 2 == 0) throw new IrException($"small kernel {small} must be odd (SPEC 8.6)");
        if (big < small) throw new IrException($"small kernel {small} must be smaller than the big kernel {big}");
        if (nrep < 1) throw new IrException($"N_rep {nrep} must be >= 1");
        int n = (big + small - 1) / small;
        var rng = new Mt19937(Seed);
        var ph = new int[nrep][][];
        var pv = new int[nrep][][];
        for (int g = 0; g < nrep; g++) ph[g] = Enumerable.Range(0, rep).Select(_ => TorchRandperm(n, rng)).ToArray();
        for (int g = 0; g < nrep; g++) pv[g] = Enumerable.Range(0, rep).Select(_ => TorchRandperm(n, rng)).ToArray();
        var ident = new int[rep * nrep];
        for (int g = 0; g < nrep; g++)
        {
            for (int o = 0; o < rep; o++) ident[o * nrep + g] = (int)(rng.NextUInt32() % (uint)n) + o * n;
        }
        var pad = new int[rep * n * 2 * nrep];
        for (int g = 0; g < nrep; g++)
        {
            for (int o = 0; o < rep; o++)
            {
                for (int m = 0; m < n; m++)
                {
                    int rho = big / 2 - m * small - (small - 1);
                    // block m holds local sub-channel perm[m]; the table is indexed by sub-channel (the inverse map)
                    pad[(o * n + ph[g][o][m]) * 2 * nrep + g] = rho;
                    pad[(o * n + pv[g][o][m]) * 2 * nrep + nrep + g] = rho;
                }
            }
        }
        return new ShiftAdd(big, small, nrep, pad, ident);
    }
}
