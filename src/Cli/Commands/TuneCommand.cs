using System.CommandLine;
using System.Globalization;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Tune;

namespace ShiftWise.Cli.Commands;

/// <summary>
/// swc tune MODEL: measures the legal configurations of every tunable kernel of the compiled model on this device,
/// keeps the fastest in the tuning cache, and prints default against tuned time per kernel. compile, run, bench and
/// demo then use the tuned configurations.
/// </summary>
public static class TuneCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(CommandContext ctx)
    {
        var model = new ModelOptions();
        var weights = new Option<string?>("--weights")
        {
            Description = "A .pth or .safetensors checkpoint (tuning does not depend on the values).",
        };
        var device = new Option<string>("--device")
        {
            Description = "cpu or cuda (GPU 0).",
            DefaultValueFactory = _ => "cpu",
        };
        var budget = new Option<string?>("--budget")
        {
            Description = "Seconds of measuring, shared among the kernels (120).",
        };
        var force = new Option<bool>("--force") { Description = "Measure again kernels the cache already has." };
        var precision = PrecisionOption.Create("16-bit SW kernels are tuned separately from fp32 ones.");
        var cmd = new Command(
            "tune", "Find the fastest configuration of every tunable kernel on this device and cache it.");
        model.AddTo(cmd);
        foreach (var o in new Option[] { weights, device, budget, force, precision }) cmd.Options.Add(o);
        cmd.SetAction(r =>
        {
            var dev = r.GetValue(device);
            if (dev is not ("cpu" or "cuda"))
            {
                throw new OptionException($"option --device: '{dev}' is not available; swc tune tunes: cpu, cuda");
            }
            var target = Driver.Target(dev, precision: PrecisionOption.Read(r, precision));
            target.Require();
            double seconds = ModelOptions.Dbl(r, budget) ?? 120;
            if (!(seconds > 0)) throw new OptionException($"option --budget: {seconds} must be > 0");
            var m = Driver.Load(r.GetValue(model.Model)!, model.Read(r) with { Weights = r.GetValue(weights) });
            bool live = ReferenceEquals(ctx.Err, Console.Error) && !Console.IsErrorRedirected;
            string last = "";
            void Progress(TuneStatus s)
            {
                var line =
                    $"kernel {s.Kernel}/{s.Kernels} {s.Name}: candidate {s.Candidate}/{s.Candidates}, "
                    + $"{s.Seconds:F0}/{s.Budget:F0} s";
                if (live) ctx.Err.Write("\r" + line + "\u001b[K");
                else if (s.Name != last) ctx.Err.WriteLine(line);
                last = s.Name;
            }
            var session = Driver.Tune(m, target, seconds, r.GetValue(force), ctx.Err.WriteLine, Progress);
            ctx.Out.WriteLine($"{m.Description}: batch {m.Graph.Inputs[0].Type.Shape[0]}; tuning on {session.Where}, "
                + $"budget {seconds:F0} s; cache {session.CacheFile}");
            var rows = session.Run();
            if (live) ctx.Err.Write("\r\u001b[K");
            var table = new List<string[]> { new[] { "kernel", "nodes", "default ms", "tuned ms", "speed-up",
                "measured", "configuration", "from" } };
            foreach (var t in rows)
            {
                table.Add([t.Kernel, I(t.Nodes), F(t.DefaultMs), F(t.TunedMs), (t.DefaultMs / t.TunedMs)
                    .ToString("F2", CultureInfo.InvariantCulture) + "x",
                    $"{t.Measured}/{t.Candidates}", t.ConfigText, t.Source]);
            }
            TextTable.Write(ctx.Out, table, rightAligned: [1, 2, 3, 4, 5], totalRow: false);
            ctx.Out.WriteLine($"{rows.Count} kernels; cache written to {session.CacheFile}");
            return ExitCodes.Ok;
        });
        return cmd;
    }

    private static string F(double v) => v.ToString(v >= 100 ? "F1" : v >= 1 ? "F3" : "G4",
        CultureInfo.InvariantCulture);

    private static string I(int v) => v.ToString(CultureInfo.InvariantCulture);
}
