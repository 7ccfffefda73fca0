using System.CommandLine;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Export;

namespace ShiftWise.Cli.Commands;

/// <summary>
/// swc export-onnx MODEL --out model.onnx [--weights W] [--opset 17] [--dynamic-batch]: the re-parameterised
/// inference graph as a standard ONNX model (SW layers as band convolutions).
/// </summary>
public static class ExportOnnxCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(CommandContext ctx)
    {
        var model = new ModelOptions();
        var weights = new Option<string?>("--weights")
        {
            Description = "A .pth or .safetensors checkpoint (default: seeded random weights).",
        };
        var output = new Option<string>("--out") { Description = "The .onnx file to write.", Required = true };
        var opset = new Option<int>("--opset")
        {
            Description = $"Default-domain opset: {string.Join(", ", OnnxExportOptions.Opsets)}.",
            DefaultValueFactory = _ => 17,
        };
        var dynamic = new Option<bool>("--dynamic-batch")
        {
            Description = "A symbolic batch dimension (\"batch\") on the inputs and outputs.",
        };
        var init = new Option<string>("--init")
        {
            Description = "Weights without --weights: lively or original.",
            DefaultValueFactory = _ => "lively",
        };
        var seed = new Option<string?>("--seed") { Description = "Seed of the random weights (0)." };
        var cmd = new Command("export-onnx",
            "Write a model as ONNX: BN folded, paths merged, each SW layer collapsed into its horizontal and vertical "
            + "band convolutions, standard ops only (ONNX Runtime, TensorRT).");
        model.AddTo(cmd);
        foreach (var o in new Option[] { weights, output, opset, dynamic, init, seed }) cmd.Options.Add(o);
        cmd.SetAction(r =>
        {
            var args = model.Read(r) with
            {
                Weights = r.GetValue(weights),
                Init = RunCommand.ParseInit(r.GetValue(init)!),
                Seed = (uint)(ModelOptions.Int(r, seed) ?? 0),
            };
            int set = r.GetValue(opset);
            if (!OnnxExportOptions.Opsets.Contains(set))
            {
                throw new ShiftWise.IR.OptionException($"option --opset: {set} is not supported; use one of "
                    + string.Join(", ", OnnxExportOptions.Opsets));
            }
            var m = Driver.Load(r.GetValue(model.Model)!, args);
            foreach (var w in m.Warnings) ctx.Err.WriteLine(w);
            var res = Driver.ExportOnnx(m, r.GetValue(output)!, new OnnxExportOptions(set, r.GetValue(dynamic)),
                PrintVersion.Version);
            ctx.Out.WriteLine($"exported {m.Description} to {res.Path}: {res.Nodes} ONNX nodes, {res.Initializers} "
                + $"initializers, {res.Bytes / 1e6:F1} MB, opset {set}{(r.GetValue(dynamic) ? ", dynamic batch" : "")} "
                + $"in {res.Time.TotalSeconds:F1} s");
            return ExitCodes.Ok;
        });
        return cmd;
    }
}
