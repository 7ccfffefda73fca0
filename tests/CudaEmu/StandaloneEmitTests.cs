using System.Diagnostics;
using System.IO.Hashing;
using System.Reflection;
using System.Text;
using ShiftWise.CodegenCuda;
using ShiftWise.CodegenCuda.Standalone;
using ShiftWise.Frontend;
using ShiftWise.Frontend.IO;
using ShiftWise.IR;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// One small ShiftWise_v2 emitted once (swc emit's driver), and, when g++ is present, its host launcher and example
/// program compiled against a mock CUDA runtime (tests/CudaEmu/Standalone/mock) whose launches run the emitted kernels
/// in the CUDA emulator and whose SGEMM is a reference GEMM: the emitted C++ runs end to end on the CPU.
/// </summary>
public sealed class EmittedProject : IDisposable
{
    public EmittedProject() : this(Precision.Fp32)
    {
    }

    /// <summary>The model emitted with --precision <paramref name="precision"/> (other model options: a backbone).</summary>
    internal EmittedProject(Precision precision, ModelArgs? args = null, int? maxBatch = null)
    {
        Root = Path.Combine(Path.GetTempPath(), "swc-emit-tests-" + Guid.NewGuid().ToString("N"));
        Tree = Path.Combine(Root, "tree");
        Result = EmitDriver.Run(new EmitRequest("sw-v2", args ?? Args(batch: 2), Tree)
        {
            Arch = "sm_90", Version = "0.1.0", Precision = precision, MaxBatch = maxBatch,
        });
        _example = new Lazy<string>(BuildMockExample);
    }

    /// <summary>The model: every stage, stem, downsamples, SE, GRN, head; odd image size.</summary>
    public static ModelArgs Args(int batch) => new()
    {
        Depths = [1, 1, 1, 1],
        Dims = [8, 16, 16, 32],
        KernelSize = [7, 5, 5, 3, 3],
        ImageSize = 24,
        NumClasses = 7,
        Batch = batch,
        Seed = 3,
    };

    public string Root { get; }
    public string Tree { get; }
    public EmitResult Result { get; }
    private readonly Lazy<string> _example;

    /// <summary>The example program built with g++ against the mock runtime (path of the executable).</summary>
    public string MockExample => _example.Value;

    /// <summary>The file listing each entry's emulator module.</summary>
    public string KernelList => Path.Combine(Root, "mock-build", "kernels.txt");

    private string BuildMockExample()
    {
        var dir = Path.Combine(Root, "mock-build");
        Directory.CreateDirectory(Path.Combine(dir, "mock"));
        var asm = Assembly.GetExecutingAssembly();
        foreach (var f in new[] { "cuda_runtime.h", "cublas_v2.h", "swc_mock_cuda.cpp" })
        {
            using var s = asm.GetManifestResourceStream("mock/" + f) ?? throw new InvalidOperationException($"mock/{f} is not embedded");
            using var o = File.Create(Path.Combine(dir, "mock", f));
            s.CopyTo(o);
        }
        // the kernels: each through the emulator (its cache), listed for the mock's loader
        var stubs = new StringBuilder("#include \"cuda_runtime.h\"\n" + StandaloneEmitter.Types16Structs);
        var entries = new List<string>();
        var list = new StringBuilder();
        foreach (var k in Result.Kernels)
        {
            Assert.Equal(k.Source, File.ReadAllText(Path.Combine(Tree, "kernels", k.FileName)));
            var module = CudaEmulator.Compile(k);
            foreach (var e in k.Entries)
            {
                stubs.Append(StandaloneEmitter.Declaration(k, e)).Append(" {}\n");
                entries.Add(e);
                list.Append(e).Append('\t').Append(module.LibraryPath).Append('\n');
            }
        }
        stubs.Append("struct swc_mock_entry { const void* func; const char* name; };\n");
        stubs.Append("extern \"C\" const swc_mock_entry swc_mock_entries[] = {\n");
        foreach (var e in entries) stubs.Append("    { (const void*)&").Append(e).Append(", \"").Append(e).Append("\" },\n");
        stubs.Append("};\nextern \"C\" const int swc_mock_entry_count = ").Append(entries.Count).Append(";\n");
        File.WriteAllText(Path.Combine(dir, "stubs.cpp"), stubs.ToString());
        File.WriteAllText(KernelList, list.ToString());
        var exe = Path.Combine(dir, "swc_example");
        var (code, output) = Tools.Run("g++", ["-std=c++17", "-O1", "-w", "-I", Path.Combine(dir, "mock"), "-I", Path.Combine(Tree, "include"),
            "-x", "c++", Path.Combine(Tree, "src", "swc_model.cu"), "-x", "none", Path.Combine(Tree, "example", "swc_example.cpp"),
            Path.Combine(dir, "mock", "swc_mock_cuda.cpp"), Path.Combine(dir, "stubs.cpp"), "-ldl", "-o", exe], TimeSpan.FromMinutes(3));
        Assert.True(code == 0, $"g++ could not build the emitted host code against the mock runtime (exit {code}):\n{output}");
        return exe;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Running external programs.</summary>
internal static class Tools
{
    public static (int Code, string Output) Run(string exe, IEnumerable<string> args, TimeSpan timeout,
        IReadOnlyDictionary<string, string>? env = null, string? cwd = null)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        if (cwd is not null) psi.WorkingDirectory = cwd;
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var @out = p.StandardOutput.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{exe} did not finish in {timeout.TotalSeconds} s");
        }
        return (p.ExitCode, @out.Result + err.Result);
    }

    /// <summary>The full path of a program on PATH, or null.</summary>
    public static string? Which(string name)
    {
        foreach (var d in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var f = Path.Combine(d, name);
            if (File.Exists(f)) return f;
        }
        return null;
    }
}

public sealed class StandaloneEmitTests(EmittedProject project) : IClassFixture<EmittedProject>
{
    private static readonly string[] Expected =
        ["CMakeLists.txt", "README.md", "example/swc_example.cpp", "include/swc_model.h", "plan.json", "src/swc_model.cu", "weights.bin"];

    private static string[] Files(string root) => Directory.GetFiles(root, "*", SearchOption.AllDirectories)
        .Select(f => Path.GetRelativePath(root, f).Replace(Path.DirectorySeparatorChar, '/')).Order(StringComparer.Ordinal).ToArray();

    [Fact]
    public void The_tree_has_the_sources_the_api_the_weights_and_every_kernel()
    {
        var files = Files(project.Tree);
        foreach (var f in Expected) Assert.Contains(f, files);
        var kernels = project.Result.Cuda.Plan.Kernels.Select(k => "kernels/" + k.FileName).Order(StringComparer.Ordinal).ToArray();
        Assert.NotEmpty(kernels);
        Assert.Equal(Expected.Concat(kernels).Order(StringComparer.Ordinal), files);
        var cmake = File.ReadAllText(Path.Combine(project.Tree, "CMakeLists.txt"));
        Assert.StartsWith(EmitDriver.Marker, cmake);
        foreach (var k in kernels) Assert.Contains("  " + k + "\n", cmake);
        Assert.Contains("set(SWC_CUDA_ARCHITECTURES \"90\"", cmake);
        var header = File.ReadAllText(Path.Combine(project.Tree, "include", "swc_model.h"));
        Assert.Contains("#define SWC_INPUT_SHAPE { 2, 3, 24, 24 }", header);
        Assert.Contains("#define SWC_OUTPUT_SHAPE { 2, 7 }", header);
    }

    [Fact]
    public void Emitting_twice_gives_byte_identical_trees()
    {
        var again = Path.Combine(project.Root, "again");
        EmitDriver.Run(new EmitRequest("sw-v2", EmittedProject.Args(batch: 2), again) { Arch = "sm_90", Version = "0.1.0" });
        var a = Files(project.Tree);
        Assert.Equal(a, Files(again));
        foreach (var f in a)
        {
            Assert.True(File.ReadAllBytes(Path.Combine(project.Tree, f)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(again, f))),
                $"{f} differs between two emits");
        }
        // emitting over an earlier emit replaces it whole: a stray file disappears
        File.WriteAllText(Path.Combine(again, "stray.txt"), "left by hand");
        EmitDriver.Run(new EmitRequest("sw-v2", EmittedProject.Args(batch: 2), again) { Arch = "sm_90", Version = "0.1.0" });
        Assert.Equal(a, Files(again));
    }

    [Fact]
    public void Every_emitted_kernel_compiles_with_nvrtc()
    {
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
        Assert.NotNull(project.Result.Cuda.Compiled);
        var files = Directory.GetFiles(Path.Combine(project.Tree, "kernels"), "*.cu").Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(project.Result.Cuda.Plan.Kernels.Count, files.Length);
        var entries = project.Result.Cuda.Plan.Kernels.ToDictionary(k => k.FileName, k => k.Entries);
        foreach (var f in files)
        {
            var ptx = NvrtcCompiler.Compile(File.ReadAllText(f), Path.GetFileName(f), "compute_90").Ptx;
            foreach (var e in entries[Path.GetFileName(f)]) Assert.Contains(".entry " + e + "(", ptx);
        }
    }

    [Fact]
    public void Weights_bin_holds_the_parameters_then_the_derived_tensors_and_rejects_damage()
    {
        var bytes = File.ReadAllBytes(Path.Combine(project.Tree, "weights.bin"));
        var c = WeightsBin.Read(bytes);
        var plan = project.Result.Cuda.Plan;
        var src = ModelSource.Load("sw-v2", EmittedProject.Args(batch: 2), withWeights: true);
        var ctx = new ShiftWise.Passes.PassContext(src.Graph, src.Weights);
        new ShiftWise.Passes.PassManager(ShiftWise.Passes.Pipelines.Get("inference")).Run(ctx);
        var names = ctx.Graph.Params.Select(p => p.Name).Concat(plan.Derived.Select(d => d.Name)).ToArray();
        Assert.Equal(names, c.Rows.Select(r => r.Name));
        Assert.NotEmpty(plan.Derived);
        var derived = Derived.ComputeAll(plan, ctx.Graph, ctx.Weights);
        foreach (var r in c.Rows)
        {
            Assert.Equal(0, r.Offset % 64);
            var want = derived.TryGetValue(r.Name, out var d) ? d : (float[])ctx.Weights[r.Name].Cast(DType.F32).Data;
            var got = new float[r.Floats];
            Buffer.BlockCopy(bytes, (int)(c.PayloadOffset + r.Offset * 4), got, 0, (int)r.Floats * 4);
            Assert.Equal(want, got);
        }
        var corrupt = (byte[])bytes.Clone();
        corrupt[^5] ^= 0x10;
        Assert.Contains("checksum does not match", Assert.Throws<IrException>(() => WeightsBin.Read(corrupt)).Message);
        Assert.Contains("truncated", Assert.Throws<IrException>(() => WeightsBin.Read(bytes.AsSpan(0, bytes.Length - 256))).Message);
        var header = (byte[])bytes.Clone();
        header[8] = 2;
        Assert.Contains("format version 2", Assert.Throws<IrException>(() => WeightsBin.Read(header)).Message);
        // the CRC is zlib's (CRC-32/IEEE, as the generated launcher computes it): the check value of "123456789"
        Assert.Equal(0xCBF43926u, Crc32.HashToUInt32("123456789"u8));
    }

    [Fact]
    public void The_generated_host_code_holds_no_name_read_from_the_model()
    {
        var code = string.Concat(new[] { "src/swc_model.cu", "include/swc_model.h", "example/swc_example.cpp", "CMakeLists.txt" }
            .Select(f => File.ReadAllText(Path.Combine(project.Tree, f))));
        var plan = project.Result.Cuda.Plan;
        var names = plan.Memory.Slots.Select(s => s.Value).Concat(plan.Derived.Select(d => d.Name)).Concat(plan.Scratch.Select(s => s.Name))
            .Concat(plan.Steps.Select(s => s.Node)).Where(n => n.Length >= 4 && n.Any(ch => ch is '.' or '_' or '/' || char.IsAsciiDigit(ch)))
            .Distinct().ToArray();
        Assert.NotEmpty(names);
        foreach (var n in names) Assert.DoesNotContain(n, code);
    }

    [Fact]
    public void A_folder_that_an_emit_did_not_write_is_left_alone()
    {
        var dir = Path.Combine(project.Root, "mine");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "notes.txt"), "keep me");
        var e = Assert.Throws<OptionException>(() =>
            EmitDriver.Run(new EmitRequest("sw-v2", EmittedProject.Args(batch: 1), dir) { Arch = "sm_90", Version = "0.1.0" }));
        Assert.Contains("not a tree written by swc emit", e.Message);
        Assert.Equal("keep me", File.ReadAllText(Path.Combine(dir, "notes.txt")));
        Assert.Single(Directory.GetFileSystemEntries(dir));
        Assert.DoesNotContain(Directory.GetFileSystemEntries(project.Root), p => Path.GetFileName(p).StartsWith(".mine", StringComparison.Ordinal));
    }

    [Fact]
    public void The_emitted_program_runs_on_the_cpu_through_a_mock_cuda_runtime_and_matches_the_reference()
    {
        if (!CudaEmulator.Available) Assert.Skip(CudaEmulator.MissingReason);
        var exe = project.MockExample;
        var src = ModelSource.Load("sw-v2", EmittedProject.Args(batch: 2), withWeights: true);
        var inputs = SwLayers.Input(src.Graph, 11);
        var x = inputs[src.Graph.Inputs[0].Name];
        var inPath = Path.Combine(project.Root, "input.npy");
        var outPath = Path.Combine(project.Root, "logits.npy");
        var trace = Path.Combine(project.Root, "trace.txt");
        Npy.Write(inPath, x.Cast(DType.F32));
        var (code, output) = Run(exe, [Path.Combine(project.Tree, "weights.bin"), inPath, outPath], new() { ["SWC_MOCK_TRACE"] = trace });
        Assert.True(code == 0, $"the example failed (exit {code}):\n{output}");
        Assert.Contains("wrote " + outPath, output);
        var got = Npy.Read(outPath);
        Assert.Equal(new Shape(2, 7), got.Shape);
        var want = IR.Reference.ReferenceExecutor.Run(src.Graph, src.Weights, inputs)[src.Graph.Outputs[0]].ToDoubles();
        double err = IR.Analysis.Error.RelL2(got.ToDoubles(), want);
        Assert.True(err <= 1e-5, $"logits relative L2 {err:E2} against the float64 reference");
        // the launcher ran exactly the plan's steps, in order
        var steps = project.Result.Cuda.Plan.Steps.Select(s => s switch
        {
            KernelLaunch l => $"launch {l.Entry} {l.Grid} {l.Block} {l.SharedBytes}",
            GemmCall g => $"gemm {(g.TransA ? 1 : 0)} {(g.TransB ? 1 : 0)} m {g.M} n {g.N} k {g.K} batch {g.Batch}",
            _ => "?",
        }).ToArray();
        Assert.Equal(steps, File.ReadAllLines(trace));
        Assert.Contains(steps, s => s.StartsWith("gemm", StringComparison.Ordinal));
    }

    [Fact]
    public void The_emitted_library_rejects_damaged_or_foreign_weights_and_reports_a_failed_launch()
    {
        if (!CudaEmulator.Available) Assert.Skip(CudaEmulator.MissingReason);
        var exe = project.MockExample;
        var weights = File.ReadAllBytes(Path.Combine(project.Tree, "weights.bin"));
        var inPath = Path.Combine(project.Root, "input-r.npy");
        Npy.Write(inPath, Tensor.F32(new Shape(2, 3, 24, 24), new float[2 * 3 * 24 * 24]));
        string Fails(byte[] file, string name, Dictionary<string, string>? env = null)
        {
            var path = Path.Combine(project.Root, name);
            File.WriteAllBytes(path, file);
            var (code, output) = Run(exe, [path, inPath, Path.Combine(project.Root, "never.npy")], env ?? []);
            Assert.True(code == 1, $"{name}: exit {code}, expected 1:\n{output}");
            Assert.False(File.Exists(Path.Combine(project.Root, "never.npy")));
            return output;
        }
        var corrupt = (byte[])weights.Clone();
        corrupt[^100] ^= 0x55;
        Assert.Contains("is corrupt: its checksum does not match", Fails(corrupt, "corrupt.bin"));
        Assert.Contains("is truncated", Fails(weights[..(weights.Length - 1000)], "truncated.bin"));
        Assert.Contains("is longer than its header says", Fails([.. weights, 0], "long.bin"));
        Assert.Contains("not a ShiftWise weights file", Fails(Encoding.ASCII.GetBytes("PK\u0003\u0004 not weights"), "zip.bin"));
        var header = (byte[])weights.Clone();
        header[40] ^= 1;  // inside the model id: the header checksum catches it first
        Assert.Contains("header checksum does not match", Fails(header, "header.bin"));
        // the weights.bin of another emit (batch 1: another plan, another model id)
        var other = Path.Combine(project.Root, "other");
        EmitDriver.Run(new EmitRequest("sw-v2", EmittedProject.Args(batch: 1), other) { Arch = "sm_90", Version = "0.1.0" });
        var foreign = Fails(File.ReadAllBytes(Path.Combine(other, "weights.bin")), "foreign.bin");
        Assert.Contains("belongs to another model", foreign);
        Assert.Contains("SWC_ERROR", File.ReadAllText(Path.Combine(project.Tree, "include", "swc_model.h")));
        // an input of the wrong shape, and a launch that fails, are named
        var wrong = Path.Combine(project.Root, "wrong.npy");
        Npy.Write(wrong, Tensor.F32(new Shape(1, 3, 24, 24), new float[3 * 24 * 24]));
        var (c1, o1) = Run(exe, [Path.Combine(project.Tree, "weights.bin"), wrong, Path.Combine(project.Root, "never.npy")], []);
        Assert.Equal(1, c1);
        Assert.Contains("has shape (1, 3, 24, 24); the model was compiled for (2, 3, 24, 24)", o1);
        var launch = project.Result.Cuda.Plan.Steps.Select((s, i) => (s, i)).Where(t => t.s is KernelLaunch).ElementAt(3);
        var (c2, o2) = Run(exe, [Path.Combine(project.Tree, "weights.bin"), inPath, Path.Combine(project.Root, "never.npy")],
            new() { ["SWC_MOCK_FAIL_LAUNCH"] = "3" });
        Assert.Equal(1, c2);
        Assert.Contains($"step {launch.i} (kernel {((KernelLaunch)launch.s).Entry}): cudaErrorLaunchFailure", o2);
    }

    [Fact]
    public void Nvcc_builds_the_emitted_project_with_cmake()
    {
        var nvcc = Tools.Which("nvcc");
        var cmake = Tools.Which("cmake");
        if (nvcc is null || cmake is null)
        {
            Assert.Skip($"{(nvcc is null ? "nvcc" : "cmake")} is not on PATH (install Debian's nvidia-cuda-toolkit and cmake to build the emitted project here)");
        }
        var build = Path.Combine(project.Root, "nvcc-build");
        // nvcc supports a range of host compilers: try the default, then the newest of those Debian's toolkit accepts
        string last = "";
        foreach (var host in new string?[] { null, "g++-12", "g++-11", "clang++-14", "g++-10" })
        {
            if (host is not null && Tools.Which(host) is null) continue;
            if (Directory.Exists(build)) Directory.Delete(build, recursive: true);
            var args = new List<string> { "-S", project.Tree, "-B", build, "-DCMAKE_BUILD_TYPE=Release" };
            if (host is not null) args.Add("-DCMAKE_CUDA_HOST_COMPILER=" + Tools.Which(host));
            var (code, output) = Tools.Run(cmake, args, TimeSpan.FromMinutes(3));
            if (code != 0)
            {
                last = output;
                continue;
            }
            (code, output) = Tools.Run(cmake, ["--build", build, "-j", "2"], TimeSpan.FromMinutes(10));
            Assert.True(code == 0, $"the emitted project does not build (host compiler {host ?? "default"}):\n{output}");
            Assert.True(File.Exists(Path.Combine(build, "swc_example")));
            Assert.DoesNotContain("warning", output, StringComparison.OrdinalIgnoreCase);
            return;
        }
        Assert.Fail($"cmake could not configure the emitted project with any host compiler nvcc accepts:\n{last}");
    }

    private static (int Code, string Output) Run(string exe, string[] args, Dictionary<string, string> env)
    {
        var e = new Dictionary<string, string>(env) { ["SWC_MOCK_KERNELS"] = Path.Combine(Path.GetDirectoryName(exe)!, "kernels.txt") };
        return Tools.Run(exe, args, TimeSpan.FromMinutes(3), e);
    }
}
