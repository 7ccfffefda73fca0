using System.CommandLine;
using System.Globalization;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.Runtime.Compile;

namespace ShiftWise.Cli.Commands;

/// <summary>swc inspect MODEL: a per-layer table of op, output shape, parameters and arithmetic, with totals.</summary>
public static class InspectCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(CommandContext ctx)
    {
        var model = new ModelOptions();
        var weights = new Option<string?>("--weights")
        {
            Description = "A .pth or .safetensors checkpoint (sets classes).",
        };
        var cmd = new Command(
            "inspect", "Print a per-layer table: op, output shape, parameters, multiply-accumulates.");
        model.AddTo(cmd);
        cmd.Options.Add(weights);
        cmd.SetAction(r =>
        {
            var m = Driver.Load(r.GetValue(model.Model)!, model.Read(r) with { Weights = r.GetValue(weights) },
                withWeights: false);
            Print(m.Graph, m.Description, ctx.Out);
            return ExitCodes.Ok;
        });
        return cmd;
    }

    /// <summary>Writes the table.</summary>
    public static void Print(Graph g, string source, TextWriter o)
    {
        var costs = Driver.Costs(g);
        var rows = new List<string[]> { new[] { "node", "op", "output", "params", "MACs", "adds" } };
        foreach (var c in costs)
        {
            rows.Add([c.Node.Name, c.Node.Op.Name, string.Join(" ", c.Node.Types), N(c.Params), N(c.Macs), N(c.Adds)]);
        }
        long p = Cost.TotalParams(g), m = costs.Sum(c => c.Macs), a = costs.Sum(c => c.Adds);
        rows.Add(["total", $"{g.Nodes.Count} nodes", "", N(p), N(m), N(a)]);
        o.WriteLine($"model {source}: {g.Inputs.Count} inputs ({string.Join(", ", g.Inputs.Select(i => i.Type))}), "
            + $"{g.Params.Count} parameter tensors");
        TextTable.Write(o, rows, rightAligned: [3, 4, 5]);
        o.WriteLine($"parameters: {N(p)} trainable, {N(Cost.TotalBuffers(g))} in buffers");
        var extra = Cost.MergeableParams(g);
        if (extra > 0)
        {
            o.WriteLine($"parameters with the N_path small convs merged: {N(p - extra)} trainable");
        }
        o.WriteLine($"multiply-accumulates: {N(m)}");
        o.WriteLine($"shift-add additions: {N(a)}");
    }

    private static string N(long v) => v.ToString("N0", CultureInfo.InvariantCulture);
}
