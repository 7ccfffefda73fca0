using System.Diagnostics;
using ShiftWise.CodegenCuda;
using ShiftWise.CodegenCuda.Standalone;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.Passes;
using ShiftWise.Runtime.Cuda;

namespace ShiftWise.Runtime.Compile;

/// <summary>What swc emit was asked to do.</summary>
/// <param name="Model">The model (a zoo name, a .swir file or a checkpoint).</param>
/// <param name="Args">Model options (batch, image size, weights, ...).</param>
/// <param name="OutDir">The tree to write (replaced whole, or created).</param>
public sealed record EmitRequest(string Model, ModelArgs Args, string OutDir)
{
    /// <summary>The device arch (sm_NN); null: GPU 0's when there is one, else sm_90.</summary>
    public string? Arch { get; init; }

    /// <summary>The swc version written into the sources.</summary>
    public string Version { get; init; } = "0.0.0";

    /// <summary>--precision: bf16 / fp16 emit the 16-bit graph's kernels, weights and GEMMs.</summary>
    public Precision Precision { get; init; } = Precision.Fp32;

    /// <summary>
    /// --max-batch N: a library that runs any batch from 1 to N, with one plan per batch bucket
    /// (<see cref="StandaloneEmitter.BatchBuckets"/>); null: one plan, at the batch of <see cref="Args"/>.
    /// </summary>
    public int? MaxBatch { get; init; }
}

/// <summary>The outcome: the plan, whether NVRTC checked every kernel, the files written.</summary>
public sealed record EmitResult(LoadedModel Source, CudaCompileResult Cuda, IReadOnlyList<StandaloneFile> Files,
    string OutDir, TimeSpan Time)
{
    /// <summary>How many files were written.</summary>
    public int FileCount => Files.Count;

    /// <summary>The bytes of all files written.</summary>
    public long Bytes => Files.Sum(f => (long)f.Bytes.Length);

    /// <summary>
    /// With --max-batch: each batch bucket and its compile, ascending (the last is <see cref="Cuda"/>); else empty.
    /// </summary>
    public IReadOnlyList<(int Batch, CudaCompileResult Cuda)> Buckets { get; init; } = [];

    /// <summary>How many kernel files were written (see <see cref="Kernels"/>).</summary>
    public int KernelCount => Kernels.Count;

    /// <summary>The kernels written to kernels/ (with --max-batch, the union over the buckets).</summary>
    public IReadOnlyList<CudaKernelSource> Kernels => Buckets.Count == 0 ? Cuda.Plan.Kernels
        : [.. Buckets.SelectMany(b => b.Cuda.Plan.Kernels).DistinctBy(k => k.Name)];
}

/// <summary>
/// swc emit: loads a model, runs the inference pipeline, lowers it for CUDA (with tuned configurations when GPU 0 is
/// the arch emitted for and its tuning cache has them), checks every kernel with NVRTC when NVRTC is present, and
/// writes a standalone C++/CUDA project (<see cref="StandaloneEmitter"/>). The tree is written in a temporary folder
/// beside OUT and swapped in at the end: a failure leaves OUT as it was.
/// </summary>
public static class EmitDriver
{
    /// <summary>
    /// The first line of every emitted CMakeLists.txt; a folder whose CMakeLists.txt lacks it is never replaced.
    /// </summary>
    public const string Marker = "# Builds a model compiled by swc ";

    /// <summary>Emits; <paramref name="log"/> gets progress lines.</summary>
    public static EmitResult Run(EmitRequest req, Action<string>? log = null)
    {
        var sw = Stopwatch.StartNew();
        var outDir = Path.GetFullPath(req.OutDir);
        CheckReplaceable(outDir);
        if (req.MaxBatch is int maxBatch) return RunBuckets(req, maxBatch, outDir, sw, log);
        var src = Driver.Load(req.Model, req.Args);
        foreach (var w in src.Warnings) log?.Invoke(w);
        var ctx = Driver.Optimize(src.Graph, src.Weights, "inference", precision: req.Precision);
        var arch = req.Arch ?? (CudaDevice.Available ? CudaDevice.Info.Arch : "sm_90");
        var cuda = CompileDriver.Cuda(ctx.Graph, arch, log);
        var weights = ctx.Graph.Params.ToDictionary(p => p.Name, p => ctx.Weights[p.Name], StringComparer.Ordinal);
        var derived = Derived.ComputeAll(cuda.Plan, ctx.Graph, weights);
        var files = StandaloneEmitter.Emit(cuda.Plan, ctx.Graph, weights, derived,
            $"{src.Description}, input {Shape(cuda.Plan.Inputs[0].Type.Shape)}, {req.Precision.Name()}", req.Version,
            cuda.Tuning);
        TreeWriter.Replace(outDir, files.Select(f => (f.Path, f.Bytes)));
        return new EmitResult(src, cuda, files, outDir, sw.Elapsed);
    }

    // --max-batch: the model loaded, optimised and lowered at each bucket's batch, as swc run would at that batch
    private static EmitResult RunBuckets(EmitRequest req, int maxBatch, string outDir, Stopwatch sw,
        Action<string>? log)
    {
        if (req.Args.Batch is int b0 && b0 != maxBatch)
        {
            throw new OptionException($"options --batch {b0} and --max-batch {maxBatch} conflict: --max-batch emits "
                + "a library for every batch from 1 to its value; give one of them");
        }
        var batches = StandaloneEmitter.BatchBuckets(maxBatch);
        var arch = req.Arch ?? (CudaDevice.Available ? CudaDevice.Info.Arch : "sm_90");
        var buckets = new List<StandaloneBucket>();
        var compiles = new List<(int, CudaCompileResult)>();
        var derived = new Dictionary<string, float[]>(StringComparer.Ordinal);
        LoadedModel? top = null;
        Dictionary<string, Tensor>? weights = null;
        foreach (var b in batches)
        {
            log?.Invoke($"batch {b} ({buckets.Count + 1} of {batches.Count} buckets): compiling");
            var src = Driver.Load(req.Model, req.Args with { Batch = b });
            var ctx = Driver.Optimize(src.Graph, src.Weights, "inference", precision: req.Precision);
            var cuda = CompileDriver.Cuda(ctx.Graph, arch, log);
            var w = ctx.Graph.Params.ToDictionary(p => p.Name, p => ctx.Weights[p.Name], StringComparer.Ordinal);
            // the same model at another batch: the same parameters, and derived tensors that agree by name
            weights ??= w;
            foreach (var (name, t) in w)
            {
                if (!weights.TryGetValue(name, out var had) || !had.Bytes().SequenceEqual(t.Bytes()))
                {
                    throw new IrException($"swc emit --max-batch: parameter '{name}' differs between batch "
                        + $"{batches[0]} and batch {b}");
                }
            }
            foreach (var (name, v) in Derived.ComputeAll(cuda.Plan, ctx.Graph, w))
            {
                if (derived.TryGetValue(name, out var had) && !had.AsSpan().SequenceEqual(v))
                {
                    throw new IrException($"swc emit --max-batch: derived tensor '{name}' differs at batch {b}");
                }
                derived[name] = v;
            }
            buckets.Add(new StandaloneBucket(b, cuda.Plan, ctx.Graph));
            compiles.Add((b, cuda));
            top = src;
        }
        var last = compiles[^1].Item2;
        var tuning = string.Join("; ", compiles.Select(c => c.Item2.Tuning).Distinct(StringComparer.Ordinal));
        var files = StandaloneEmitter.EmitBuckets(buckets, weights!, derived,
            $"{top!.Description}, input {Shape(last.Plan.Inputs[0].Type.Shape)}, any batch from 1 to {maxBatch} "
            + $"(buckets {string.Join(" ", batches)}), {req.Precision.Name()}", req.Version, tuning);
        TreeWriter.Replace(outDir, files.Select(f => (f.Path, f.Bytes)));
        return new EmitResult(top, last, files, outDir, sw.Elapsed) { Buckets = compiles };
    }

    /// <summary>Refuses to replace a folder that holds anything but an earlier emit.</summary>
    public static void CheckReplaceable(string outDir)
    {
        if (File.Exists(outDir)) throw new OptionException($"--out {outDir} is a file; give a folder");
        if (!Directory.Exists(outDir) || !Directory.EnumerateFileSystemEntries(outDir).Any()) return;
        var cmake = Path.Combine(outDir, "CMakeLists.txt");
        string first = "";
        if (File.Exists(cmake))
        {
            using var r = new StreamReader(cmake);
            first = r.ReadLine() ?? "";
        }
        if (!first.StartsWith(Marker, StringComparison.Ordinal))
        {
            throw new OptionException($"--out {outDir} exists and is not a tree written by swc emit (its "
                + $"CMakeLists.txt does not start with '{Marker.Trim()}'); it is left alone: choose another folder or "
                + "remove it");
        }
    }

    private static string Shape(Shape s) => "(" + string.Join(", ", Enumerable.Range(0, s.Rank)
        .Select(d => s[d])) + ")";
}
