using ShiftWise.Runtime.Cpu;
using ShiftWise.Tests;

namespace ShiftWise.Runtime.Tests;

/// <summary>
/// <see cref="CpuWorkers"/>: every part runs exactly once, parts really run side by side on up to the requested
/// number of threads (and never more), helpers that went to sleep are woken, nested and concurrent calls finish, and an
/// exception reaches the caller only once no part is running any more. In the process-state collection (run alone):
/// only one fork runs at a time, so a fork made by another test at the same moment would run serially and fail the
/// concurrency checks. Every test body runs on its own thread under a time limit, so a deadlock fails instead of
/// hanging the run.
/// </summary>
[Collection(ProcessState.Name)]
public sealed class CpuWorkersTests
{
    /// <summary>How long a part waits for the parts it must run beside; generous, as CI machines are shared.</summary>
    private static readonly TimeSpan Meet = TimeSpan.FromSeconds(5);

    /// <summary>The limit on one whole test: past it the test reports a probable deadlock.</summary>
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Runs <paramref name="body"/> on a fresh background thread and fails if it has not returned within
    /// <see cref="Limit"/>; an exception it throws is rethrown here.
    /// </summary>
    private static void Within(Action body)
    {
        Exception? error = null;
        var t = new Thread(() =>
        {
            try
            {
                body();
            }
            catch (Exception e)
            {
                error = e;
            }
        }) { IsBackground = true, Name = "CpuWorkersTests body" };
        t.Start();
        Assert.True(t.Join(Limit), $"the test did not finish within {Limit.TotalSeconds} s: a CpuWorkers deadlock?");
        if (error is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
    }

    /// <summary>
    /// A fork of <paramref name="threads"/> parts on <paramref name="threads"/> threads in which every part waits until
    /// all of them have started: it can only finish if they really run at the same time. Returns the managed thread id
    /// of each part.
    /// </summary>
    private static int[] ForkThatNeedsAllThreads(int threads)
    {
        var started = new CountdownEvent(threads);
        var ids = new int[threads];
        var met = new bool[threads];
        CpuWorkers.For(threads, threads, p =>
        {
            ids[p] = Environment.CurrentManagedThreadId;
            started.Signal();
            met[p] = started.Wait(Meet);
        });
        for (int p = 0; p < threads; p++)
        {
            Assert.True(met[p], $"part {p} of {threads} waited {Meet.TotalSeconds} s for the others to start: "
                + $"they did not run side by side ({started.CurrentCount} never started)");
        }
        return ids;
    }

    public static TheoryData<int, int> PartsAndThreads()
    {
        var d = new TheoryData<int, int>();
        foreach (int parts in new[] { 0, 1, 2, 3, 17, 1000 })
        foreach (int threads in new[] { 1, 2, 4 })
        {
            d.Add(parts, threads);
        }
        return d;
    }

    /// <summary>
    /// Each part runs once (counted with Interlocked), none is out of range; 20 forks back to back with the same
    /// shape, so the helpers are reused in every state (still spinning, just started, about to sleep).
    /// </summary>
    [Theory]
    [MemberData(nameof(PartsAndThreads))]
    public void EveryPartRunsExactlyOnce(int parts, int threads) => Within(() =>
    {
        for (int round = 0; round < 20; round++)
        {
            var counts = new int[parts];
            int outside = 0;
            CpuWorkers.For(parts, threads, p =>
            {
                if ((uint)p < (uint)parts) Interlocked.Increment(ref counts[p]);
                else Interlocked.Increment(ref outside);
            });
            Assert.Equal(0, outside);
            for (int p = 0; p < parts; p++)
            {
                Assert.True(counts[p] == 1,
                    $"round {round}: part {p} of {parts} on {threads} threads ran {counts[p]} times");
            }
        }
    });

    /// <summary>The overload without a thread count uses every core and still runs each part once.</summary>
    [Fact]
    public void EveryPartRunsOnceOnEveryCore() => Within(() =>
    {
        var counts = new int[50];
        CpuWorkers.For(counts.Length, p => Interlocked.Increment(ref counts[p]));
        Assert.All(counts, c => Assert.Equal(1, c));
    });

    /// <summary>
    /// With parts that each block until all have started, the fork finishes only if the parts run on distinct
    /// threads at the same time (on any number of cores: a blocked part leaves its core to the others). The caller
    /// runs one part itself.
    /// </summary>
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void PartsRunSideBySideOnDistinctThreads(int threads) => Within(() =>
    {
        for (int round = 0; round < 5; round++)
        {
            int caller = Environment.CurrentManagedThreadId;
            var ids = ForkThatNeedsAllThreads(threads);
            Assert.Equal(threads, ids.Distinct().Count());
            Assert.Contains(caller, ids);
        }
    });

    /// <summary>
    /// Parts of about 2 ms (spinning, not sleeping) on 2 threads use more than one thread, measured by the distinct
    /// thread ids; only asserted with more than one core. Robust to a late helper: the caller takes parts in turn
    /// with the helper, and 100 parts of 2 ms give a helper that wakes within ~100 ms time to take one.
    /// </summary>
    [Fact]
    public void LongPartsSpreadOverThreads()
    {
        Assert.SkipWhen(Environment.ProcessorCount < 2, "one core: the helper may legitimately never get a part");
        Within(SpreadOverThreads);
    }

    private static void SpreadOverThreads()
    {
        var ids = new System.Collections.Concurrent.ConcurrentDictionary<int, int>();
        long ticks = System.Diagnostics.Stopwatch.Frequency / 500;
        CpuWorkers.For(100, 2, _ =>
        {
            ids.TryAdd(Environment.CurrentManagedThreadId, 0);
            long until = System.Diagnostics.Stopwatch.GetTimestamp() + ticks;
            while (System.Diagnostics.Stopwatch.GetTimestamp() < until) Thread.SpinWait(20);
        });
        Assert.Equal(2, ids.Count);
    }

    /// <summary>
    /// No more than <c>threads</c> parts are ever running at once, also after an earlier fork created more helpers
    /// than this one asks for.
    /// </summary>
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void NeverMoreThreadsThanAskedFor(int threads) => Within(() =>
    {
        ForkThatNeedsAllThreads(4);
        int active = 0, most = 0;
        var seen = new System.Collections.Concurrent.ConcurrentDictionary<int, int>();
        CpuWorkers.For(60, threads, _ =>
        {
            seen.TryAdd(Environment.CurrentManagedThreadId, 0);
            int now = Interlocked.Increment(ref active);
            int m;
            while (now > (m = Volatile.Read(ref most)) && Interlocked.CompareExchange(ref most, now, m) != m)
            {
            }
            Thread.Sleep(1);
            Interlocked.Decrement(ref active);
        });
        Assert.True(most <= threads, $"{most} parts ran at once on a fork of {threads} threads");
        Assert.True(seen.Count <= threads, $"{seen.Count} distinct threads ran parts of a fork of {threads}");
    });

    /// <summary>
    /// Forks separated by pauses around the helpers' 1 ms spin (0 to 3 ms), so that a fork often lands just as a
    /// helper decides to block: each fork needs the helper to take a part, so a lost wake-up fails the fork
    /// (after <see cref="Meet"/>) instead of passing with the caller doing all the work.
    /// </summary>
    [Fact]
    public void HelpersThatWentToSleepAreWoken() => Within(() =>
    {
        var rng = new Random(7);
        for (int round = 0; round < 150; round++)
        {
            int pause = rng.Next(0, 3000);
            long until = System.Diagnostics.Stopwatch.GetTimestamp()
                + System.Diagnostics.Stopwatch.Frequency * pause / 1_000_000;
            while (System.Diagnostics.Stopwatch.GetTimestamp() < until) Thread.Sleep(0);
            ForkThatNeedsAllThreads(2);
        }
    });

    /// <summary>
    /// A fork from inside a part (on the caller or on a helper) runs its parts one after another on that part's own
    /// thread, and every inner part runs once.
    /// </summary>
    [Fact]
    public void NestedForksRunOnceOnTheirOwnThread() => Within(() =>
    {
        const int outer = 6, inner = 9;
        var counts = new int[outer * inner];
        var wrongThread = new int[1];
        CpuWorkers.For(outer, 2, p =>
        {
            int mine = Environment.CurrentManagedThreadId;
            CpuWorkers.For(inner, 2, q =>
            {
                Interlocked.Increment(ref counts[p * inner + q]);
                if (Environment.CurrentManagedThreadId != mine) Interlocked.Increment(ref wrongThread[0]);
            });
        });
        Assert.All(counts, c => Assert.Equal(1, c));
        Assert.Equal(0, wrongThread[0]);
    });

    /// <summary>
    /// Two unrelated threads fork at the same time, 200 times each: whichever does not get the helpers runs its parts
    /// itself; both finish and every part of every fork runs once.
    /// </summary>
    [Fact]
    public void ConcurrentForksFromTwoThreadsFinish() => Within(() =>
    {
        const int rounds = 200, parts = 5;
        var counts = new int[2, rounds * parts];
        using var go = new Barrier(2);
        var errors = new Exception?[2];
        var threads = Enumerable.Range(0, 2).Select(id => new Thread(() =>
        {
            try
            {
                go.SignalAndWait();
                for (int r = 0; r < rounds; r++)
                {
                    CpuWorkers.For(parts, 2, p =>
                    {
                        Interlocked.Increment(ref counts[id, r * parts + p]);
                        Thread.SpinWait(200);
                    });
                }
            }
            catch (Exception e)
            {
                errors[id] = e;
            }
        }) { IsBackground = true }).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) Assert.True(t.Join(Limit), "a concurrent fork did not finish: deadlock?");
        Assert.All(errors, e => Assert.Null(e));
        for (int id = 0; id < 2; id++)
        for (int i = 0; i < rounds * parts; i++)
        {
            Assert.True(counts[id, i] == 1,
                $"thread {id}: part {i % parts} of round {i / parts} ran {counts[id, i]} times");
        }
        ForkThatNeedsAllThreads(2);
    });

    /// <summary>
    /// A part on the caller throws at once while the part on the helper is still running: the exception (the same
    /// object, with its message) arrives only after the helper's part has finished, and the next fork still uses the
    /// helpers.
    /// </summary>
    [Fact]
    public void AnExceptionOnTheCallerWaitsForTheHelpers() => Within(() =>
    {
        int caller = Environment.CurrentManagedThreadId, finished = 0;
        var thrown = new InvalidOperationException("part on the caller failed");
        using var started = new CountdownEvent(2);
        var e = Assert.Throws<InvalidOperationException>(() => CpuWorkers.For(2, 2, p =>
        {
            started.Signal();
            Assert.True(started.Wait(Meet), "the two parts did not run side by side");
            if (Environment.CurrentManagedThreadId == caller) throw thrown;
            Thread.Sleep(100);
            Volatile.Write(ref finished, 1);
        }));
        Assert.Same(thrown, e);
        Assert.Equal("part on the caller failed", e.Message);
        Assert.Equal(1, Volatile.Read(ref finished));
        AllPartsStillRunOnce();
    });

    /// <summary>
    /// A part on a helper throws while the caller's part keeps going: the helper survives, the exception reaches the
    /// caller after its own part, and every other part of the fork still ran.
    /// </summary>
    [Fact]
    public void AnExceptionOnAHelperReachesTheCaller() => Within(() =>
    {
        int caller = Environment.CurrentManagedThreadId, finished = 0;
        using var started = new CountdownEvent(2);
        var counts = new int[8];
        var e = Assert.Throws<ArgumentException>(() => CpuWorkers.For(counts.Length, 2, p =>
        {
            Interlocked.Increment(ref counts[p]);
            if (p >= 2) return;
            started.Signal();
            Assert.True(started.Wait(Meet), "the first two parts did not run side by side");
            if (Environment.CurrentManagedThreadId != caller) throw new ArgumentException("part on a helper failed");
            Thread.Sleep(50);
            Volatile.Write(ref finished, 1);
        }));
        Assert.Equal("part on a helper failed", e.Message);
        Assert.Equal(1, Volatile.Read(ref finished));
        Assert.All(counts, c => Assert.Equal(1, c));
        AllPartsStillRunOnce();
    });

    /// <summary>
    /// On one thread (the serial path) the exception is the part's own and, as on the parallel path, is rethrown
    /// after every other part has run.
    /// </summary>
    [Fact]
    public void AnExceptionOnOneThreadIsRethrownAsIs() => Within(() =>
    {
        var thrown = new FormatException("serial part failed");
        var ran = new int[3];
        var e = Assert.Throws<FormatException>(() => CpuWorkers.For(3, 1, p =>
        {
            ran[p]++;
            if (p == 1) throw thrown;
        }));
        Assert.Same(thrown, e);
        Assert.Equal([1, 1, 1], ran);
        AllPartsStillRunOnce();
    });

    private static void AllPartsStillRunOnce()
    {
        var counts = new int[33];
        CpuWorkers.For(counts.Length, 2, p => Interlocked.Increment(ref counts[p]));
        Assert.All(counts, c => Assert.Equal(1, c));
        Assert.Equal(2, ForkThatNeedsAllThreads(2).Distinct().Count());
    }
}
