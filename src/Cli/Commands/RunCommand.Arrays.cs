using System.Diagnostics;
using ShiftWise.Frontend;
using ShiftWise.Frontend.IO;
using ShiftWise.IR;
using ShiftWise.Runtime;
using ShiftWise.Runtime.Compile;

namespace ShiftWise.Cli.Commands;

public static partial class RunCommand
{
    /// <summary>
    /// swc run on .npy arrays (or on a seeded random input when none is given): each input runs at its own batch and
    /// size through one <see cref="AnyShapeModel"/>, so a shape seen before reuses its compiled model and a new one is
    /// planned with the kernels already compiled in this process; one input writes --output as before, several write
    /// an .npz entry or a folder file per input (named by the input's file name).
    /// </summary>
    private static int Arrays(CommandContext ctx, string modelName, ModelArgs args, ITarget target, string[] inputs,
        string? output, bool checkFinite, uint seed)
    {
        foreach (var f in inputs)
        {
            if (!File.Exists(f)) throw new OptionException($"option --input: {f} does not exist");
        }
        var stems = inputs.Select(f => Path.GetFileNameWithoutExtension(f)).ToArray();
        if (inputs.Length > 1)
        {
            if (stems.GroupBy(s => s, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } dup)
            {
                throw new OptionException($"option --input: two inputs are named {dup.Key}.npy; their outputs are "
                    + "named by the input's file name, so give files of different names");
            }
            if (output is not null
                && (output.EndsWith(".npy", StringComparison.OrdinalIgnoreCase) || File.Exists(output)))
            {
                throw new OptionException($"option --output: {output}: {inputs.Length} inputs write an .npz (an entry "
                    + "per input) or a folder (a file per input)");
            }
        }
        using var any = new AnyShapeModel(modelName, args, target,
            new CompileOptions { TuningCache = true, GraphCache = true }, ctx.Err.WriteLine);
        var all = new List<(string Name, Tensor Value)>();
        for (int i = 0; i < Math.Max(1, inputs.Length); i++)
        {
            string? file = inputs.Length == 0 ? null : inputs[i];
            Tensor? x = file is null ? null : Npy.Read(file);
            CompiledModel cm;
            try
            {
                cm = any.Prepare(x?.Shape);
            }
            catch (IrException e) when (file is not null)
            {
                throw new IrException($"{file}: {e.Message}");
            }
            var decl = cm.Graph.Inputs[0];
            x ??= ModelSource.RandomInput(decl.Type, seed);
            if (!x.Shape.Equals(decl.Type.Shape))
            {
                throw new IrException($"{file}: input shape {x.Shape} does not match the model's {decl.Type.Shape}");
            }
            cm.Executor.CheckFinite = checkFinite;
            var planned = any.History[^1];
            if (inputs.Length > 1) ctx.Err.WriteLine($"{file}: {planned}");
            var ys = RunOne(ctx, cm, x, planned, inputs.Length > 1 ? file : null);
            if (output is null) continue;
            if (inputs.Length <= 1)
            {
                WriteOutputs(ctx, output, ys);
                continue;
            }
            var named = ys.Select(y => (ys.Count == 1 ? stems[i] : $"{stems[i]}_{y.Name}", y.Value)).ToList();
            if (output.EndsWith(".npz", StringComparison.OrdinalIgnoreCase)) all.AddRange(named);
            else
            {
                Directory.CreateDirectory(output);
                foreach (var (name, v) in named)
                {
                    var path = Path.Combine(output, name + ".npy");
                    Npy.Write(path, v);
                    ctx.Out.WriteLine($"wrote {path}");
                }
            }
        }
        if (output is not null && all.Count > 0)
        {
            Npz.Write(output, all);
            ctx.Out.WriteLine($"wrote {output} ({all.Count} entries)");
        }
        if (inputs.Length > 1)
        {
            var h = any.History;
            ctx.Out.WriteLine($"{inputs.Length} inputs of {h.Select(c => c.Shape).Distinct().Count()} shapes: "
                + $"{h.Count(c => !c.Reused)} planned, {h.Count(c => c.Reused)} reused a compiled model; kernels "
                + $"{h.Sum(c => c.Compiled)} compiled, {h.Sum(c => c.Disk)} from disk, {h.Sum(c => c.Memory)} already "
                + "in memory");
        }
        return ExitCodes.Ok;
    }

    // one forward pass, reported as swc run always has (the file name first when there are several)
    private static IReadOnlyList<(string Name, Tensor Value)> RunOne(CommandContext ctx, CompiledModel cm, Tensor x,
        ShapeCompile planned, string? file)
    {
        var m = cm.Source;
        bool oracle = cm.Target.Name == "reference"; // compiles nothing: the run is the work
        if (oracle)
        {
            ctx.Err.WriteLine($"running {m.Description} on the {cm.Target.Name} executor ({m.Graph.Nodes.Count} "
                + "nodes)...");
        }
        var sw = Stopwatch.StartNew();
        PhaseTrace.Mark("run start");
        var ys = cm.RunAll(x);
        PhaseTrace.Mark("run end");
        string types = string.Join(", ", ys.Select(o => o.Value.Type));
        string outputs = ys.Count == 1 ? $"output {types}" : $"{ys.Count} outputs {types}";
        string compiled = planned.Reused
            ? "reusing the compiled model of this shape"
            : $"compiled for {cm.Target.Device} in {planned.Time.TotalSeconds:F2} s ({cm.Plan.Summary}"
                + (cm.GraphFromCache ? ", optimised graph from the cache)" : ")");
        ctx.Out.WriteLine((file is null ? "" : file + ": ") + (oracle
            ? $"{m.Description}: input {x.Type}, {outputs}, {(planned.Time + sw.Elapsed).TotalSeconds:F2} s on "
                + cm.Target.Name
            : $"{m.Description}: input {x.Type}, {outputs}, {compiled}, ran in {sw.Elapsed.TotalMilliseconds:F1} ms"));
        if (cm.Tuning is { } t && !planned.Reused) ctx.Out.WriteLine(t.Summary);
        if (ys.Count == 1) PrintTop(ctx.Out, ys[0].Value, 5);
        else
        {
            foreach (var (name, v) in ys)
            {
                ctx.Out.Write(name + " ");
                PrintTop(ctx.Out, v, 5);
            }
        }
        return ys;
    }
}
