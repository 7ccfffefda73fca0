using System.Diagnostics;

namespace ShiftWise.Cli.Tests;

/// <summary>
/// Model options from the command line, fuzzed: random hostile values for one to three options of swc inspect. Every
/// run ends with exit 0 (a valid model), 1 (a value that does not parse) or 2 (a value refused with a sentence), never
/// 70 (an internal error), and none hangs (30 s, against well under a second for a real inspect).
/// </summary>
public sealed class OptionFuzzTests(ITestOutputHelper output)
{
    private static readonly string[] Options =
        ["--in-chans", "--num-classes", "--depths", "--dims", "--kernel-size", "--ghost-ratio", "--n-path", "--n-rep", "--width-factor",
         "--layer-scale-init", "--stem-stride", "--drop-path", "--batch", "--image-size"];

    private static readonly string[] LayerOptions = ["--channels", "--height", "--width", "--big", "--small", "--n-rep", "--ghost-ratio", "--batch"];

    private static readonly string[] Values =
        ["-1", "0", "1", "2", "3", "4", "7", "51", "0.5", "1.5", "-0.1", "1e9", "1e308", "NaN", "nan", "Infinity", "-inf", "",
         " ", "x", "1,1,1,1", "0,0,0,0", "1,2,3", "-1,-1,-1,-1", "99999999999", "2147483648", "1,1,1,1,1", "7,5,5,3,3",
         "3,3,3,3,5", "8,16,16,32", "1,1,1,99999", "0x10", "1;1;1;1", "1,,1,1", "\"1\"", "'", "--depths", "%x", "1e-320",
         "9223372036854775807", "7,5,5,3,4", "100000,1,1,1"];

    [Fact]
    public void Hostile_option_values_end_in_a_sentence_never_an_internal_error()
    {
        var rng = new Random(5);
        var codes = new Dictionary<int, int>();
        var faults = new List<string>();
        var clock = Stopwatch.StartNew();
        int tried = 0;
        const int count = 600;
        // the count bounds the run; the time is only a safety cap against a runaway (the 600 take ~10 s here), and a
        // run it cuts short fails below
        for (; tried < count && clock.Elapsed < TimeSpan.FromMinutes(10); tried++)
        {
            bool layer = rng.Next(4) == 0;
            var names = layer ? LayerOptions : Options;
            var args = new List<string> { "inspect", layer ? "sw-layer" : "sw-v2" };
            int n = 1 + rng.Next(3);
            for (int k = 0; k < n; k++)
            {
                args.Add(names[rng.Next(names.Length)]);
                args.Add(Values[rng.Next(Values.Length)]);
            }
            var o = new StringWriter();
            var e = new StringWriter();
            var sw = Stopwatch.StartNew();
            int code;
            try
            {
                code = SwcApp.Run(args.ToArray(), o, e);
            }
            catch (Exception ex)
            {
                faults.Add($"{string.Join(' ', args)}: {ex.GetType().Name} escaped: {ex.Message}");
                continue;
            }
            codes[code] = codes.GetValueOrDefault(code) + 1;
            if (code is not (ExitCodes.Ok or ExitCodes.Usage or ExitCodes.BadInput)) faults.Add($"{string.Join(' ', args)}: exit {code}: {e}");
            else if (code != ExitCodes.Ok && e.ToString().Trim().Length == 0) faults.Add($"{string.Join(' ', args)}: exit {code} with no message");
            else if (sw.Elapsed > TimeSpan.FromSeconds(30)) faults.Add($"{string.Join(' ', args)}: took {sw.Elapsed.TotalSeconds:F1} s (a hang)");
        }
        output.WriteLine($"model options: {tried} command lines, exit codes {string.Join(", ", codes.OrderBy(c => c.Key).Select(c => $"{c.Key}: {c.Value}"))}, {faults.Count} faults");
        Assert.True(faults.Count == 0, string.Join("\n", faults.Take(10)));
        Assert.True(tried == count, $"only {tried} of {count} command lines before the safety cap");
        Assert.True(codes.GetValueOrDefault(ExitCodes.BadInput) > 0 && codes.GetValueOrDefault(ExitCodes.Ok) > 0, "the fuzzer did not reach both outcomes");
    }
}
