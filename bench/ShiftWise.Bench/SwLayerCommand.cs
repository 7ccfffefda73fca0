using System.Diagnostics;
using System.Globalization;
using ShiftWise.Runtime.Cpu;

namespace ShiftWise.Bench;

/// <summary>Options of the sw-layer command.</summary>
internal sealed record SwLayerOptions
{
    /// <summary>Batch sizes to run.</summary>
    public IReadOnlyList<int> Batches { get; init; } = [1];

    /// <summary>Timing rounds per shape.</summary>
    public int Rounds { get; init; } = 15;

    /// <summary>Minimum time per candidate per round.</summary>
    public TimeSpan MinPerRound { get; init; } = TimeSpan.FromMilliseconds(20);

    /// <summary>Directory for sw_layer.md/.csv.</summary>
    public required string OutDir { get; init; }

    /// <summary>Stage filter (s0..s3); empty = all.</summary>
    public IReadOnlyList<string> Stages { get; init; } = [];

    /// <summary>Pad R to a multiple of 4 for the ORT peers.</summary>
    public bool Pad4 { get; init; } = true;

    /// <summary>ORT intra-op threads.</summary>
    public int Threads { get; init; } = 2;

    /// <summary>The load average when the run started (filled in by the command).</summary>
    public string LoadAtStart { get; set; } = "n/a";

    /// <summary>The peak re-measured after the timings (filled in by the command).</summary>
    public PeakResult? PeakAtEnd { get; set; }

    /// <summary>Directory to dump the ONNX peer models into, or null.</summary>
    public string? DumpOnnx { get; init; }
}

/// <summary>One row of the results table.</summary>
internal sealed record SwRow(SwShape Shape, int Batch, int PeerChannels, string Candidate, string Notes,
    BenchResult Time, double Gflops, double PctPeak, double VsDense, double VsBand, double RelErr);

/// <summary>The SW layer benchmark: ORT dense and band peers against our candidates, interleaved.</summary>
internal static class SwLayerCommand
{
    /// <summary>Tolerance for ORT band vs ORT dense (and ORT dense vs the IR oracle).</summary>
    public const double PeerTolerance = 1e-5;

    /// <summary>Tolerance for a candidate vs ORT dense.</summary>
    public const double CandidateTolerance = 1e-4;

    /// <summary>
    /// Our kernels. Add new candidates here (or behind a flag); each is prepared, checked against ORT dense and
    /// timed interleaved with the peers.
    /// </summary>
    public static IEnumerable<ISwLayerCandidate> OurCandidates()
    {
        // SWC_BENCH_CROSS_ONLY=1 leaves out the other candidates (naive, unoptimised, managed, factorised)
        bool crossOnly = Environment.GetEnvironmentVariable("SWC_BENCH_CROSS_ONLY") == "1";
        if (!crossOnly)
        {
            yield return new NaiveCrossCandidate();
            yield return new UnoptimisedGraphCandidate();
            yield return new ManagedFusedCandidate();
            yield return new FactorisedCandidate();
        }
        yield return new CompiledCrossCandidate();
        if (CpuIsa.Current == CpuIsaKind.Avx512)
        {
            // the AVX2 path side by side (what CPUs without AVX-512F run)
            yield return new CompiledCrossCandidate(null, "swc cross avx2", CpuIsaKind.Avx2);
        }
        // extra register tiles to compare, e.g. SWC_BENCH_TILES=1x7,3x4 (rows x vectors)
        foreach (var t in (Environment.GetEnvironmentVariable("SWC_BENCH_TILES") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            var p = t.Split('x');
            var tun = new Dictionary<string, int>
            {
                ["lowering"] = 0, ["row_block"] = int.Parse(p[0], CultureInfo.InvariantCulture),
                ["col_vectors"] = int.Parse(p[1], CultureInfo.InvariantCulture),
            };
            yield return new CompiledCrossCandidate(tun, "swc cross " + t);
            if (CpuIsa.Current == CpuIsaKind.Avx512
                && tun["row_block"] * tun["col_vectors"] <= ShiftWise.CodegenCpu.SwCrossCpuModel.MaxAccumulators(8))
            {
                yield return new CompiledCrossCandidate(tun, "swc cross avx2 " + t, CpuIsaKind.Avx2);
            }
        }
    }

    /// <summary>Runs the benchmark; returns the process exit code (1 when a correctness check failed).</summary>
    public static int Run(SwLayerOptions opt)
    {
        Console.WriteLine(MachineInfo.Describe());
        opt.LoadAtStart = MachineInfo.LoadAverage();
        Console.WriteLine($"load average: {opt.LoadAtStart}");
        Console.WriteLine("Measuring FP32 FMA peak ...");
        PeakResult peak = Peak.MeasureBoth(TimeSpan.FromMilliseconds(200));
        Console.WriteLine($"peak: {peak.OneThread:F1} GFLOP/s on 1 thread, {peak.AllThreads:F1} GFLOP/s on {peak.Threads} threads");
        if (MachineInfo.ContentionWarning(peak) is { } warn) Console.WriteLine(warn);
        Console.WriteLine($"ORT peers: intra-op threads {opt.Threads}, session.intra_op.allow_spinning=0, ORT_ENABLE_ALL; "
            + (opt.Pad4 ? "R padded up to a multiple of 4 (zero channels) for the peers; FLOPs counted on the true R."
                        : "R NOT padded (--no-pad)."));
        Console.WriteLine($"timing: {opt.Rounds} interleaved rounds, >= {opt.MinPerRound.TotalMilliseconds} ms per candidate per round, medians.");
        Console.WriteLine();

        var rows = new List<SwRow>();
        var failures = new List<string>();
        var shapes = SwShape.Tiny.Where(s => opt.Stages.Count == 0 || opt.Stages.Contains(s.Stage)).ToList();
        foreach (int batch in opt.Batches)
        foreach (SwShape shape in shapes)
            rows.AddRange(RunShape(shape, batch, opt, peak, failures));

        PeakResult end = Peak.MeasureBoth(TimeSpan.FromMilliseconds(200));
        opt.PeakAtEnd = end;
        Console.WriteLine($"peak again at the end: {end.OneThread:F1} / {end.AllThreads:F1} GFLOP/s (load average {MachineInfo.LoadAverage()})");
        if (MachineInfo.ContentionWarning(end) is { } endWarn) Console.WriteLine(endWarn);
        Console.WriteLine();
        Console.WriteLine(Report.TextTable(rows, peak));
        Report.Write(opt.OutDir, rows, peak, opt, failures);
        Console.WriteLine($"wrote {Path.Combine(opt.OutDir, "sw_layer.md")} and sw_layer.csv");
        foreach (string f in failures) Console.WriteLine($"FAILED: {f}");
        return failures.Count == 0 ? 0 : 1;
    }

    private static List<SwRow> RunShape(SwShape s, int batch, SwLayerOptions opt, PeakResult peak, List<string> failures)
    {
        string label = $"{s.Label} N{batch}";
        Console.WriteLine($"== {label}: n={s.Blocks}, band {s.K}x{s.BandWidth}, mu={s.Mu}, taps={s.Taps}, "
            + $"{s.Flops(batch) / 1e6:F1} MFLOP; load average {MachineInfo.LoadAverage()}");
        var problem = SwLayerProblem.Random(s, batch);
        var dense = new OrtPeer(OrtPeerKind.Dense, opt.Threads, opt.Pad4);
        var band = new OrtPeer(OrtPeerKind.Band, opt.Threads, opt.Pad4);
        if (opt.DumpOnnx is { } dumpDir)
        {
            Directory.CreateDirectory(dumpDir);
            dense.OptimizedModelPath = Path.Combine(dumpDir, $"{s.Stage}_n{batch}_dense.optimized.onnx");
            band.OptimizedModelPath = Path.Combine(dumpDir, $"{s.Stage}_n{batch}_band.optimized.onnx");
        }
        var all = new List<ISwLayerCandidate> { dense, band };
        all.AddRange(OurCandidates());
        try
        {
            foreach (var c in all)
            {
                var sw = Stopwatch.StartNew();
                c.Prepare(problem);
                c.Run();
                Console.WriteLine($"   prepared {c.Name,-22} in {sw.Elapsed.TotalMilliseconds,8:F1} ms ({c.Notes})");
            }
            if (opt.DumpOnnx is { } dir)
            {
                foreach (var p in new[] { dense, band })
                    File.WriteAllBytes(Path.Combine(dir, $"{s.Stage}_n{batch}_{(p == dense ? "dense" : "band")}.onnx"), p.ModelBytes);
            }

            float[] refOut = dense.Output;
            var errors = new Dictionary<string, double> { [dense.Name] = 0 };
            float[] oracle = problem.OracleFirstImage();
            double eo = SwLayerProblem.RelL2(refOut.AsSpan(0, oracle.Length), oracle);
            Check($"{label}: ORT dense vs IR oracle (SwCollapse.Apply, image 0)", eo, PeerTolerance, failures);
            double eb = SwLayerProblem.RelL2(band.Output, refOut);
            errors[band.Name] = eb;
            Check($"{label}: ORT band vs ORT dense", eb, PeerTolerance, failures);

            var timed = new List<ISwLayerCandidate> { dense, band };
            foreach (var c in all.Skip(2))
            {
                double e = SwLayerProblem.RelL2(c.Output, refOut);
                errors[c.Name] = e;
                if (Check($"{label}: {c.Name} vs ORT dense", e, CandidateTolerance, failures)) timed.Add(c);
            }

            var results = Bench.Measure(timed.Select(c => (c.Name, (Action)c.Run)).ToList(), opt.Rounds, opt.MinPerRound);
            double denseMs = results[0].MedianMs, bandMs = results[1].MedianMs;
            var rows = new List<SwRow>();
            for (int i = 0; i < results.Count; i++)
            {
                BenchResult r = results[i];
                double gf = s.Flops(batch) / (r.MedianMs * 1e6);
                int peerCh = i < 2 ? (opt.Pad4 ? s.RPadded4 : s.R) : s.R;
                rows.Add(new SwRow(s, batch, peerCh, r.Name, timed[i].Notes, r, gf, 100 * gf / peak.AllThreads,
                    denseMs / r.MedianMs, bandMs / r.MedianMs, errors[r.Name]));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"   {r.Name,-22} median {r.MedianMs,9:F3} ms  (min {r.MinMs:F3}, max {r.MaxMs:F3}, {r.Runs} runs)  {gf,7:F2} GFLOP/s"));
            }
            return rows;
        }
        finally
        {
            foreach (var c in all) c.Dispose();
        }
    }

    private static bool Check(string what, double err, double tol, List<string> failures)
    {
        bool ok = err <= tol;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"   check {what}: rel L2 {err:0.00E+00} (tol {tol:0E+00}) {(ok ? "ok" : "FAIL")}"));
        if (!ok) failures.Add($"{what}: rel L2 {err:0.00E+00} > {tol:0E+00}");
        return ok;
    }
}
