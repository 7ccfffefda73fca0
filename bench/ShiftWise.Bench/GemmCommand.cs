using System.Globalization;
using System.Text;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Runtime.Cpu;

namespace ShiftWise.Bench;

/// <summary>
/// <c>gemm</c>: sw-tiny's pointwise GEMMs with their epilogues, per stage and batch, side by side in one process
/// (interleaved rounds, medians): one BLAS call per sample plus the epilogue passes, as before the tiled GEMM
/// (OpenBLAS, and the managed GEMM), against the register-tiled GEMM on AVX2 and on AVX-512. Rows: the expand GEMM
/// (in_nchw, bias, GELU, GRN), the project GEMM (out_nchw, bias, residual) and the folded pair (gemm_grn_fold, as
/// stages 0 and 1 run). GFLOP/s count 2·batch·HW·K·N per GEMM; % of peak is against the Vector256 FMA peak loop
/// run on the same threads as one more candidate in the same interleaved rounds, so that load from other
/// processes inflates both alike (the Vector512 peak is printed too: on a CPU that splits 512-bit FMAs in two it
/// is no higher). Under heavy load from other processes the minimum over rounds (also given) is the steadier
/// estimate of the uncontended time. Each candidate is first checked against
/// the OpenBLAS one (relative L2 ≤ 1e-5).
/// </summary>
internal static class GemmCommand
{
    private static readonly (int Stage, int Hw, int C)[] Stages = [(0, 3136, 80), (1, 784, 160), (2, 196, 320), (3, 49, 640)];

    /// <summary>Runs the benchmark; returns the exit code (1 when a check failed).</summary>
    public static int Run(int[] batches, int[] stages, int rounds, double minMs, string? outFile, int threads)
    {
        Blas.Threads = threads;
        Console.WriteLine(MachineInfo.Describe());
        Console.WriteLine($"load average: {MachineInfo.LoadAverage()}; tiled ISA by default: {GemmIsa.Current}");
        var peak = Peak.MeasureBoth(TimeSpan.FromMilliseconds(200));
        double peak512 = Peak.AllThreads512(Environment.ProcessorCount);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"FMA peak: Vector256 {peak.OneThread:F1} (1T) / {peak.AllThreads:F1} ({peak.Threads}T) GFLOP/s; "
            + $"Vector512 {peak512:F1} ({peak.Threads}T)"));
        if (MachineInfo.ContentionWarning(peak) is { } warn) Console.WriteLine(warn);
        var isas = new List<GemmVectors> { GemmVectors.Avx2 };
        if (GemmIsa.Supported(GemmVectors.Avx512)) isas.Add(GemmVectors.Avx512);
        var table = new StringBuilder();
        table.AppendLine("| stage | batch | GEMM (rows×K×N) | candidate | median ms | GFLOP/s | % of peak | × vs today "
            + "| min ms | % of peak (min) | × vs today (min) |");
        table.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|");
        int failed = 0;
        foreach (int batch in batches)
        foreach (var (stage, hw, c) in Stages.Where(s => stages.Length == 0 || stages.Contains(s.Stage)))
        {
            var rng = new Random(stage * 10 + batch);
            var expand = new Gemm(true, false, GemmAct.Gelu, true, true, 1e-6, false);
            var project = new Gemm(false, true, GemmAct.None, true, false, 1e-6, true);
            var fold = new GemmGrnFold(true, GemmAct.Gelu, true, 1e-6, GemmAct.None, true, true);
            int side = (int)Math.Round(Math.Sqrt(hw));
            var cases = new (string Name, Op Op, TensorType[] Types, double Flops)[]
            {
                ($"expand {batch * hw}x{c}x{4 * c}", expand, Types(expand, batch, side, c, 4 * c), 2.0 * batch * hw * c * 4 * c),
                ($"project {batch * hw}x{4 * c}x{c}", project, Types(project, batch, side, 4 * c, c), 2.0 * batch * hw * c * 4 * c),
                ($"fold pair {batch * hw}x{c}x{4 * c}x{c}", fold, FoldTypes(batch, side, c), 4.0 * batch * hw * c * 4 * c),
            };
            if (Environment.GetEnvironmentVariable("SWC_BENCH_GEMM_VARIANTS") == "1")
            {
                // the expand GEMM without its epilogue, channel-last and channel-first: where the time goes
                var bare = new Gemm(true, false, GemmAct.None, false, false, 1e-6, false);
                var bareCf = new Gemm(true, true, GemmAct.None, false, false, 1e-6, false);
                var geluCf = new Gemm(true, true, GemmAct.Gelu, true, false, 1e-6, false);
                double f = 2.0 * batch * hw * c * 4 * c;
                cases =
                [
                    ($"expand bare {batch * hw}x{c}x{4 * c}", bare, Types(bare, batch, side, c, 4 * c), f),
                    ($"expand bare nchw {batch * hw}x{c}x{4 * c}", bareCf, Types(bareCf, batch, side, c, 4 * c), f),
                    ($"expand gelu nchw {batch * hw}x{c}x{4 * c}", geluCf, Types(geluCf, batch, side, c, 4 * c), f),
                    cases[0],
                ];
            }
            foreach (var (name, op, types, flops) in cases)
            {
                var inputs = types.Select(t => Random(rng, t)).ToArray();
                var candidates = new List<(string, Func<CpuKernel>)>
                {
                    ("openblas (today)", () => Make(op, types, BlasBackend.OpenBlas, GemmVectors.None)),
                    ("managed (today, SWC_BLAS=managed)", () => Make(op, types, BlasBackend.Managed, GemmVectors.None)),
                    ("openblas blocked", () => Make(op, types, BlasBackend.OpenBlasBlocked, GemmVectors.None)),
                };
                candidates.AddRange(isas.Select(i => ($"tiled {i}", (Func<CpuKernel>)(() => Make(op, types, BlasBackend.Tiled, i)))));
                // the FMA peak as one more interleaved candidate: % of peak from medians taken in the same rounds
                long iters = 200_000;
                var runs = new List<(string, Action)>
                {
                    ("peak", () => Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads },
                        t => Peak.FmaLoop(iters, 1f + t))),
                };
                double peakFlops = threads * iters * 12 * 8 * 2.0;
                float[]? reference = null;
                foreach (var (cname, make) in candidates)
                {
                    var kernel = make();
                    var y = new float[types.Length == 0 ? 0 : op.Infer(types)[0].Shape.Elements];
                    var ins = inputs.Select(Buf.Of).ToArray();
                    var outs = new[] { Buf.Of(y) };
                    kernel.Run(ins, outs);
                    reference ??= (float[])y.Clone();
                    double err = SwLayerProblem.RelL2(y, reference);
                    if (err > 1e-5)
                    {
                        Console.WriteLine($"FAILED: stage {stage} batch {batch} {name} {cname}: relative L2 {err:e2} vs OpenBLAS");
                        failed++;
                        continue;
                    }
                    runs.Add((cname, () => kernel.Run(ins, outs)));
                }
                var results = CpuTime ? MeasureCpu(runs, rounds, minMs) : Bench.Measure(runs, rounds, TimeSpan.FromMilliseconds(minMs));
                double today = results[1].MedianMs, inRound = peakFlops / results[0].MedianMs / 1e6;
                double todayMin = results[1].MinMs, inRoundMin = peakFlops / results[0].MinMs / 1e6;
                foreach (var r in results)
                {
                    bool isPeak = r.Name == "peak";
                    double gflops = (isPeak ? peakFlops : flops) / r.MedianMs / 1e6;
                    double gMin = (isPeak ? peakFlops : flops) / r.MinMs / 1e6;
                    string line = string.Create(CultureInfo.InvariantCulture,
                        $"| {stage} | {batch} | {name} | {r.Name} | {r.MedianMs:F3} | {gflops:F1} | "
                        + $"{100 * gflops / inRound:F1}% | {(isPeak ? "" : (today / r.MedianMs).ToString("F2"))} | "
                        + $"{r.MinMs:F3} | {100 * gMin / inRoundMin:F1}% | "
                        + $"{(isPeak ? "" : (todayMin / r.MinMs).ToString("F2"))} |");
                    Console.WriteLine(line);
                    table.AppendLine(line);
                }
            }
        }
        var end = Peak.MeasureBoth(TimeSpan.FromMilliseconds(200));
        string tail = string.Create(CultureInfo.InvariantCulture,
            $"Vector256 FMA peak at the start {peak.AllThreads:F1}, at the end {end.AllThreads:F1} GFLOP/s "
            + $"({end.Threads} threads); Vector512 {peak512:F1}; load average at the end {MachineInfo.LoadAverage()}.");
        Console.WriteLine(tail);
        table.AppendLine().AppendLine(tail);
        if (outFile is not null)
        {
            File.WriteAllText(outFile, $"# sw-tiny pointwise GEMMs\n\n{MachineInfo.Describe()}\n\n{table}");
            Console.WriteLine($"wrote {outFile}");
        }
        return failed == 0 ? 0 : 1;
    }

    /// <summary>SWC_BENCH_CPU_TIME=1: time by the process's CPU time instead of the wall clock (see below).</summary>
    private static bool CpuTime => Environment.GetEnvironmentVariable("SWC_BENCH_CPU_TIME") == "1";

    /// <summary>
    /// As <see cref="Bench.Measure"/> (interleaved rounds, rotating start, medians), but each sample is the
    /// process's CPU time per run: on a machine that other processes oversubscribe, wall time counts the time slices
    /// they take, CPU time does not (their cache pollution still shows). Meant for --threads 1, where no thread of
    /// this process waits for another.
    /// </summary>
    private static IReadOnlyList<BenchResult> MeasureCpu(IReadOnlyList<(string Name, Action Run)> c, int rounds,
        double minMs)
    {
        var proc = System.Diagnostics.Process.GetCurrentProcess();
        double Cpu()
        {
            proc.Refresh();
            return proc.TotalProcessorTime.TotalMilliseconds;
        }
        foreach (var (_, run) in c) for (int i = 0; i < 3; i++) run();
        var samples = c.Select(_ => new double[rounds]).ToArray();
        for (int round = 0; round < rounds; round++)
        {
            for (int j = 0; j < c.Count; j++)
            {
                int i = (round + j) % c.Count;
                double t0 = Cpu(), t;
                long iters = 0;
                do
                {
                    c[i].Run();
                    iters++;
                    t = Cpu() - t0;
                }
                while (t < minMs);
                samples[i][round] = t / iters;
            }
        }
        return c.Select((x, i) => new BenchResult(x.Name, Bench.Median(samples[i]), samples[i].Min(),
            samples[i].Max(), samples[i])).ToArray();
    }

    private static CpuKernel Make(Op op, TensorType[] types, BlasBackend backend, GemmVectors isa)
    {
        var ins = types.Select((_, i) => $"in{i}").ToArray();
        var node = new Node(op, ins, new[] { "y" }, op.Infer(types));
        var req = new KernelRequest(node, types, new Tensor?[types.Length]);
        return op is GemmGrnFold
            ? new GemmGrnFoldKernel(req) { Isa = isa, Backend = backend }
            : new GemmKernel(req) { Isa = isa, Backend = backend };
    }

    private static TensorType[] Types(Gemm op, int batch, int side, int k, int n)
    {
        var list = new List<TensorType>
        {
            op.InNchw ? TensorType.Of(DType.F32, batch, k, side, side) : TensorType.Of(DType.F32, batch, side, side, k),
            TensorType.Of(DType.F32, n, k),
        };
        if (op.HasBias) list.Add(TensorType.Of(DType.F32, n));
        if (op.HasGrn)
        {
            list.Add(TensorType.Of(DType.F32, 1, 1, 1, n));
            list.Add(TensorType.Of(DType.F32, 1, 1, 1, n));
        }
        if (op.HasResidual) list.Add(TensorType.Of(DType.F32, batch, n, side, side));
        return list.ToArray();
    }

    private static TensorType[] FoldTypes(int batch, int side, int c) =>
    [
        TensorType.Of(DType.F32, batch, c, side, side), TensorType.Of(DType.F32, 4 * c, c), TensorType.Of(DType.F32, 4 * c),
        TensorType.Of(DType.F32, 1, 1, 1, 4 * c), TensorType.Of(DType.F32, c, 4 * c), TensorType.Of(DType.F32, c),
        TensorType.Of(DType.F32, batch, c, side, side),
    ];

    private static float[] Random(Random rng, TensorType t)
    {
        var v = new float[t.Shape.Elements];
        // weights scaled by 1/√fan-in so activations stay O(1)
        float scale = t.Shape.Rank == 2 ? 1f / MathF.Sqrt(t.Shape[1]) : 1f;
        for (int i = 0; i < v.Length; i++) v[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return v;
    }
}
