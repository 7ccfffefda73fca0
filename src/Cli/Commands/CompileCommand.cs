using System.CommandLine;
using ShiftWise.Passes;
using ShiftWise.Runtime;
using ShiftWise.Runtime.Compile;

namespace ShiftWise.Cli.Commands;

/// <summary>
/// swc compile MODEL --pipeline P --out DIR: run the pass pipeline and write the result with a report.
/// </summary>
public static class CompileCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(CommandContext ctx)
    {
        var model = new ModelOptions();
        var weights = new Option<string?>("--weights") { Description = "A .pth or .safetensors checkpoint." };
        var pipeline = new Option<string>("--pipeline")
        {
            Description = $"Pass pipeline: {string.Join(", ", Driver.PipelineNames)}.",
            DefaultValueFactory = _ => "inference",
        };
        var outDir = new Option<string>("--out") { Description = "Output directory.", Required = true };
        var printAll = new Option<bool>("--print-ir-after-all")
        {
            Description = "Write OUT/ir/NNN_<pass>.swir after every pass.",
        };
        var printAfter = new Option<string[]>("--print-ir-after")
        {
            Description = "Write the IR after this pass (repeatable).",
        };
        var disable = new Option<string[]>("--disable-pass")
        {
            Description = "Skip this pass (repeatable), to bisect a wrong result.",
        };
        var init = new Option<string>("--init")
        {
            Description = "Weights without --weights: lively or original.",
            DefaultValueFactory = _ => "lively",
        };
        var seed = new Option<string?>("--seed") { Description = "Seed of the random weights (0)." };
        var target = new Option<string>("--target")
        {
            Description = "graph: the optimised graph only; cuda: also kernels/*.cu, plan.json and ptx/ (with NVRTC).",
            DefaultValueFactory = _ => "graph",
        };
        target.AcceptOnlyFromAmong("graph", "cuda");
        var arch = new Option<string>("--arch")
        {
            Description = "CUDA device arch for --target cuda (sm_90).",
            DefaultValueFactory = _ => "sm_90",
        };
        var precision = PrecisionOption.Create();
        var cmd = new Command("compile",
            "Run the pass pipeline on a model; write model.swir, weights.safetensors and report.md (and CUDA kernels "
            + "with --target cuda).");
        model.AddTo(cmd);
        foreach (var o in new Option[] { weights, pipeline, outDir, printAll, printAfter, disable, init, seed,
            target, arch, precision })
        {
            cmd.Options.Add(o);
        }
        cmd.SetAction(r =>
        {
            var args = model.Read(r) with
            {
                Weights = r.GetValue(weights),
                Init = RunCommand.ParseInit(r.GetValue(init)!),
                Seed = (uint)(ModelOptions.Int(r, seed) ?? 0),
            };
            var req = new CompileRequest(r.GetValue(model.Model)!, args, r.GetValue(pipeline)!, r.GetValue(outDir)!)
            {
                Passes = new PassOptions
                {
                    PrintAfterAll = r.GetValue(printAll),
                    PrintAfter = (r.GetValue(printAfter) ?? []).ToHashSet(),
                    Disabled = (r.GetValue(disable) ?? []).ToHashSet(),
                },
                Target = r.GetValue(target)!,
                Arch = r.GetValue(arch)!,
                Precision = PrecisionOption.Read(r, precision),
            };
            var res = CompileDriver.Run(req, p => ctx.Err.WriteLine(
                $"  {p.Index,2} {p.Name,-24} {(p.Disabled ? "disabled" : p.Changed ? "changed" : "unchanged"),-9} "
                + $"{p.Time.TotalMilliseconds,7:F0} ms  {p.NodesAfter} nodes"), ctx.Err.WriteLine);
            ctx.Out.WriteLine($"compiled {res.Source.Description}: {res.Source.Graph.Nodes.Count} nodes -> "
                + $"{res.Optimized.Nodes.Count} nodes in {res.Time.TotalSeconds:F1} s");
            foreach (var f in res.Files.Where(f => !f.Contains("/kernels/", StringComparison.Ordinal)
                && !f.Contains("/ptx/", StringComparison.Ordinal)))
            {
                ctx.Out.WriteLine($"wrote {f}");
            }
            if (res.Cuda is { } cu)
            {
                ctx.Out.WriteLine($"wrote {cu.KernelCount} CUDA kernels to "
                    + $"{Path.Combine(req.OutDir, "kernels")}; {cu.Tuning}");
                ctx.Out.WriteLine(cu.Compiled is null
                    ? $"not compiled: {cu.NotCompiledReason}"
                    : $"compiled {cu.Compiled.Count} kernels to PTX for {cu.PtxArch} in "
                    + $"{Path.Combine(req.OutDir, "ptx")} "
                      + $"({cu.Compiled.Count(c => c.Outcome != CacheOutcome.Compiled)} from the cache)");
            }
            return ExitCodes.Ok;
        });
        return cmd;
    }
}
