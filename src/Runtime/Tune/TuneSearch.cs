using System.Diagnostics;
using ShiftWise.Passes.Lowering;

namespace ShiftWise.Runtime.Tune;

/// <summary>
/// One row of the tuning table: a kernel spec (and how many nodes share it), default and tuned times.
/// </summary>
public sealed record TuneRow(string Kernel, int Nodes, double DefaultMs, double TunedMs,
    IReadOnlyDictionary<string, int> Config, string Source, int Measured, int Candidates)
{
    /// <summary>The configuration as "k=v, ..." in name order.</summary>
    public string ConfigText => ISwTunables.Text(Config);
}

/// <summary>Where tuning is: kernel k of n, candidate c of m, seconds spent of the budget.</summary>
public sealed record TuneStatus(int Kernel, int Kernels, string Name, int Candidate, int Candidates, double Seconds,
    double Budget);

/// <summary>
/// A target's tuner: measures every distinct SW spec of an optimised graph bound with its weights on this device
/// and puts the fastest configuration in the tuning cache (saved).
/// </summary>
public interface ITuner
{
    /// <summary>This device's tuning cache file.</summary>
    string CacheFile { get; }

    /// <summary>This device, for reports.</summary>
    string Where { get; }

    /// <summary>Tunes; the rows say default against tuned time per spec.</summary>
    IReadOnlyList<TuneRow> Tune(IR.Graph g, IReadOnlyDictionary<string, IR.Tensor> weights, TuningCache cache);
}

/// <summary>
/// A candidate ready to time: each call of <see cref="Sample"/> returns one timed sample, ms per kernel run.
/// </summary>
public sealed class TuneTrial(Func<double> sample, IDisposable? owner = null) : IDisposable
{
    /// <summary>One timed sample (ms per run).</summary>
    public double Sample() => sample();

    /// <inheritdoc/>
    public void Dispose() => owner?.Dispose();
}

/// <summary>
/// The search both targets share, for one kernel spec: its legal candidates in order (the default first), each
/// prepared (compiled) under a timeout, warmed up once, then timed <see cref="Repeats"/> times (the median kept);
/// a candidate whose first sample is three times the best so far is dropped; once the kernel's share of the budget
/// is spent the rest are recorded as not measured. A winner other than the default is confirmed in alternating runs
/// against it and kept only if at least 2% faster both in median and in its fastest sample.
/// </summary>
public sealed class TuneSearch
{
    /// <summary>The longest one candidate's preparation (compilation) may take.</summary>
    public TimeSpan CompileTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Timed samples per candidate.</summary>
    public int Repeats { get; init; } = 7;

    /// <summary>Alternating rounds of the confirmation.</summary>
    public int ConfirmRounds { get; init; } = 9;

    /// <summary>Note of a candidate skipped because the budget was spent.</summary>
    public const string BudgetSpent = "budget spent";

    /// <summary>
    /// Searches <paramref name="candidates"/> (the first is the default) within <paramref name="seconds"/>;
    /// <paramref name="prepare"/> compiles one (throwing <see cref="IR.IrException"/> or
    /// <see cref="ArgumentException"/> for one that fails); <paramref name="report"/> hears (candidate, count) as each
    /// starts.
    /// </summary>
    public TuneEntry Run(TuneKey key, string kernel, IReadOnlyList<IReadOnlyDictionary<string, int>> candidates,
        double seconds, Func<IReadOnlyDictionary<string, int>, TuneTrial> prepare, Action<int, int>? report = null)
    {
        var def = candidates[0];
        var clock = Stopwatch.StartNew();
        var times = new List<TuneTime>();
        var trials = new Dictionary<int, TuneTrial>();
        double best = double.PositiveInfinity;
        int bestAt = 0;
        try
        {
            for (int c = 0; c < candidates.Count; c++)
            {
                var cfg = candidates[c];
                report?.Invoke(c + 1, candidates.Count);
                if (c > 0 && clock.Elapsed.TotalSeconds > seconds)
                {
                    times.Add(new TuneTime(cfg, null, BudgetSpent));
                    continue;
                }
                var (trial, note) = Prepare(prepare, cfg);
                if (trial is null)
                {
                    if (c == 0) throw new IR.IrException($"{kernel}: the default configuration cannot be used: {note}");
                    times.Add(new TuneTime(cfg, null, note));
                    continue;
                }
                trials[c] = trial;
                trial.Sample();
                var t = new List<double> { trial.Sample() };
                if (t[0] >= 3 * best)
                {
                    times.Add(new TuneTime(cfg, null, $"stopped early: {t[0]:G4} ms is 3x the best"));
                    trials.Remove(c);
                    trial.Dispose();
                    continue;
                }
                for (int r = 1; r < Repeats; r++) t.Add(trial.Sample());
                double ms = Median(t);
                times.Add(new TuneTime(cfg, ms));
                if (ms < best) (best, bestAt) = (ms, c);
            }
            double defMs = times[0].Ms!.Value;
            if (bestAt != 0)
            {
                var a = new List<double>();
                var b = new List<double>();
                for (int r = 0; r < ConfirmRounds; r++)
                {
                    a.Add(trials[0].Sample());
                    b.Add(trials[bestAt].Sample());
                }
                (defMs, best) = (Median(a), Median(b));
                // both the medians and the fastest samples must agree (a shared machine's bursts move medians)
                if (best > 0.98 * defMs || b.Min() > 0.98 * a.Min()) (bestAt, best) = (0, defMs);
            }
            else
            {
                best = defMs;
            }
            return new TuneEntry(key, kernel, candidates[bestAt], best, def, defMs, candidates, times);
        }
        finally
        {
            foreach (var t in trials.Values) t.Dispose();
        }
    }

    private (TuneTrial? Trial, string? Note) Prepare(Func<IReadOnlyDictionary<string, int>, TuneTrial> prepare,
        IReadOnlyDictionary<string, int> cfg)
    {
        var task = Task.Run(() => prepare(cfg));
        try
        {
            if (!task.Wait(CompileTimeout))
            {
                // the compilation goes on in the background; its result is disposed of when it arrives
                task.ContinueWith(t => t.Result.Dispose(), TaskContinuationOptions.OnlyOnRanToCompletion);
                return (null, $"compile timed out after {CompileTimeout.TotalSeconds:G3} s");
            }
            return (task.Result, null);
        }
        catch (AggregateException e) when (e.InnerException is IR.IrException or Cuda.CudaException or ArgumentException
            or InvalidOperationException)
        {
            return (null, "failed: " + e.InnerException!.Message);
        }
    }

    /// <summary>
    /// The loop both tuners share: the graph's SW nodes grouped by spec; a spec the cache has is read from it (unless
    /// <paramref name="force"/>); the others get an even share of what is left of the budget and are searched by
    /// <paramref name="tuneOne"/>(a node of the spec, the spec, its key, seconds, report). The cache is saved at the
    /// end.
    /// </summary>
    public static IReadOnlyList<TuneRow> All(IR.Graph g, Func<SwLayerSpec, TuneKey> keyFor, TuningCache cache,
        bool force, double budget, Action<TuneStatus>? progress,
        Func<IR.Node, SwLayerSpec, TuneKey, double, Action<int, int>, TuneEntry> tuneOne)
    {
        var specs = SwLayerSpec.AllOf(g);
        var groups = g.Nodes.Where(n => specs.ContainsKey(n.Name)).Select(n => (Node: n, Spec: specs[n.Name]))
            .GroupBy(p => p.Spec.Hash).ToList();
        var clock = Stopwatch.StartNew();
        var rows = new List<TuneRow>();
        for (int k = 0; k < groups.Count; k++)
        {
            var (node, spec) = groups[k].First();
            var key = keyFor(spec);
            int nodes = groups[k].Count();
            if (!force && cache.Find(key) is { } hit)
            {
                rows.Add(new TuneRow(spec.Name, nodes, hit.DefaultMs, hit.BestMs, hit.Best, "cache",
                    hit.Times.Count(t => t.Ms is not null), hit.Candidates.Count));
                continue;
            }
            double share = Math.Max(0, budget - clock.Elapsed.TotalSeconds) / (groups.Count - k);
            int at = k + 1;
            var entry = tuneOne(node, spec, key, share, (c, n) =>
                progress?.Invoke(new TuneStatus(at, groups.Count, spec.Name, c, n, clock.Elapsed.TotalSeconds,
                    budget)));
            cache.Put(entry);
            bool cut = entry.Times.Any(t => t.Note == BudgetSpent);
            rows.Add(new TuneRow(spec.Name, nodes, entry.DefaultMs, entry.BestMs, entry.Best,
                cut ? "tuned (budget cut)" : "tuned", entry.Times.Count(t => t.Ms is not null),
                entry.Candidates.Count));
        }
        cache.Save();
        return rows;
    }

    /// <summary>The median of a non-empty list.</summary>
    public static double Median(IReadOnlyList<double> v)
    {
        var s = v.Order().ToList();
        return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
    }
}
