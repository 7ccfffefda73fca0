using System.Globalization;
using System.Runtime.Intrinsics.X86;
using System.Text;

namespace ShiftWise.Bench;

/// <summary>Describes the machine for the reports.</summary>
internal static class MachineInfo
{
    /// <summary>CPU model, cores, ISA, runtime and ORT version in one line.</summary>
    public static string Describe()
    {
        string cpu = "unknown CPU";
        try
        {
            cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))
                ?.Split(':', 2)[1].Trim() ?? cpu;
        }
        catch (IOException)
        {
        }
        string isa = $"AVX2 {Avx2.IsSupported}, FMA {Fma.IsSupported}, AVX-512F {Avx512F.IsSupported}";
        string ort = Microsoft.ML.OnnxRuntime.OrtEnv.Instance().GetVersionString();
        return $"{cpu}, {Environment.ProcessorCount} logical cores, {isa}; .NET {Environment.Version}, ORT {ort}";
    }

    /// <summary>The 1/5/15-minute load averages (Linux), or "n/a".</summary>
    public static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "n/a";
        }
    }

    /// <summary>A warning when the all-thread peak does not scale, i.e. other processes hold the cores.</summary>
    public static string? ContentionWarning(PeakResult p) =>
        p.Threads > 1 && p.AllThreads < 0.8 * p.Threads * p.OneThread
            ? $"WARNING: the {p.Threads}-thread peak is only {p.AllThreads / p.OneThread:F2}x the 1-thread peak: other "
              + "processes are using the cores (load average " + LoadAverage() + "); absolute times are inflated, ratios less so."
            : null;
}

/// <summary>The stdout table and the sw_layer.md/.csv files.</summary>
internal static class Report
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    private static string[] Header(PeakResult peak) =>
    [
        "shape", "N", "candidate", "median ms", "GFLOP/s", $"% of {peak.Threads}T peak", "× vs ORT dense", "× vs ORT band",
        "rel L2 vs dense",
    ];

    private static string[] Cells(SwRow r) =>
    [
        r.Shape.Label + (r.PeerChannels != r.Shape.R ? $" (peer R {r.PeerChannels})" : ""),
        r.Batch.ToString(Inv),
        r.Candidate,
        r.Time.MedianMs.ToString("F3", Inv),
        r.Gflops.ToString("F2", Inv),
        r.PctPeak.ToString("F1", Inv),
        r.VsDense.ToString("F2", Inv),
        r.VsBand.ToString("F2", Inv),
        r.RelErr.ToString("0.0E+00", Inv),
    ];

    /// <summary>A fixed-width text table for stdout.</summary>
    public static string TextTable(IReadOnlyList<SwRow> rows, PeakResult peak)
    {
        string[] head = Header(peak);
        var cells = rows.Select(Cells).ToList();
        var width = head.Select((h, i) => Math.Max(h.Length, cells.Count == 0 ? 0 : cells.Max(c => c[i].Length))).ToArray();
        var sb = new StringBuilder();
        void Line(string[] c) => sb.AppendLine(string.Join("  ", c.Select((x, i) => i < 3 ? x.PadRight(width[i]) : x.PadLeft(width[i]))));
        Line(head);
        sb.AppendLine(new string('-', width.Sum() + 2 * (width.Length - 1)));
        foreach (var c in cells) Line(c);
        sb.AppendLine("× vs peer = peer median / candidate median (> 1: the candidate is faster). "
            + "GFLOP/s on the collapsed count N·R·H·W·taps·2, taps = 2·n·k·k − k², true R for every row.");
        return sb.ToString();
    }

    /// <summary>Writes sw_layer.md and sw_layer.csv into <paramref name="dir"/> atomically (temp file + rename).</summary>
    public static void Write(string dir, IReadOnlyList<SwRow> rows, PeakResult peak, SwLayerOptions opt, IReadOnlyList<string> failures)
    {
        Directory.CreateDirectory(dir);
        AtomicWrite(Path.Combine(dir, "sw_layer.md"), Markdown(rows, peak, opt, failures));
        AtomicWrite(Path.Combine(dir, "sw_layer.csv"), Csv(rows, peak));
    }

    private static void AtomicWrite(string path, string text)
    {
        string tmp = path + $".tmp{Environment.ProcessId}";
        File.WriteAllText(tmp, text, new UTF8Encoding(false));
        File.Move(tmp, path, overwrite: true);
    }

    private static string Markdown(IReadOnlyList<SwRow> rows, PeakResult peak, SwLayerOptions opt, IReadOnlyList<string> failures)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# SW layer benchmark (CPU, fp32)");
        sb.AppendLine();
        sb.AppendLine($"Generated {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC by `dotnet run -c Release --project bench/ShiftWise.Bench -- sw-layer`.");
        sb.AppendLine();
        sb.AppendLine($"- Machine: {MachineInfo.Describe()}");
        sb.AppendLine(string.Create(Inv, $"- Measured FP32 FMA peak: {peak.OneThread:F1} GFLOP/s on 1 thread, {peak.AllThreads:F1} GFLOP/s on {peak.Threads} threads (12 Vector256 FMA chains)."));
        sb.AppendLine($"- Load average at start / end: {opt.LoadAtStart} / {MachineInfo.LoadAverage()}.");
        if (opt.PeakAtEnd is { } end)
            sb.AppendLine(string.Create(Inv, $"- Peak re-measured after the timings: {end.OneThread:F1} / {end.AllThreads:F1} GFLOP/s (1 / {end.Threads} threads)."));
        foreach (var p in new[] { peak, opt.PeakAtEnd })
            if (p is not null && MachineInfo.ContentionWarning(p) is { } warn) sb.AppendLine($"- **{warn}**");
        sb.AppendLine($"- ORT peers: CPU EP, intra-op threads {opt.Threads}, `session.intra_op.allow_spinning=0`, ORT_ENABLE_ALL, NCHW. "
            + (opt.Pad4 ? "R padded up to a multiple of 4 with zero channels (ORT's NCHWc depthwise path needs it); FLOPs counted on the true R."
                        : "R not padded (`--no-pad`)."));
        sb.AppendLine("- ORT dense: one depthwise Conv, (n·k)×(n·k) kernel, pads [μ, μ, n·k−1−μ, n·k−1−μ]. ORT band: depthwise k×n·k + n·k×k + k×k, two Adds. "
            + "Their times include ORT's NCHW↔NCHWc reorders (the models take and return NCHW).");
        sb.Append(string.Create(Inv, $"- Timing: {opt.Rounds} interleaved rounds, ≥ {opt.MinPerRound.TotalMilliseconds} ms per candidate per round, "));
        sb.AppendLine("median of per-round means. × vs peer = peer median / candidate median (> 1: faster than the peer).");
        sb.AppendLine($"- Checks: ORT dense vs IR oracle and ORT band vs ORT dense ≤ {SwLayerCommand.PeerTolerance:0E+00}; candidates vs ORT dense ≤ {SwLayerCommand.CandidateTolerance:0E+00} (relative L2).");
        sb.AppendLine();
        string[] head = Header(peak);
        sb.AppendLine("| " + string.Join(" | ", head) + " |");
        sb.AppendLine("|" + string.Concat(head.Select((_, i) => i < 3 ? "---|" : "---:|")));
        foreach (var r in rows) sb.AppendLine("| " + string.Join(" | ", Cells(r)) + " |");
        sb.AppendLine();
        sb.AppendLine("Candidates:");
        foreach (var (name, notes) in rows.Select(r => (r.Candidate, r.Notes)).DistinctBy(x => x.Candidate))
            sb.AppendLine($"- **{name}**: {notes}");
        if (failures.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("**Failed checks** (failing candidates were not timed):");
            foreach (string f in failures) sb.AppendLine($"- {f}");
        }
        return sb.ToString();
    }

    private static string Csv(IReadOnlyList<SwRow> rows, PeakResult peak)
    {
        var sb = new StringBuilder();
        sb.AppendLine("stage,batch,C,R,peer_R,H,W,B,k,n,band_width,taps,mflop,candidate,median_ms,min_ms,max_ms,rounds,runs,"
            + "gflops,pct_peak,peak_1t_gflops,peak_all_gflops,peak_threads,speedup_vs_ort_dense,speedup_vs_ort_band,rel_l2_vs_ort_dense");
        foreach (var r in rows)
        {
            SwShape s = r.Shape;
            sb.Append(string.Create(Inv, $"{s.Stage},{r.Batch},{s.C},{s.R},{r.PeerChannels},{s.H},{s.W},{s.B},{s.K},"));
            sb.Append(string.Create(Inv, $"{s.Blocks},{s.BandWidth},{s.Taps},{s.Flops(r.Batch) / 1e6:F3},\"{r.Candidate}\","));
            sb.Append(string.Create(Inv, $"{r.Time.MedianMs:F4},{r.Time.MinMs:F4},{r.Time.MaxMs:F4},{r.Time.SamplesMs.Length},"));
            sb.Append(string.Create(Inv, $"{r.Time.Runs},{r.Gflops:F3},{r.PctPeak:F2},{peak.OneThread:F2},{peak.AllThreads:F2},"));
            sb.AppendLine(string.Create(Inv, $"{peak.Threads},{r.VsDense:F4},{r.VsBand:F4},{r.RelErr:0.000E+00}"));
        }
        return sb.ToString();
    }
}
