using System.CommandLine;
using ShiftWise.Runtime.Compile;

namespace ShiftWise.Cli.Commands;

/// <summary>
/// swc emit MODEL --out DIR [--weights W] [--arch sm_90] [--batch N | --max-batch N]: a standalone C++/CUDA project.
/// </summary>
public static class EmitCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(CommandContext ctx)
    {
        var model = new ModelOptions();
        var weights = new Option<string?>("--weights")
        {
            Description = "A .pth or .safetensors checkpoint (default: seeded random weights).",
        };
        var outDir = new Option<string>("--out")
        {
            Description = "The folder to write (created, or replaced if an earlier emit wrote it).",
            Required = true,
        };
        var arch = new Option<string?>("--arch")
        {
            Description = "CUDA device arch, e.g. sm_90 (default: GPU 0's, else sm_90).",
        };
        var init = new Option<string>("--init")
        {
            Description = "Weights without --weights: lively or original.",
            DefaultValueFactory = _ => "lively",
        };
        var seed = new Option<string?>("--seed") { Description = "Seed of the random weights (0)." };
        var maxBatch = new Option<string?>("--max-batch")
        {
            Description = "A library that runs any batch from 1 to N: one plan per bucket (the powers of two below N, "
                + "and N); a batch that is not a bucket runs zero-padded on the next one. Not with another --batch.",
        };
        var cmd = new Command("emit",
            "Write a standalone C++/CUDA project for a model: kernels, a host launcher on the CUDA runtime "
            + "and cuBLAS, a C API, weights.bin, CMakeLists.txt, an example program and a README.");
        model.AddTo(cmd);
        var precision = PrecisionOption.Create("emit: bf16 and fp16 write the 16-bit kernels, weights and GEMMs.");
        foreach (var o in new Option[] { weights, outDir, arch, init, seed, precision, maxBatch }) cmd.Options.Add(o);
        cmd.SetAction(r =>
        {
            var args = model.Read(r) with
            {
                Weights = r.GetValue(weights),
                Init = RunCommand.ParseInit(r.GetValue(init)!),
                Seed = (uint)(ModelOptions.Int(r, seed) ?? 0),
            };
            var req = new EmitRequest(r.GetValue(model.Model)!, args, r.GetValue(outDir)!)
            {
                Arch = r.GetValue(arch),
                Precision = PrecisionOption.Read(r, precision) is var p && p == ShiftWise.IR.Precision.Tf32
                    ? throw new ShiftWise.IR.OptionException("option --precision: tf32 is a runtime math mode of swc "
                        + "run; swc emit writes fp32, bf16 or fp16")
                    : p,
                Version = PrintVersion.Version,
                MaxBatch = ModelOptions.Int(r, maxBatch),
            };
            var res = EmitDriver.Run(req, ctx.Err.WriteLine);
            ctx.Out.WriteLine($"emitted {res.Source.Description} for {res.Cuda.Arch} to {res.OutDir}: "
                + $"{res.FileCount} files, {res.Bytes / 1e6:F1} MB ({res.Cuda.Summary}) in "
                + $"{res.Time.TotalSeconds:F1} s");
            if (res.Buckets.Count > 0)
            {
                ctx.Out.WriteLine($"batches 1 to {res.Buckets[^1].Batch}: one plan per bucket "
                    + $"({string.Join(", ", res.Buckets.Select(b => b.Batch))}), {res.KernelCount} kernels in all");
            }
            ctx.Out.WriteLine(res.Cuda.Tuning);
            ctx.Out.WriteLine(res.Cuda.Compiled is null
                ? $"kernels not checked: {res.Cuda.NotCompiledReason}"
                : res.Buckets.Count > 0
                    ? $"NVRTC compiled the kernels of every bucket ({res.KernelCount} distinct) for "
                        + res.Cuda.PtxArch
                    : $"NVRTC compiled all {res.Cuda.Compiled.Count} kernels for {res.Cuda.PtxArch}");
            ctx.Out.WriteLine($"build: cmake -S {res.OutDir} -B {res.OutDir}/build && cmake --build {res.OutDir}/build "
                + $"-j");
            return ExitCodes.Ok;
        });
        return cmd;
    }
}
