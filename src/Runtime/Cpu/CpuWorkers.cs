namespace ShiftWise.Runtime.Cpu;

/// <summary>
/// A fork-join over a few long parts (the pieces of one GEMM, a sample's blocks): the calling thread runs part 0
/// and dedicated background threads the others, each woken by its own semaphore. Parallel.For is not used for
/// this because with two parts of about a millisecond each, called back to back, its caller often ran both parts
/// itself before a pool worker woke (measured: 88 to 99 of 100 back-to-back 196×1280×320 GEMMs took the time of
/// one thread). One fork at a time: a call made while another is running (from another thread, or from inside a
/// part) runs its parts one after another on its own thread, so nesting cannot deadlock.
/// </summary>
public static class CpuWorkers
{
    private static readonly Lock Gate = new();
    private static Worker[] _workers = [];
    [ThreadStatic] private static bool _inside;

    /// <summary>
    /// How long a helper spins for the next part before it blocks (µs; SWC_CPU_SPIN_US, default 1000).
    /// </summary>
    private static readonly long SpinTicks = System.Diagnostics.Stopwatch.Frequency / 1_000_000
        * (int.TryParse(Environment.GetEnvironmentVariable("SWC_CPU_SPIN_US"), out int us) && us >= 0 ? us : 1000);

    /// <summary><see cref="For(int, int, Action{int})"/> on every core.</summary>
    public static void For(int parts, Action<int> body) => For(parts, Environment.ProcessorCount, body);

    /// <summary>
    /// Runs <paramref name="body"/> for parts 0 … <paramref name="parts"/>−1, on up to <paramref name="threads"/>
    /// threads (the caller included); parts beyond the threads are taken in turn by whichever thread is free.
    /// The first exception of a part is rethrown here after every part has finished.
    /// </summary>
    public static void For(int parts, int threads, Action<int> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        int helpers = Math.Min(parts, threads) - 1;
        if (helpers <= 0 || _inside || !Gate.TryEnter())
        {
            // as on the parallel path: every part runs, then the first exception is rethrown
            var serial = new Job(parts, body);
            serial.Work();
            if (serial.Error is { } first) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first);
            return;
        }
        try
        {
            EnsureWorkers(helpers);
            var job = new Job(parts, body);
            for (int i = 0; i < helpers; i++) _workers[i].Start(job);
            _inside = true;
            try
            {
                job.Work();
            }
            finally
            {
                _inside = false;
            }
            job.WaitParts();
            if (job.Error is { } e) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
        }
        finally
        {
            Gate.Exit();
        }
    }

    private static void EnsureWorkers(int count)
    {
        if (_workers.Length >= count) return;
        var more = new Worker[count];
        _workers.CopyTo(more, 0);
        for (int i = _workers.Length; i < count; i++) more[i] = new Worker(i + 1);
        _workers = more;
    }

    private sealed class Job(int parts, Action<int> body)
    {
        private int _next = -1, _completed;

        private Exception? _error;

        public Exception? Error => Volatile.Read(ref _error);

        /// <summary>Takes parts until none is left.</summary>
        public void Work()
        {
            int p;
            while ((p = Interlocked.Increment(ref _next)) < parts)
            {
                try
                {
                    body(p);
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref _error, e, null);
                }
                finally
                {
                    Interlocked.Increment(ref _completed);
                }
            }
        }

        /// <summary>
        /// Waits until every part has finished. It waits for parts, not for helpers: a helper that wakes late (220 µs
        /// and more on a busy VM) finds no part left, and the caller, which took them all, need not wait for it.
        /// </summary>
        public void WaitParts()
        {
            var spin = new SpinWait();
            while (Volatile.Read(ref _completed) < parts) spin.SpinOnce(sleep1Threshold: -1);
        }
    }

    /// <summary>
    /// One helper thread. After a part it spins for <see cref="SpinTicks"/> before it blocks: waking a blocked
    /// thread took about 220 µs on this project's 2-core VMs (measured with forks 0.3 ms apart: the caller had
    /// finished before the helper woke in 194 of 200), longer than many parts. Waking is a Dekker handshake:
    /// the caller bumps <c>_seq</c> then reads <c>_sleeping</c>; the helper sets <c>_sleeping</c> then reads
    /// <c>_seq</c>, both through full fences, so at least one of them sees the other.
    /// </summary>
    private sealed class Worker
    {
        private readonly SemaphoreSlim _go = new(0);
        private Job? _job;
        private long _seq;
        private int _sleeping;

        public Worker(int index)
        {
            var t = new Thread(Loop) { IsBackground = true, Name = $"swc cpu worker {index}" };
            t.Start();
        }

        public void Start(Job job)
        {
            Volatile.Write(ref _job, job);
            Interlocked.Increment(ref _seq);
            if (Volatile.Read(ref _sleeping) == 1) _go.Release();
        }

        private void Loop()
        {
            _inside = true;
            long seen = 0;
            while (true)
            {
                long until = System.Diagnostics.Stopwatch.GetTimestamp() + SpinTicks, now;
                while ((now = Volatile.Read(ref _seq)) == seen)
                {
                    if (System.Diagnostics.Stopwatch.GetTimestamp() < until)
                    {
                        Thread.SpinWait(30);
                        continue;
                    }
                    Interlocked.Exchange(ref _sleeping, 1);
                    // a Release that finds no one waiting leaves a count: the loop re-checks _seq after any wake
                    if (Volatile.Read(ref _seq) == seen) _go.Wait();
                    Interlocked.Exchange(ref _sleeping, 0);
                    until = System.Diagnostics.Stopwatch.GetTimestamp() + SpinTicks;
                }
                seen = now;
                var job = Volatile.Read(ref _job)!;
                job.Work();
            }
        }
    }
}
