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
}

/// <summary>The outcome: the plan, whether NVRTC checked every kernel, the files written.</summary>
public sealed record EmitResult(LoadedModel Source, CudaCompileResult Cuda, IReadOnlyList<StandaloneFile> Files,
    string OutDir, TimeSpan Time);

/// <summary>
/// swc emit: loads a model, runs the inference pipeline, lowers it for CUDA (with tuned configurations when GPU 0 is
/// the arch emitted for and its tuning cache has them), checks every kernel with NVRTC when NVRTC is present, and
/// writes a standalone C++/CUDA project (<see cref="StandaloneEmitter"/>). The tree is written in a temporary folder
/// beside OUT and swapped in at the end: a failure leaves OUT as it was.
/// </summary>
public static class EmitDriver
{
    /// <summary>The first line of every emitted CMakeLists.txt; a folder whose CMakeLists.txt lacks it is never replaced.</summary>
    public const string Marker = "# Builds a model compiled by swc ";

    /// <summary>Emits; <paramref name="log"/> gets progress lines.</summary>
    public static EmitResult Run(EmitRequest req, Action<string>? log = null)
    {
        var sw = Stopwatch.StartNew();
        var outDir = Path.GetFullPath(req.OutDir);
        CheckReplaceable(outDir);
        var src = ModelSource.Load(req.Model, req.Args, withWeights: true);
        var ctx = new PassContext(src.Graph, src.Weights);
        new PassManager(Pipelines.Get("inference")).Run(ctx);
        var arch = req.Arch ?? (CudaDevice.Available ? CudaDevice.Info.Arch : "sm_90");
        var cuda = CompileDriver.Cuda(ctx.Graph, arch, log);
        var weights = ctx.Graph.Params.ToDictionary(p => p.Name, p => ctx.Weights[p.Name], StringComparer.Ordinal);
        var derived = Derived.ComputeAll(cuda.Plan, ctx.Graph, weights);
        var files = StandaloneEmitter.Emit(cuda.Plan, ctx.Graph, weights, derived,
            $"{src.Description}, input {Shape(cuda.Plan.Inputs[0].Type.Shape)}", req.Version, cuda.Tuning);
        WriteTree(outDir, files);
        return new EmitResult(src, cuda, files, outDir, sw.Elapsed);
    }

    /// <summary>Refuses to replace a folder that holds anything but an earlier emit.</summary>
    public static void CheckReplaceable(string outDir)
    {
        if (File.Exists(outDir)) throw new IrException($"--out {outDir} is a file; give a folder");
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
            throw new IrException($"--out {outDir} exists and is not a tree written by swc emit (its CMakeLists.txt does not start " +
                $"with '{Marker.Trim()}'); it is left alone: choose another folder or remove it");
        }
    }

    /// <summary>Writes every file into a fresh folder beside <paramref name="outDir"/>, then swaps it in.</summary>
    public static void WriteTree(string outDir, IReadOnlyList<StandaloneFile> files)
    {
        var parent = Path.GetDirectoryName(outDir) ?? throw new IrException($"--out {outDir} has no parent folder");
        Directory.CreateDirectory(parent);
        var name = Path.GetFileName(outDir);
        var tmp = Path.Combine(parent, $".{name}.tmp{Environment.ProcessId}");
        var old = Path.Combine(parent, $".{name}.old{Environment.ProcessId}");
        ClearDeadWriters(parent, name, outDir);
        try
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
            Directory.CreateDirectory(tmp);
            foreach (var f in files)
            {
                if (f.Path.Split('/').Any(p => p is "" or "." or ".."))
                {
                    throw new IrException($"emitted file path '{f.Path}' is not a plain relative path");
                }
                var path = Path.Combine(tmp, f.Path.Replace('/', Path.DirectorySeparatorChar));
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                using (var s = new FileStream(path, FileMode.CreateNew, FileAccess.Write))
                {
                    s.Write(f.Bytes);
                    s.Flush(flushToDisk: true);
                }
            }
            if (Directory.Exists(outDir)) Directory.Move(outDir, old);
            Directory.Move(tmp, outDir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (!Directory.Exists(outDir) && Directory.Exists(old)) Directory.Move(old, outDir);
            throw new IrException($"cannot write the emitted tree to {outDir}: {e.Message}", e);
        }
        finally
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
            if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
        }
    }

    /// <summary>
    /// Removes what an emit killed midway left beside <paramref name="outDir"/> (its .NAME.tmpPID folder), and puts
    /// back the previous tree if it was killed between its two renames (.NAME.oldPID with no OUT). Folders of a
    /// process that is still running are left alone.
    /// </summary>
    private static void ClearDeadWriters(string parent, string name, string outDir)
    {
        foreach (var d in Directory.EnumerateDirectories(parent, $".{name}.*").Order(StringComparer.Ordinal).ToArray())
        {
            var m = System.Text.RegularExpressions.Regex.Match(Path.GetFileName(d), @"\.(tmp|old)([0-9]+)$");
            if (!m.Success || Path.GetFileName(d) != $".{name}.{m.Groups[1].Value}{m.Groups[2].Value}") continue;
            int pid = int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
            if (pid == Environment.ProcessId || Alive(pid)) continue;
            if (m.Groups[1].Value == "old" && !Directory.Exists(outDir)) Directory.Move(d, outDir);
            else Directory.Delete(d, recursive: true);
        }
    }

    private static bool Alive(int pid)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private static string Shape(Shape s) => "(" + string.Join(", ", Enumerable.Range(0, s.Rank).Select(d => s[d])) + ")";
}
