using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ShiftWise.Bench;

/// <summary>The measured FP32 FMA peak on 1 thread and on all threads, GFLOP/s.</summary>
internal sealed record PeakResult(double OneThread, double AllThreads, int Threads);

/// <summary>
/// FP32 FMA peak: 12 independent Vector256 FMA chains (enough to cover 2 pipes × 4-cycle latency with room to
/// spare), register resident, no memory traffic. 2 flops per lane per FMA; best of several trials.
/// </summary>
internal static class Peak
{
    private const int Chains = 12;
    private const double FlopsPerIter = Chains * 8 * 2;

    /// <summary>Runs <paramref name="iters"/> iterations of 12 FMAs; returns a value so nothing is dead code.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    public static float FmaLoop(long iters, float seed)
    {
        Vector256<float> a = Vector256.Create(0.999f), b = Vector256.Create(1e-3f);
        Vector256<float> c0 = Vector256.Create(seed), c1 = c0 + b, c2 = c1 + b, c3 = c2 + b, c4 = c3 + b, c5 = c4 + b;
        Vector256<float> c6 = c5 + b, c7 = c6 + b, c8 = c7 + b, c9 = c8 + b, c10 = c9 + b, c11 = c10 + b;
        for (long i = 0; i < iters; i++)
        {
            c0 = Fma.MultiplyAdd(c0, a, b);
            c1 = Fma.MultiplyAdd(c1, a, b);
            c2 = Fma.MultiplyAdd(c2, a, b);
            c3 = Fma.MultiplyAdd(c3, a, b);
            c4 = Fma.MultiplyAdd(c4, a, b);
            c5 = Fma.MultiplyAdd(c5, a, b);
            c6 = Fma.MultiplyAdd(c6, a, b);
            c7 = Fma.MultiplyAdd(c7, a, b);
            c8 = Fma.MultiplyAdd(c8, a, b);
            c9 = Fma.MultiplyAdd(c9, a, b);
            c10 = Fma.MultiplyAdd(c10, a, b);
            c11 = Fma.MultiplyAdd(c11, a, b);
        }
        Vector256<float> s = ((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7)) + ((c8 + c9) + (c10 + c11));
        return Vector256.Sum(s);
    }

    /// <summary>GFLOP/s of <paramref name="threads"/> threads each running the loop; best of <paramref name="trials"/>.</summary>
    public static double Measure(int threads, TimeSpan perTrial, int trials = 5)
    {
        if (!Fma.IsSupported) throw new PlatformNotSupportedException("FMA3 is required for the peak kernel");
        FmaLoop(1000, 1f);
        // calibrate iterations for ~perTrial on one thread
        long iters = 1 << 20;
        var sw = Stopwatch.StartNew();
        FmaLoop(iters, 1f);
        double secs = Math.Max(sw.Elapsed.TotalSeconds, 1e-6);
        iters = Math.Max(1000, (long)(iters * perTrial.TotalSeconds / secs));

        double best = 0;
        float sink = 0;
        for (int t = 0; t < trials; t++)
        {
            using var start = new Barrier(threads + 1);
            var workers = new Thread[threads];
            var sinks = new float[threads];
            for (int i = 0; i < threads; i++)
            {
                int id = i;
                workers[i] = new Thread(() =>
                {
                    start.SignalAndWait();
                    sinks[id] = FmaLoop(iters, 1f + id);
                }) { IsBackground = true };
                workers[i].Start();
            }
            start.SignalAndWait();
            long t0 = Stopwatch.GetTimestamp();
            foreach (var w in workers) w.Join();
            double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            sink += sinks.Sum();
            best = Math.Max(best, threads * iters * FlopsPerIter / s / 1e9);
        }
        if (float.IsNaN(sink)) Console.Error.WriteLine("(peak sink NaN)");
        return best;
    }

    /// <summary>1-thread and all-thread peaks.</summary>
    public static PeakResult MeasureBoth(TimeSpan perTrial)
    {
        int all = Environment.ProcessorCount;
        return new PeakResult(Measure(1, perTrial), Measure(all, perTrial), all);
    }

    /// <summary>All-thread Vector512 FMA peak (12 chains), GFLOP/s; 0 without AVX-512F.</summary>
    public static double AllThreads512(int threads)
    {
        if (!Avx512F.IsSupported) return 0;
        const long iters = 20_000_000;
        Loop512(1000);
        double best = 0;
        for (int t = 0; t < 3; t++)
        {
            long t0 = Stopwatch.GetTimestamp();
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, _ => Loop512(iters));
            double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            best = Math.Max(best, threads * iters * 12 * 16 * 2 / s / 1e9);
        }
        return best;
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Loop512(long iters)
    {
        Vector512<float> a = Vector512.Create(0.999f), b = Vector512.Create(1e-3f);
        Vector512<float> c0 = b, c1 = b, c2 = b, c3 = b, c4 = b, c5 = b, c6 = b, c7 = b, c8 = b, c9 = b, c10 = b, c11 = b;
        for (long i = 0; i < iters; i++)
        {
            c0 = Avx512F.FusedMultiplyAdd(c0, a, b);
            c1 = Avx512F.FusedMultiplyAdd(c1, a, b);
            c2 = Avx512F.FusedMultiplyAdd(c2, a, b);
            c3 = Avx512F.FusedMultiplyAdd(c3, a, b);
            c4 = Avx512F.FusedMultiplyAdd(c4, a, b);
            c5 = Avx512F.FusedMultiplyAdd(c5, a, b);
            c6 = Avx512F.FusedMultiplyAdd(c6, a, b);
            c7 = Avx512F.FusedMultiplyAdd(c7, a, b);
            c8 = Avx512F.FusedMultiplyAdd(c8, a, b);
            c9 = Avx512F.FusedMultiplyAdd(c9, a, b);
            c10 = Avx512F.FusedMultiplyAdd(c10, a, b);
            c11 = Avx512F.FusedMultiplyAdd(c11, a, b);
        }
        return Vector512.Sum(((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7)) + ((c8 + c9) + (c10 + c11)));
    }
}
