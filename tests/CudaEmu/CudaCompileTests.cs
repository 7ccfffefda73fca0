using System.Text;
using ShiftWise.CodegenCuda;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.Passes;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>The CUDA target end to end: sw-tiny lowered, compiled by NVRTC, written by swc compile --target cuda.</summary>
public sealed class CudaCompileTests
{
    private static Graph Compiled(string model, ModelArgs? args = null)
    {
        var src = ModelSource.Load(model, args ?? new ModelArgs(), withWeights: true);
        var ctx = new PassContext(src.Graph, src.Weights);
        new PassManager(Pipelines.Get("inference")).Run(ctx);
        return ctx.Graph;
    }

    [Fact]
    public void EveryKernelOfSwTinyCompilesForCompute80And90WithoutLocalMemory()
    {
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
        var plan = CudaCodegen.Lower(Compiled("sw-tiny"));
        Assert.Equal(27, plan.Steps.OfType<KernelLaunch>().Count(l => plan.Kernel(l.Kernel).Kind == "fused_shiftwise"));
        Assert.Equal(109, plan.Steps.OfType<GemmCall>().Count());
        CompilesForCompute80And90(plan);
    }

    /// <summary>Every kernel of <paramref name="plan"/> compiles with NVRTC for compute_80 and compute_90, every entry
    /// is in the PTX, and none uses local memory.</summary>
    internal static void CompilesForCompute80And90(CudaPlan plan)
    {
        foreach (var arch in new[] { "compute_80", "compute_90" })
        {
            var compiled = CudaKernelCompiler.CompileAll(plan.Kernels, arch);
            Assert.Equal(plan.Kernels.Count, compiled.Count);
            foreach (var c in compiled)
            {
                foreach (var e in c.Kernel.Entries) Assert.Contains(".entry " + e, c.Output.Ptx, StringComparison.Ordinal);
                Assert.False(CudaKernelCompiler.UsesLocalMemory(c.Output.Ptx), $"{c.Kernel.Name} uses local memory for {arch}");
            }
        }
    }

    [Fact]
    public void CompilingSwTinyTwiceGivesIdenticalSourcesAndHitsTheCache()
    {
        var a = Directory.CreateTempSubdirectory("swc-cuda-a-").FullName;
        var b = Directory.CreateTempSubdirectory("swc-cuda-b-").FullName;
        var r1 = CompileDriver.Run(new CompileRequest("sw-tiny", new ModelArgs(), "inference", a) { Target = "cuda" });
        var r2 = CompileDriver.Run(new CompileRequest("sw-tiny", new ModelArgs(), "inference", b) { Target = "cuda" });
        var fa = Directory.GetFiles(Path.Combine(a, "kernels")).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        var fb = Directory.GetFiles(Path.Combine(b, "kernels")).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(fa, fb);
        Assert.Equal(r1.Cuda!.Plan.Kernels.Count, fa.Length);
        foreach (var f in fa)
        {
            Assert.Equal(File.ReadAllBytes(Path.Combine(a, "kernels", f!)), File.ReadAllBytes(Path.Combine(b, "kernels", f!)));
        }
        Assert.Equal(File.ReadAllText(Path.Combine(a, "plan.json")), File.ReadAllText(Path.Combine(b, "plan.json")));
        var report = File.ReadAllText(Path.Combine(b, "report.md"));
        Assert.Contains("## CUDA target (sm_90)", report);
        if (!NvrtcCompiler.Available)
        {
            // the sources and the report are checked; what NVRTC would add is not: say so rather than pass
            Assert.Contains("NVRTC: not compiled:", report);
            Assert.False(Directory.Exists(Path.Combine(b, "ptx")));
            Assert.Skip(NvrtcCompiler.MissingReason);
        }
        Assert.All(r2.Cuda!.Compiled!, c => Assert.NotEqual(CacheOutcome.Compiled, c.Outcome));
        Assert.Contains("cache hit for every kernel", report);
        Assert.Equal(fa.Length, Directory.GetFiles(Path.Combine(b, "ptx")).Length);
        Assert.DoesNotContain(Directory.GetFileSystemEntries(b), f => f.Contains(".tmp", StringComparison.Ordinal));
    }

    [Fact]
    public void AKernelThatDoesNotCompileIsReportedWithItsFileAndLine()
    {
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
        var good = new CudaKernelSource("good", "test", "extern \"C\" __global__ void good(float* y) { y[0] = 1.0f; }\n", ["good"]);
        var bad = new CudaKernelSource("bad", "test", "extern \"C\" __global__ void bad(float* y)\n{\n  y[0] = undeclared;\n}\n", ["bad"]);
        var e = Assert.Throws<IrException>(() => CudaKernelCompiler.CompileAll([good, bad], "compute_80"));
        Assert.Contains("1 of 2 CUDA kernels", e.Message);
        Assert.Contains("kernels/bad.cu", e.Message);
        Assert.Contains("bad.cu(3)", e.Message);
        Assert.Contains("undeclared", e.Message);
    }

    [Fact]
    public void DerivedTensorsAreCheckedAgainstThePlan()
    {
        var (g, w) = SwLayers.Layer(4, maxSize: 12);
        var plan = CudaCodegen.Lower(g);
        var all = Derived.ComputeAll(plan, g, w);
        Assert.Equal(plan.Derived.Select(d => d.Name).Order(), all.Keys.Order());
        Assert.All(plan.Derived, d => Assert.Equal(d.Floats, all[d.Name].Length));
        var wrongNode = plan with { Derived = [plan.Derived[0] with { Node = "nope" }] };
        Assert.Contains("the graph has no node %nope", Assert.Throws<IrException>(() => Derived.ComputeAll(wrongNode, g, w)).Message);
        var wrongSize = plan with { Derived = [plan.Derived[0] with { Floats = 3 }] };
        Assert.Contains("floats computed, 3 planned", Assert.Throws<IrException>(() => Derived.ComputeAll(wrongSize, g, w)).Message);
        var noWeights = new Dictionary<string, Tensor>(w);
        noWeights.Remove(g.Nodes[0].Inputs[1]);
        Assert.Contains("is not a parameter", Assert.Throws<IrException>(() => Derived.ComputeAll(plan, g, noWeights)).Message);
    }
}

/// <summary>
/// The NVRTC disk cache: these tests empty the process's in-memory kernel cache (ForgetLoaded), so they run alone.
/// </summary>
[Collection(ShiftWise.Tests.ProcessState.Name)]
public sealed class CudaCacheTests
{
    [Fact]
    public void TheDiskCacheServesAKernelThisProcessForgot()
    {
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
        var k = new CudaKernelSource("swc_cache_probe_" + Guid.NewGuid().ToString("N")[..8], "test",
            "extern \"C\" __global__ void probe(float* y) { y[threadIdx.x] = 2.0f * threadIdx.x; }\n// " + Guid.NewGuid(), ["probe"]);
        Assert.Equal(CacheOutcome.Compiled, CudaKernelCompiler.Compile(k, "compute_80").Outcome);
        Assert.Equal(CacheOutcome.Memory, CudaKernelCompiler.Compile(k, "compute_80").Outcome);
        CudaKernelCompiler.ForgetLoaded();
        Assert.Equal(CacheOutcome.Disk, CudaKernelCompiler.Compile(k, "compute_80").Outcome);
        // another arch or other options are other entries
        Assert.Equal(CacheOutcome.Compiled, CudaKernelCompiler.Compile(k, "compute_90").Outcome);
        Assert.Equal(CacheOutcome.Compiled, CudaKernelCompiler.Compile(k, "compute_80", ["-lineinfo"]).Outcome);
    }

    [Fact]
    public void ATamperedCacheEntryIsDiscardedAndRebuiltNotLoaded()
    {
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
        var k = new CudaKernelSource("swc_tamper_probe", "test",
            "extern \"C\" __global__ void probe(float* y) { y[threadIdx.x] = 3.0f; }\n// " + Guid.NewGuid(), ["probe"]);
        var good = CudaKernelCompiler.Compile(k, "compute_80").Output.Image;
        var file = Path.Combine(CudaKernelCompiler.CacheDir, CudaKernelCompiler.Key(k.Source, "compute_80", []) + ".ptx");
        var sealedBytes = File.ReadAllBytes(file);
        Assert.Equal(good, SwcCache.Unseal(sealedBytes));
        // an attacker's PTX: the same entry with the stored constant changed
        var text = Encoding.UTF8.GetString(sealedBytes, SwcCache.HeaderBytes, sealedBytes.Length - SwcCache.HeaderBytes);
        Assert.Contains("1077936128", text);  // the bits of 3.0f
        var tampered = sealedBytes[..SwcCache.HeaderBytes].Concat(Encoding.UTF8.GetBytes(text.Replace("1077936128", "1088421888", StringComparison.Ordinal))).ToArray();
        File.WriteAllBytes(file, tampered);
        CudaKernelCompiler.ForgetLoaded();
        var warnings = new List<string>();
        var again = CudaKernelCompiler.Compile(k, "compute_80", warn: warnings.Add);
        Assert.Equal(CacheOutcome.Compiled, again.Outcome);
        Assert.Equal(good, again.Output.Image);
        Assert.Contains(warnings, w => w.Contains("does not match its content hash", StringComparison.Ordinal));
        Assert.Equal(good, SwcCache.Unseal(File.ReadAllBytes(file)));
    }
}
