using System.Diagnostics;

namespace ShiftWise.Bench;

/// <summary>One candidate's timing: per-round samples (ms per run) and their median.</summary>
internal sealed record BenchResult(string Name, double MedianMs, double MinMs, double MaxMs, double[] SamplesMs)
{
    /// <summary>Runs timed over all rounds.</summary>
    public long Runs { get; init; }
}

/// <summary>
/// Interleaved timing (PERFORMANCE.md): warm every candidate up, then in each round run every candidate in turn
/// (starting at a rotating position, so no one always follows the same neighbour) for at least minPerRound and
/// record its mean time per run for that round; report the median over rounds.
/// </summary>
internal static class Bench
{
    /// <summary>Measures the candidates; returns one result per candidate in the given order.</summary>
    public static IReadOnlyList<BenchResult> Measure(
        IReadOnlyList<(string Name, Action Run)> candidates, int rounds, TimeSpan minPerRound, int warmupRuns = 3)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rounds, 1);
        int n = candidates.Count;
        foreach (var (_, run) in candidates)
        {
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < warmupRuns || sw.Elapsed < minPerRound; i++) run();
        }
        GC.Collect();
        GC.WaitForPendingFinalizers();

        var samples = new double[n][];
        var runs = new long[n];
        for (int c = 0; c < n; c++) samples[c] = new double[rounds];
        for (int round = 0; round < rounds; round++)
        {
            for (int j = 0; j < n; j++)
            {
                int c = (round + j) % n;
                Action run = candidates[c].Run;
                long iters = 0;
                long start = Stopwatch.GetTimestamp();
                TimeSpan elapsed;
                do
                {
                    run();
                    iters++;
                    elapsed = Stopwatch.GetElapsedTime(start);
                }
                while (elapsed < minPerRound);
                samples[c][round] = elapsed.TotalMilliseconds / iters;
                runs[c] += iters;
            }
        }

        var results = new BenchResult[n];
        for (int c = 0; c < n; c++)
        {
            double[] s = samples[c];
            results[c] = new BenchResult(candidates[c].Name, Median(s), s.Min(), s.Max(), s) { Runs = runs[c] };
        }
        return results;
    }

    /// <summary>The median (mean of the middle two for an even count).</summary>
    public static double Median(IEnumerable<double> values)
    {
        double[] v = values.Order().ToArray();
        if (v.Length == 0) return double.NaN;
        int m = v.Length / 2;
        return v.Length % 2 == 1 ? v[m] : 0.5 * (v[m - 1] + v[m]);
    }
}
