using System.Diagnostics;
using ShiftWise.Frontend;
using ShiftWise.Frontend.IO;
using ShiftWise.IR;
using ShiftWise.IR.Text;
using ShiftWise.Passes;

namespace ShiftWise.Runtime.Compile;

/// <summary>What swc compile was asked to do.</summary>
public sealed record CompileRequest(string Model, ModelArgs Args, string Pipeline, string OutDir)
{
    /// <summary>Pass options (disabled passes, IR dumps).</summary>
    public PassOptions Passes { get; init; } = new();
}

/// <summary>The outcome: the graphs before and after, the pass records, the memory plan, and the files written.</summary>
public sealed record CompileResult(LoadedModel Source, Graph Optimized, IReadOnlyDictionary<string, Tensor> Weights,
    IReadOnlyList<PassRecord> Records, MemoryPlan Memory, IReadOnlyList<string> Files, TimeSpan Time);

/// <summary>Loads a model, runs a pipeline over it, and writes the optimised graph, its weights and a report.</summary>
public static class CompileDriver
{
    /// <summary>Compiles; every file is written atomically, so a failure leaves no half-written output.</summary>
    public static CompileResult Run(CompileRequest req, Action<PassRecord>? progress = null)
    {
        var sw = Stopwatch.StartNew();
        var src = ModelSource.Load(req.Model, req.Args, withWeights: true);
        var passes = Pipelines.Get(req.Pipeline);
        var dumpDir = Path.Combine(req.OutDir, "ir");
        var ctx = new PassContext(src.Graph, src.Weights);
        var records = new PassManager(passes, req.Passes with { DumpDir = dumpDir }).Run(ctx, progress);
        var plan = MemoryPlan.Of(ctx.Graph);
        var weights = ctx.Graph.Params.ToDictionary(p => p.Name, p => ctx.Weights[p.Name], StringComparer.Ordinal);
        var g = ctx.Graph with { WeightsFile = "weights.safetensors" };
        sw.Stop();
        Directory.CreateDirectory(req.OutDir);
        var files = new List<string>();
        void Write(string name, Action<string> write)
        {
            var path = Path.Combine(req.OutDir, name);
            write(path);
            files.Add(path);
        }
        Write("weights.safetensors", p => SafeTensors.Write(p, weights));
        Write("model.swir", p => AtomicText(p, SwirPrinter.Print(g)));
        var result = new CompileResult(src, g, weights, records, plan, files, sw.Elapsed);
        Write("report.md", p => AtomicText(p, CompileReport.Markdown(req, result)));
        if (Directory.Exists(dumpDir)) files.AddRange(Directory.GetFiles(dumpDir).Order());
        return result with { Files = files };
    }

    /// <summary>Writes text through a temporary file in the same folder and a rename.</summary>
    public static void AtomicText(string path, string text)
    {
        var tmp = path + $".tmp{Environment.ProcessId}";
        try
        {
            File.WriteAllText(tmp, text);
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }
}
