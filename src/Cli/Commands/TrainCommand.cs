using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using ShiftWise.IR;
using ShiftWise.Runtime.Train;

namespace ShiftWise.Cli.Commands;

/// <summary>
/// swc train CONFIG.json: trains the configured ShiftWise_v2 on Fashion-MNIST on the CPU or CUDA target, with a
/// progress bar,
/// an evaluation and an atomic checkpoint after every epoch, and --resume.
/// </summary>
public static class TrainCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(CommandContext ctx)
    {
        var config = new Argument<string>("CONFIG")
        {
            Description = "A training recipe (JSON), e.g. samples/fashion-mnist.json.",
        };
        var resume = new Option<bool>("--resume") { Description = "Continue from the output directory's checkpoint." };
        var outDir = new Option<string?>("--out") { Description = "Output directory (default: the config's \"out\")." };
        var epochs = new Option<string?>("--epochs") { Description = "Override the number of epochs." };
        var profile = new Option<bool>("--profile")
        {
            Description = "Time every kernel of the training step and print where the time went.",
        };
        var checkFinite = new Option<bool>("--check-finite")
        {
            Description = "Check every node of each training and evaluation step for NaN or Inf and stop at the first.",
        };
        var device = new Option<string?>("--device")
        {
            Description = "Train on cpu or cuda (GPU 0); default: the config's \"device\", else cpu.",
        };
        device.AcceptOnlyFromAmong("cpu", "cuda");
        var precision = new Option<string?>("--precision")
        {
            Description = "fp32, tf32, or bf16 / fp16 mixed precision (float32 master weights; fp16 with dynamic loss "
                + "scaling; cuda); default: the config's \"precision\", else fp32.",
        };
        var cmd = new Command("train", "Train a model on Fashion-MNIST on the CPU or a GPU from a JSON recipe.");
        cmd.Arguments.Add(config);
        foreach (var o in new Option[] { resume, outDir, epochs, profile, checkFinite, device,
            precision }) cmd.Options.Add(o);
        cmd.SetAction(r =>
        {
            var path = r.GetValue(config)!;
            var cfg = TrainConfig.Load(path);
            if (r.GetValue(outDir) is { } o) cfg = cfg with { Out = o };
            if (r.GetValue(device) is { } d) cfg = cfg with { Device = d };
            if (r.GetValue(precision) is { } p) cfg = cfg with { Precision = PrecisionOption.Parse(p) };
            if (ModelOptions.Int(r, epochs) is { } e)
            {
                if (e < 1) throw new OptionException($"option --epochs: {e} must be >= 1");
                cfg = cfg with { Epochs = e };
            }
            var m = cfg.Model;
            ctx.Out.WriteLine($"{path}: {cfg.Preset} (depths {string.Join(",", m.Depths)}, dims "
                + $"{string.Join(",", m.StageDims)}, "
                + $"kernels {string.Join(",", m.KernelSize)}, stem stride {m.StemStride}), {cfg.Epochs} epochs of "
                + $"batch {cfg.Batch}"
                + $"{(cfg.Accumulate > 1 ? $"×{cfg.Accumulate}" : "")}, {cfg.Optimizer} lr {F(cfg.Lr)} → "
                + $"{F(cfg.MinLr)} "
                + $"(warm-up {F(cfg.WarmupEpochs)} epochs), weight decay {F(cfg.WeightDecay)}, label smoothing "
                + $"{F(cfg.LabelSmoothing)}, "
                + $"seed {cfg.Seed}; on {cfg.Device}; output {cfg.Out}");
            var bar = ProgressBar.For(ctx.Err);
            var run = new TrainRun(cfg, msg =>
            {
                bar.Clear();
                ctx.Out.WriteLine(msg);
            }) { Profiling = r.GetValue(profile), CheckFinite = r.GetValue(checkFinite) };
            var total = Stopwatch.StartNew();
            run.Run(r.GetValue(resume), default, p => bar.Update(p.Step, p.Steps, $"epoch {p.Epoch}/{p.Epochs} ",
                $" loss {p.Loss:F4} acc {100 * p.Accuracy:F2}% {p.ImagesPerSecond:F0} img/s, waited for data "
                + $"{100 * p.DataWait:F0}% lr {p.Lr:E2}"));
            bar.Clear();
            var last = run.Epochs[^1];
            ctx.Out.WriteLine($"final test accuracy {100 * last.TestAccuracy:F2}% after {last.Epoch} epochs; "
                + $"{total.Elapsed.TotalMinutes:F1} min in this run; weights in "
                + $"{Path.Combine(cfg.Out, TrainRun.WeightsFile)}");
            if (run.Profiling) WriteProfile(ctx.Out, run.Profile);
            return ExitCodes.Ok;
        });
        return cmd;
    }

    /// <summary>
    /// The profile summed by kernel (op and kernel label), largest first, with each one's share and per-step time.
    /// </summary>
    private static void WriteProfile(TextWriter w, IReadOnlyList<Runtime.Cpu.KernelTime> times)
    {
        double total = times.Sum(t => t.Total.TotalSeconds);
        int steps = times.Count == 0 ? 1 : Math.Max(1, times.Max(t => t.Runs));
        var rows = times.GroupBy(t => (t.Op, t.Kernel))
            .Select(g => (g.Key.Op, g.Key.Kernel, Nodes: g.Count(), Seconds: g.Sum(t => t.Total.TotalSeconds)))
            .OrderByDescending(r => r.Seconds).ToList();
        w.WriteLine($"profile over {steps} steps ({total:F1} s timed):");
        w.WriteLine($"{"kernel",-58} {"nodes",5} {"ms/step",9} {"share",6}");
        foreach (var (op, kernel, nodes, seconds) in rows)
        {
            string name = kernel.StartsWith(op, StringComparison.Ordinal) ? kernel : $"{op}: {kernel}";
            if (name.Length > 58) name = name[..57] + "…";
            w.WriteLine(FormattableString.Invariant(
                $"{name,-58} {nodes,5} {1000 * seconds / steps,9:F3} {100 * seconds / total,5:F1}%"));
        }
    }

    private static string F(double v) => v.ToString("G4", CultureInfo.InvariantCulture);
}
