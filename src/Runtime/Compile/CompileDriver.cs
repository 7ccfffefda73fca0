using System.Diagnostics;
using System.Text;
using ShiftWise.CodegenCuda;
using ShiftWise.Frontend;
using ShiftWise.Frontend.IO;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Text;
using ShiftWise.Passes;
using ShiftWise.Runtime.Cuda;

namespace ShiftWise.Runtime.Compile;

/// <summary>What swc compile was asked to do.</summary>
public sealed record CompileRequest(string Model, ModelArgs Args, string Pipeline, string OutDir)
{
    /// <summary>Pass options (disabled passes, IR dumps).</summary>
    public PassOptions Passes { get; init; } = new();

    /// <summary>"graph" (the optimised graph only) or "cuda" (also kernels/*.cu, plan.json and ptx/).</summary>
    public string Target { get; init; } = "graph";

    /// <summary>The CUDA device arch (sm_NN); PTX is compiled for its virtual arch compute_NN.</summary>
    public string Arch { get; init; } = "sm_90";

    /// <summary>--precision: bf16 and fp16 end the pipeline with the 16-bit storage pass.</summary>
    public Precision Precision { get; init; } = Precision.Fp32;

    /// <summary>
    /// The tuned configurations the CUDA target lowers with; null (swc compile): GPU 0's tuning cache when GPU 0 is the
    /// arch compiled for, else the cost-model defaults.
    /// </summary>
    public Tune.CudaTuning? CudaTuning { get; init; }
}

/// <summary>
/// What the CUDA target produced: the plan, and the NVRTC results (null when NVRTC is absent, with the reason).
/// </summary>
public sealed record CudaCompileResult(CudaPlan Plan, IReadOnlyList<CompiledKernel>? Compiled, string PtxArch,
    string? NotCompiledReason, (int Major, int Minor)? NvrtcVersion, TimeSpan Time)
{
    /// <summary>Which SW kernels were lowered with tuned configurations (one line for reports).</summary>
    public string Tuning { get; init; } = "";

    /// <summary>The arch the plan was lowered for.</summary>
    public string Arch => Plan.Arch;

    /// <summary>How many kernels the plan has.</summary>
    public int KernelCount => Plan.Kernels.Count;

    /// <summary>"N kernels, M steps", for reports.</summary>
    public string Summary => $"{Plan.Kernels.Count} kernels, {Plan.Steps.Count} steps";
}

/// <summary>
/// The outcome: the graphs before and after, the pass records, the memory plan, and the files written.
/// </summary>
public sealed record CompileResult(LoadedModel Source, Graph Optimized, IReadOnlyDictionary<string, Tensor> Weights,
    IReadOnlyList<PassRecord> Records, MemoryPlan Memory, IReadOnlyList<string> Files, TimeSpan Time)
{
    /// <summary>The CUDA target's output (null for the graph target).</summary>
    public CudaCompileResult? Cuda { get; init; }
}

/// <summary>Loads a model, runs a pipeline over it, and writes the optimised graph, its weights and a report.</summary>
public static class CompileDriver
{
    /// <summary>Compiles; every file is written atomically, so a failure leaves no half-written output.</summary>
    public static CompileResult Run(CompileRequest req, Action<PassRecord>? progress = null, Action<string>? log = null)
    {
        if (req.Target is not ("graph" or "cuda"))
        {
            throw new IrException($"unknown target '{req.Target}' (graph or cuda)");
        }
        var sw = Stopwatch.StartNew();
        // the training pipeline differentiates a loss: a zoo network is loaded in its training form (batch statistics,
        // drop path, the loss); a graph file names its own
        var args = req.Pipeline == "training" && req.Args.Training is null && !IsGraphFile(req.Model)
            ? req.Args with { Training = new TrainingForm() }
            : req.Args;
        var src = Driver.Load(req.Model, args);
        var dumpDir = Path.Combine(req.OutDir, "ir");
        var ctx = Driver.Optimize(src.Graph, src.Weights, req.Pipeline, req.Passes with { DumpDir = dumpDir },
            progress, src.Training?.Loss, req.Precision);
        var records = ctx.Records;
        var plan = MemoryPlan.Of(ctx.Graph);
        var weights = ctx.Graph.Params.ToDictionary(p => p.Name, p => ctx.Weights[p.Name], StringComparer.Ordinal);
        var g = ctx.Graph with { WeightsFile = "weights.safetensors" };
        // everything that can fail runs before the first file is written
        var cuda = req.Target == "cuda" ? Cuda(ctx.Graph, req.Arch, log, req.CudaTuning) : null;
        var derived = cuda is null ? null : DerivedTensors(cuda.Plan, ctx.Graph, weights);
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
        Write("model.swir", p => AtomicFile.WriteText(p, SwirPrinter.Print(g)));
        if (cuda is not null)
        {
            Write("plan.json", p => AtomicFile.WriteText(p, CudaPlanJson.Write(cuda.Plan)));
            Write("derived.safetensors", p => SafeTensors.Write(p, derived!));
            TreeWriter.Replace(Path.Combine(req.OutDir, "kernels"),
                cuda.Plan.Kernels.Select(k => (k.FileName, Encoding.UTF8.GetBytes(k.Source))));
            files.AddRange(cuda.Plan.Kernels.Select(k => Path.Combine(req.OutDir, "kernels", k.FileName)));
            var ptxDir = Path.Combine(req.OutDir, "ptx");
            if (cuda.Compiled is not null)
            {
                TreeWriter.Replace(ptxDir, cuda.Compiled.Select(c => (c.Kernel.Name + ".ptx", c.Output.Image)));
                files.AddRange(cuda.Compiled.Select(c => Path.Combine(ptxDir, c.Kernel.Name + ".ptx")));
            }
            else if (Directory.Exists(ptxDir))
            {
                // stale PTX of an earlier compile would not match the sources
                Directory.Delete(ptxDir, recursive: true);
            }
        }
        var result = new CompileResult(src, g, weights, records, plan, files, sw.Elapsed) { Cuda = cuda };
        Write("report.md", p => AtomicFile.WriteText(p, CompileReport.Markdown(req, result)));
        if (Directory.Exists(dumpDir)) files.AddRange(Directory.GetFiles(dumpDir).Order());
        return result with { Files = files };
    }

    private static bool IsGraphFile(string model) =>
        model == "sw-layer" || model.EndsWith(".swir", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Lowers the graph for CUDA and, when NVRTC is present, compiles every kernel to PTX for the arch's virtual arch
    /// (in parallel, through the kernel cache).
    /// </summary>
    public static CudaCompileResult Cuda(Graph g, string arch, Action<string>? log = null,
        Tune.CudaTuning? tuning = null)
    {
        if (!System.Text.RegularExpressions.Regex.IsMatch(arch, "^sm_[0-9]{2,3}[a-z]?$"))
        {
            throw new OptionException($"--arch '{arch}' is not a CUDA device arch like sm_80 or sm_90");
        }
        var sw = Stopwatch.StartNew();
        // the tuning cache is per device: tuned configurations apply when GPU 0 is the arch compiled for
        tuning ??= CudaDevice.Available && CudaDevice.Info.Arch == arch ? Tune.CudaTuning.FromCache(log) : null;
        var plan = ((CudaTargetPlan)new CudaTarget(Arch: arch).Lower(g, new Dictionary<string, Tensor>(), tuning))
            .Plan;
        var summary = tuning?.Summary
            ?? "tuning: cost-model defaults (no GPU of this arch here to key the tuning cache by)";
        var ptxArch = "compute_" + arch[3..];
        if (!NvrtcCompiler.Available)
        {
            return new CudaCompileResult(plan, null, ptxArch, NvrtcCompiler.MissingReason, null, sw.Elapsed)
            {
                Tuning = summary,
            };
        }
        int done = 0;
        var compiled = CudaKernelCompiler.CompileAll(plan.Kernels, ptxArch,
            progress: c =>
            log?.Invoke($"  nvrtc {Interlocked.Increment(ref done),3}/{plan.Kernels.Count} {c.Kernel.Name} "
            + $"({c.Outcome.ToString().ToLowerInvariant()})"), warn: log);
        return new CudaCompileResult(plan, compiled, ptxArch, null, NvrtcCompiler.Version, sw.Elapsed)
        {
            Tuning = summary,
        };
    }

    /// <summary>The plan's derived tensors (e.g. the SW cross bands), computed from the weights, as float32.</summary>
    public static Dictionary<string, Tensor> DerivedTensors(CudaPlan plan, Graph g,
        IReadOnlyDictionary<string, Tensor> weights)
    {
        return Derived.ComputeAll(plan, g, weights).ToDictionary(kv => kv.Key, kv =>
            Tensor.F32(new Shape(kv.Value.Length), kv.Value), StringComparer.Ordinal);
    }
}
