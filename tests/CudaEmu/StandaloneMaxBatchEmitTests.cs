using System.Text;
using System.Text.RegularExpressions;
using ShiftWise.CodegenCuda;
using ShiftWise.CodegenCuda.Standalone;
using ShiftWise.Frontend;
using ShiftWise.Frontend.IO;
using ShiftWise.IR;
using ShiftWise.Runtime.Compile;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// A small backbone (two stage features, so two outputs back to back) emitted with swc emit --max-batch 4: buckets 1,
/// 2 and 4 in one library.
/// </summary>
public sealed class MaxBatchEmit : IDisposable
{
    /// <summary>The model: stages 0 and 1 (SE, GRN), both as features; no --batch (--max-batch gives it).</summary>
    public static readonly ModelArgs Args = new()
    {
        Depths = [1, 1, 1, 1], Dims = [8, 16, 16, 32], KernelSize = [7, 5, 5, 3, 3], ImageSize = 24,
        Features = [0, 1], Seed = 3,
    };

    public EmittedProject Project { get; } = new(Precision.Fp32, Args, maxBatch: 4);

    /// <summary>The model at batch <paramref name="batch"/> with its weights (the reference's graph).</summary>
    public static LoadedModel Load(int batch) => ModelSource.Load("sw-v2", Args with { Batch = batch }, withWeights: true);

    public void Dispose() => Project.Dispose();
}

/// <summary>
/// swc emit --max-batch (issue 23, deliverable 3): the tree holds one plan per batch bucket, each bucket's launcher
/// issues exactly the calls a plain emit at that batch issues, and the library, built with g++ against the mock CUDA
/// runtime and run through the emulator, runs batches 1 and 2 (buckets) and 3 (zero-padded onto bucket 4) to within
/// relative L2 1e-5 of the float64 reference (as the single-batch emit tests), and refuses batches out of range.
/// </summary>
public sealed class StandaloneMaxBatchEmitTests(MaxBatchEmit fx) : IClassFixture<MaxBatchEmit>
{
    private EmittedProject P => fx.Project;

    [Fact]
    public void The_tree_holds_one_plan_per_bucket_and_the_max_batch_api()
    {
        Assert.Equal([1, 2, 4], P.Result.Buckets.Select(b => b.Batch));
        Assert.Same(P.Result.Buckets[^1].Cuda, P.Result.Cuda);
        var files = Directory.GetFiles(P.Tree, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(P.Tree, f).Replace(Path.DirectorySeparatorChar, '/')).ToHashSet();
        var kernels = P.Result.Buckets.SelectMany(b => b.Cuda.Plan.Kernels).Select(k => "kernels/" + k.FileName)
            .ToHashSet();
        Assert.Equal(kernels.Order(StringComparer.Ordinal),
            files.Where(f => f.StartsWith("kernels/", StringComparison.Ordinal)).Order(StringComparer.Ordinal));
        foreach (var (b, cuda) in P.Result.Buckets)
        {
            var plan = b == 4 ? "plan.json" : $"plans/plan_b{b}.json";
            Assert.DoesNotContain(cuda.Plan.Steps, s => s is GemmCall { Lt: not null });
            Assert.Equal(CudaPlanJson.Write(cuda.Plan), File.ReadAllText(Path.Combine(P.Tree, plan)));
        }
        Assert.DoesNotContain("plans/plan_b4.json", files);
        var header = File.ReadAllText(Path.Combine(P.Tree, "include", "swc_model.h"));
        var one = MaxBatchEmit.Load(1).Graph;
        var types = one.ValueTypes();
        long outSample = one.Outputs.Sum(o => types[o].Shape.Elements);
        foreach (var line in new[]
        {
            "#define SWC_MAX_BATCH 4", "#define SWC_BATCH_BUCKETS { 1, 2, 4 }", "#define SWC_INPUT_SHAPE { 4, 3, 24, 24 }",
            "#define SWC_INPUT_SAMPLE_ELEMENTS 1728", $"#define SWC_OUTPUT_SAMPLE_ELEMENTS {outSample}",
            $"#define SWC_OUTPUT_ELEMENTS {4 * outSample}", "#define SWC_OUTPUT_COUNT 2",
            "swc_status swc_run_host_batch(swc_model* model, int batch, const float* input, float* output);",
            "int64_t swc_output_offset_batch(int index, int batch);",
        })
        {
            Assert.Contains(line + "\n", header, StringComparison.Ordinal);
        }
        Assert.Contains("| batches | any from 1 to 4", File.ReadAllText(Path.Combine(P.Tree, "README.md")));
    }

    [Fact]
    public void Each_bucket_runs_the_calls_of_a_plain_emit_at_its_batch_and_the_model_id_covers_every_bucket()
    {
        var code = File.ReadAllText(Path.Combine(P.Tree, "src", "swc_model.cu"));
        var weights = WeightsBin.Read(File.ReadAllBytes(Path.Combine(P.Tree, "weights.bin")));
        foreach (var (b, cuda) in P.Result.Buckets)
        {
            // the plain emit of this bucket's plan: its run_steps is this bucket's run_steps_bN, call for call
            var src = MaxBatchEmit.Load(b);
            var ctx = Driver.Optimize(src.Graph, src.Weights, "inference");
            var w = ctx.Graph.Params.ToDictionary(p => p.Name, p => ctx.Weights[p.Name], StringComparer.Ordinal);
            var derived = Derived.ComputeAll(cuda.Plan, ctx.Graph, w);
            var plain = StandaloneEmitter.Emit(cuda.Plan, ctx.Graph, w, derived, "plain", "0.1.0");
            var plainCode = Encoding.UTF8.GetString(plain.Single(f => f.Path == "src/swc_model.cu").Bytes);
            var want = Steps(plainCode, "run_steps");
            Assert.Equal(cuda.Plan.Steps.Count, want.Count);
            Assert.Equal(want, Steps(code, $"run_steps_b{b}"));
            // weights.bin holds this bucket's derived tensors, with the values computed from its plan
            foreach (var (name, v) in derived)
            {
                var row = weights.Rows.Single(r => r.Name == name);
                var bytes = File.ReadAllBytes(Path.Combine(P.Tree, "weights.bin"));
                var got = new float[row.Floats];
                Buffer.BlockCopy(bytes, (int)(weights.PayloadOffset + row.Offset * 4), got, 0, (int)row.Floats * 4);
                Assert.Equal(v, got);
            }
            var plainId = WeightsBin.Read(plain.Single(f => f.Path == "weights.bin").Bytes).ModelId;
            Assert.NotEqual(Convert.ToHexString(plainId), Convert.ToHexString(weights.ModelId));
        }
    }

    [Fact]
    public void The_library_runs_buckets_and_padded_batches_and_matches_the_reference()
    {
        if (!CudaEmulator.Available) Assert.Skip(CudaEmulator.MissingReason);
        foreach (var (batch, bucket) in new[] { (1, 1), (2, 2), (3, 4) })
        {
            var src = MaxBatchEmit.Load(batch);
            var inputs = SwLayers.Input(src.Graph, 20 + batch);
            var inPath = Path.Combine(P.Root, $"input{batch}.npy");
            var outPath = Path.Combine(P.Root, $"features{batch}.npy");
            var trace = Path.Combine(P.Root, $"trace{batch}.txt");
            Npy.Write(inPath, inputs[src.Graph.Inputs[0].Name].Cast(DType.F32));
            var (code, output) = Run([Path.Combine(P.Tree, "weights.bin"), inPath, outPath], trace);
            Assert.True(code == 0, $"batch {batch}: the example failed (exit {code}):\n{output}");
            var want = IR.Reference.ReferenceExecutor.Run(src.Graph, src.Weights, inputs);
            var types = src.Graph.ValueTypes();
            for (int i = 0; i < 2; i++)
            {
                var name = src.Graph.Outputs[i];
                var got = Npy.Read(Path.Combine(P.Root, $"features{batch}_{i}.npy"));
                Assert.Equal(types[name].Shape, got.Shape);
                Assert.Equal(batch, got.Shape[0]);
                double err = IR.Analysis.Error.RelL2(got.ToDoubles(), want[name].ToDoubles());
                TestContext.Current.TestOutputHelper?.WriteLine(
                    $"batch {batch} (bucket {bucket}) {name} {got.Shape}: relative L2 {err:E2}");
                Assert.True(err <= 1e-5, $"batch {batch}, {name}: relative L2 {err:E2} against the float64 reference");
            }
            // the batch ran its bucket's plan, step for step
            var plan = P.Result.Buckets.Single(b => b.Batch == bucket).Cuda.Plan;
            Assert.Equal(plan.Steps.Select(Traced), File.ReadAllLines(trace));
        }
    }

    [Fact]
    public void Batches_out_of_range_are_refused_with_a_sentence()
    {
        if (!CudaEmulator.Available) Assert.Skip(CudaEmulator.MissingReason);
        var exe = P.MockExample;
        var five = Path.Combine(P.Root, "five.npy");
        Npy.Write(five, Tensor.F32(new Shape(5, 3, 24, 24), new float[5 * 3 * 24 * 24]));
        var (c1, o1) = Run([Path.Combine(P.Tree, "weights.bin"), five, Path.Combine(P.Root, "never.npy")]);
        Assert.Equal(1, c1);
        Assert.Contains("has shape (5, 3, 24, 24); the model was compiled for (1 to 4, 3, 24, 24)", o1);
        // the C API itself: a probe program linked like the example
        var dir = Path.GetDirectoryName(exe)!;
        var probe = Path.Combine(dir, "probe.cpp");
        File.WriteAllText(probe, ProbeSource);
        var bin = Path.Combine(dir, "probe");
        var (cc, co) = Tools.Run("g++", ["-std=c++17", "-O0", "-w", "-I", Path.Combine(dir, "mock"), "-I",
            Path.Combine(P.Tree, "include"), "-x", "c++", Path.Combine(P.Tree, "src", "swc_model.cu"), "-x", "none", probe,
            Path.Combine(dir, "mock", "swc_mock_cuda.cpp"), Path.Combine(dir, "stubs.cpp"), "-ldl", "-o", bin],
            TimeSpan.FromMinutes(3));
        Assert.True(cc == 0, $"g++ could not build the probe (exit {cc}):\n{co}");
        var (c2, o2) = Run([Path.Combine(P.Tree, "weights.bin")], exe: bin);
        Assert.True(c2 == 0, $"the probe failed (exit {c2}):\n{o2}");
        foreach (var b in new[] { 0, 5, -1 })
        {
            Assert.Contains($"batch {b}: status 1: swc_run_host_batch: batch {b} is out of range; this library runs "
                + "batches of 1 to 4 samples (SWC_MAX_BATCH; swc emit --max-batch)\n", o2);
        }
        Assert.Contains("device batch 9: status 1: swc_run_device_batch: batch 9 is out of range", o2);
        var one = MaxBatchEmit.Load(1).Graph;
        long first = one.ValueTypes()[one.Outputs[0]].Shape.Elements;
        Assert.Contains($"offsets 0 {3 * first} -1 -1 -1\n", o2);
    }

    private const string ProbeSource = """
        #include "swc_model.h"
        #include <cstdio>
        #include <vector>
        int main(int, char** argv)
        {
            swc_model* m = nullptr;
            if (swc_create(argv[1], 0, &m) != SWC_OK) { std::printf("create: %s\n", swc_last_error()); return 1; }
            std::vector<float> in(8 * SWC_INPUT_SAMPLE_ELEMENTS), out(8 * SWC_OUTPUT_SAMPLE_ELEMENTS);
            for (int b : { 0, 5, -1 }) {
                int s = (int)swc_run_host_batch(m, b, in.data(), out.data());
                std::printf("batch %d: status %d: %s\n", b, s, swc_last_error());
            }
            int s = (int)swc_run_device_batch(m, 9, in.data(), out.data());
            std::printf("device batch 9: status %d: %s\n", s, swc_last_error());
            std::printf("offsets %lld %lld %lld %lld %lld\n", (long long)swc_output_offset_batch(0, 3),
                        (long long)swc_output_offset_batch(1, 3), (long long)swc_output_offset_batch(2, 3),
                        (long long)swc_output_offset_batch(0, 5), (long long)swc_output_offset_batch(0, 0));
            swc_destroy(m);
            return 0;
        }
        """;

    // the launcher calls (SWC_TRY lines) of function `fn` of an emitted swc_model.cu
    private static List<string> Steps(string code, string fn)
    {
        var at = code.IndexOf($"swc_status {fn}(swc_model* m)\n", StringComparison.Ordinal);
        Assert.True(at >= 0, $"no {fn} in the launcher");
        var end = code.IndexOf("    return SWC_OK;\n}", at, StringComparison.Ordinal);
        return [.. Regex.Matches(code[at..end], @"^    SWC_TRY\((.*)\);$", RegexOptions.Multiline).Select(m => m.Value)];
    }

    private static string Traced(PlanStep s) => s switch
    {
        KernelLaunch l => $"launch {l.Entry} {l.Grid} {l.Block} {l.SharedBytes}",
        GemmCall g => $"gemm {(g.TransA ? 1 : 0)} {(g.TransB ? 1 : 0)} m {g.M} n {g.N} k {g.K} batch {g.Batch}",
        _ => "?",
    };

    private (int Code, string Output) Run(string[] args, string? trace = null, string? exe = null)
    {
        var env = new Dictionary<string, string> { ["SWC_MOCK_KERNELS"] = P.KernelList };
        if (trace is not null) env["SWC_MOCK_TRACE"] = trace;
        return Tools.Run(exe ?? P.MockExample, args, TimeSpan.FromMinutes(5), env);
    }
}

/// <summary>The batch buckets of swc emit --max-batch, and the values it refuses (no emit, no emulator).</summary>
public sealed class MaxBatchBucketTests
{
    [Theory]
    [InlineData(1, new[] { 1 })]
    [InlineData(2, new[] { 1, 2 })]
    [InlineData(3, new[] { 1, 2, 3 })]
    [InlineData(5, new[] { 1, 2, 4, 5 })]
    [InlineData(8, new[] { 1, 2, 4, 8 })]
    [InlineData(100, new[] { 1, 2, 4, 8, 16, 32, 64, 100 })]
    public void The_buckets_are_the_powers_of_two_below_the_max_then_the_max(int max, int[] want) =>
        Assert.Equal(want, StandaloneEmitter.BatchBuckets(max));

    [Theory]
    [InlineData(0)]
    [InlineData(-3)]
    [InlineData(StandaloneEmitter.MaxBatchLimit + 1)]
    public void A_max_batch_out_of_range_is_refused(int max) =>
        Assert.Contains($"option --max-batch: {max} is out of range (1 to 65536)",
            Assert.Throws<OptionException>(() => StandaloneEmitter.BatchBuckets(max)).Message);

    [Fact]
    public void A_classifier_library_compiles_cleanly_and_a_kernel_name_with_two_sources_is_refused()
    {
        // a classifier (one output) at buckets 1, 2, 3, lowered as swc emit does but without NVRTC (fast)
        var args = EmittedProject.Args(batch: 1) with { Batch = null };
        var buckets = new List<StandaloneBucket>();
        Dictionary<string, Tensor> w = [];
        var derived = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var b in StandaloneEmitter.BatchBuckets(3))
        {
            var src = Driver.Load("sw-v2", args with { Batch = b });
            var opt = Driver.Optimize(src.Graph, src.Weights, "inference");
            var plan = ((ShiftWise.Runtime.Cuda.CudaTargetPlan)new ShiftWise.Runtime.Cuda.CudaTarget(Arch: "sm_90")
                .Lower(opt.Graph, new Dictionary<string, Tensor>(), null)).Plan;
            w = opt.Graph.Params.ToDictionary(p => p.Name, p => opt.Weights[p.Name], StringComparer.Ordinal);
            foreach (var (k, v) in Derived.ComputeAll(plan, opt.Graph, w)) derived[k] = v;
            buckets.Add(new StandaloneBucket(b, plan, opt.Graph));
        }
        var files = StandaloneEmitter.EmitBuckets(buckets, w, derived, "classifier", "0.1.0");
        Assert.Contains(files, f => f.Path == "plans/plan_b2.json");
        // g++ -Wall -Wextra -Werror on the launcher (against the mock CUDA headers) and the example
        if (Tools.Which("g++") is null) Assert.Skip("g++ is not on PATH");
        var root = Path.Combine(Path.GetTempPath(), "swc-maxbatch-" + Guid.NewGuid().ToString("N"));
        try
        {
            foreach (var f in files.Where(f => !f.Path.StartsWith("kernels/", StringComparison.Ordinal)))
            {
                Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(root, f.Path))!);
                File.WriteAllBytes(Path.Combine(root, f.Path), f.Bytes);
            }
            Directory.CreateDirectory(Path.Combine(root, "mock"));
            foreach (var h in new[] { "cuda_runtime.h", "cublas_v2.h" })
            {
                using var s = typeof(MaxBatchBucketTests).Assembly.GetManifestResourceStream("mock/" + h)!;
                using var o = File.Create(Path.Combine(root, "mock", h));
                s.CopyTo(o);
            }
            var header = File.ReadAllText(Path.Combine(root, "include", "swc_model.h"));
            Assert.Contains("#define SWC_OUTPUT_SAMPLE_ELEMENTS 7\n", header);
            Assert.DoesNotContain("swc_output_shape_at", header);
            foreach (var (file, lang) in new[] { ("src/swc_model.cu", "c++"), ("example/swc_example.cpp", "c++") })
            {
                var (code, output) = Tools.Run("g++", ["-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
                    "-I", Path.Combine(root, "mock"), "-I", Path.Combine(root, "include"), "-x", lang,
                    Path.Combine(root, file)], TimeSpan.FromMinutes(2));
                Assert.True(code == 0, $"{file}: g++ -Wall -Wextra -Werror failed (exit {code}):\n{output}");
            }
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
        // one kernel name with two sources (a hash collision) cannot be in one library
        var k0 = buckets[0].Plan.Kernels.First(k => buckets[^1].Plan.Kernels.All(x => x.Name != k.Name));
        var bad = buckets[^1] with
        {
            Plan = buckets[^1].Plan with { Kernels = [.. buckets[^1].Plan.Kernels, k0 with { Source = "// other" }] },
        };
        var e = Assert.Throws<IrException>(() =>
            StandaloneEmitter.EmitBuckets([buckets[0], buckets[1], bad], w, derived, "classifier", "0.1.0"));
        Assert.Contains($"kernel {k0.Name} has one source at batch 3 and another at batch 1", e.Message);
        e = Assert.Throws<IrException>(() =>
            StandaloneEmitter.EmitBuckets([buckets[1], buckets[0]], w, derived, "classifier", "0.1.0"));
        Assert.Contains("the buckets 2, 1 are not ascending positive batches", e.Message);
    }

    [Fact]
    public void Max_batch_and_another_batch_conflict()
    {
        var dir = Path.Combine(Path.GetTempPath(), "swc-maxbatch-" + Guid.NewGuid().ToString("N"));
        var e = Assert.Throws<OptionException>(() => EmitDriver.Run(
            new EmitRequest("sw-v2", MaxBatchEmit.Args with { Batch = 2 }, dir) { Arch = "sm_90", MaxBatch = 4 }));
        Assert.Contains("options --batch 2 and --max-batch 4 conflict", e.Message);
        Assert.False(Directory.Exists(dir));
    }
}
