using ShiftWise.IR.Ops;

namespace ShiftWise.IR.Tests;

/// <summary>Random but valid SW configurations for property tests.</summary>
internal static class SwRandom
{
    /// <summary>Tables as SPEC 1.4 builds them, from random permutations and identity picks.</summary>
    public static ShiftAdd Tables(Random rng, int big, int small, int rep, int nrep)
    {
        int n = (big + small - 1) / small;
        var pad = new int[rep * n * 2 * nrep];
        var ident = new int[rep * nrep];
        for (int g = 0; g < nrep; g++)
        for (int o = 0; o < rep; o++)
        {
            var ph = Enumerable.Range(0, n).OrderBy(_ => rng.Next()).ToArray();
            var pv = Enumerable.Range(0, n).OrderBy(_ => rng.Next()).ToArray();
            for (int m = 0; m < n; m++)
            {
                int rho = big / 2 - m * small - (small - 1);
                pad[(o * n + ph[m]) * 2 * nrep + g] = rho;
                pad[(o * n + pv[m]) * 2 * nrep + nrep + g] = rho;
            }
            ident[o * nrep + g] = o * n + rng.Next(n);
        }
        return new ShiftAdd(big, small, nrep, pad, ident);
    }

    /// <summary>One random configuration: big kernel 3..63 (odd or even), small 3 or 5, N_rep 1..4, R 1..4.</summary>
    public static (ShiftAdd Shift, int H, int W) Config(Random rng)
    {
        int small = rng.Next(2) == 0 ? 3 : 5;
        int big = rng.Next(small, 64);
        var s = Tables(rng, big, small, rng.Next(1, 5), rng.Next(1, 5));
        // sizes from 1 to beyond the band, so some are smaller than it
        return (s, rng.Next(1, 2 + s.N * small), rng.Next(1, 2 + s.N * small));
    }

    public static Tensor Rand(Random rng, params int[] shape) =>
        TestUtil.Random(new TensorType(DType.F64, new Shape(shape)), rng);
}
