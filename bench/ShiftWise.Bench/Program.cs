using System.Globalization;
using ShiftWise.Bench;

// ShiftWise benchmarks. Usage:
//   dotnet run -c Release --project bench/ShiftWise.Bench -- sw-layer [--batch 1,8] [--rounds N] [--min-ms M]
//       [--shapes s0,s1] [--threads T] [--no-pad] [--dump-onnx DIR] [--out bench/results]
//   dotnet run -c Release --project bench/ShiftWise.Bench -- peak
const string Usage = """
    usage: ShiftWise.Bench sw-layer [--batch 1,8] [--rounds N] [--min-ms M] [--shapes s0,s1,s2,s3]
           ShiftWise.Bench sw-tiny [--batch 1,8] [--rounds N]
                                    [--threads T] [--no-pad] [--dump-onnx DIR] [--out DIR]
           ShiftWise.Bench peak [--ms PER_TRIAL]
           ShiftWise.Bench gemm [--batch 1,8] [--stages 0,1,2,3] [--rounds N] [--min-ms M] [--threads T] [--out FILE]
    """;

if (args.Length == 0 || args[0] is "-h" or "--help")
{
    Console.WriteLine(Usage);
    return args.Length == 0 ? 2 : 0;
}

var flags = new Dictionary<string, string>();
var switches = new HashSet<string> { "--no-pad" };
for (int i = 1; i < args.Length; i++)
{
    if (switches.Contains(args[i])) flags[args[i]] = "true";
    else if (args[i].StartsWith("--", StringComparison.Ordinal) && i + 1 < args.Length) flags[args[i]] = args[++i];
    else
    {
        Console.Error.WriteLine($"unexpected argument '{args[i]}'\n{Usage}");
        return 2;
    }
}

string Flag(string name, string dflt) => flags.Remove(name, out string? v) ? v : dflt;
static int[] Ints(string s) => s.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(x => int.Parse(x, CultureInfo.InvariantCulture)).ToArray();

switch (args[0])
{
    case "peak":
    {
        double ms = double.Parse(Flag("--ms", "300"), CultureInfo.InvariantCulture);
        if (flags.Count > 0) break;
        Console.WriteLine(MachineInfo.Describe());
        var p = Peak.MeasureBoth(TimeSpan.FromMilliseconds(ms));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"FP32 FMA peak: {p.OneThread:F1} GFLOP/s on 1 thread, {p.AllThreads:F1} GFLOP/s on {p.Threads} threads"));
        if (MachineInfo.ContentionWarning(p) is { } warn) Console.WriteLine(warn);
        return 0;
    }
    case "gemm":
    {
        var batches = Ints(Flag("--batch", "1,8"));
        var stages = Ints(Flag("--stages", ""));
        int rounds = int.Parse(Flag("--rounds", "9"), CultureInfo.InvariantCulture);
        double minMs = double.Parse(Flag("--min-ms", "30"), CultureInfo.InvariantCulture);
        var outFile = Flag("--out", "") is { Length: > 0 } o ? o : null;
        int threads = int.Parse(Flag("--threads", Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture)),
            CultureInfo.InvariantCulture);
        if (flags.Count > 0) break;
        return GemmCommand.Run(batches, stages, rounds, minMs, outFile, threads);
    }
    case "sw-tiny":
    {
        var batches = Ints(Flag("--batch", "1,8"));
        int rounds = int.Parse(Flag("--rounds", "7"), CultureInfo.InvariantCulture);
        var outDir = Flag("--out", Path.Combine(RepoRoot(), "bench", "results"));
        if (flags.Count > 0) break;
        return EndToEnd.Run(batches, rounds, outDir);
    }
    case "sw-layer":
    {
        var opt = new SwLayerOptions
        {
            Batches = Ints(Flag("--batch", "1")),
            Rounds = int.Parse(Flag("--rounds", "15"), CultureInfo.InvariantCulture),
            MinPerRound = TimeSpan.FromMilliseconds(double.Parse(Flag("--min-ms", "20"), CultureInfo.InvariantCulture)),
            Stages = Flag("--shapes", "").Split(',', StringSplitOptions.RemoveEmptyEntries),
            Threads = int.Parse(Flag("--threads", "2"), CultureInfo.InvariantCulture),
            Pad4 = Flag("--no-pad", "false") != "true",
            DumpOnnx = Flag("--dump-onnx", "") is { Length: > 0 } d ? d : null,
            OutDir = Flag("--out", Path.Combine(RepoRoot(), "bench", "results")),
        };
        if (flags.Count > 0) break;
        return SwLayerCommand.Run(opt);
    }
    default:
        Console.Error.WriteLine($"unknown command '{args[0]}'\n{Usage}");
        return 2;
}
Console.Error.WriteLine($"unknown option(s) {string.Join(", ", flags.Keys)}\n{Usage}");
return 2;

// The directory holding ShiftWise.Compiler.sln above the working directory (else the working directory).
static string RepoRoot()
{
    for (var d = new DirectoryInfo(Environment.CurrentDirectory); d is not null; d = d.Parent)
        if (File.Exists(Path.Combine(d.FullName, "ShiftWise.Compiler.sln"))) return d.FullName;
    return Environment.CurrentDirectory;
}
