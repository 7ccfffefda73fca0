using System.Globalization;
using System.Text;
using ShiftWise.Runtime.Compile;
using ShiftWise.CodegenCuda;
using ShiftWise.Frontend;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Reference;
using ShiftWise.Passes;
using ShiftWise.Runtime.Cuda;

namespace ShiftWise.Gpu.Tests;

/// <summary>
/// The CUDA runtime on a real GPU against the float64 reference executor, at sw-tiny's real shapes. Skipped, with the
/// one-sentence reason, where there is no GPU. Results (every kernel's error) go to $SWC_GPU_RESULTS when set.
/// Bounds: one node, relative L2 ≤ 1e-5 (fp32 against float64 on the same inputs; GEMMs with TF32 off); whole models
/// ≤ 1e-4 (fp32 through every block, as the CPU target).
/// </summary>
public sealed class GpuTests
{
    private static void RequireGpu()
    {
        if (!CudaDevice.Available) Assert.Skip(CudaDevice.MissingReason!);
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
    }

    private static (LoadedModel Model, Graph Compiled, Dictionary<string, Tensor> Weights) SwTiny(int batch)
    {
        var m = ModelSource.Load("sw-tiny", new ModelArgs { Batch = batch }, withWeights: true);
        var ctx = new PassContext(m.Graph, m.Weights);
        new PassManager(Pipelines.Get("inference")).Run(ctx);
        return (m, ctx.Graph, ctx.Weights);
    }

    private static Tensor Random(TensorType t, int seed)
    {
        var rng = new Random(seed);
        var v = new double[t.Shape.Elements];
        for (int i = 0; i < v.Length; i++) v[i] = rng.NextDouble() * 2 - 1;
        return Tensor.FromDoubles(t, v);
    }

    private static void Report(string file, string text)
    {
        if (Environment.GetEnvironmentVariable("SWC_GPU_RESULTS") is { Length: > 0 } dir)
        {
            Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, file), text);
        }
        TestContext.Current.SendDiagnosticMessage(text);
    }

    [Fact]
    public void EveryKernelOfSwTinyMatchesTheReferenceOnItsRealShapes()
    {
        RequireGpu();
        var (_, g, w) = SwTiny(1);
        var x = Random(g.Inputs[0].Type, 1);
        var env = ReferenceExecutor.Run(g, w, new Dictionary<string, Tensor> { [g.Inputs[0].Name] = x }, keepAll: true);
        var paramNames = g.Params.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        var types = g.ValueTypes();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var rows = new StringBuilder("| node | op | kernels / GEMM | output | relative L2 |\n|---|---|---|---|---|\n");
        double worst = 0;
        string worstNode = "";
        int checkedNodes = 0;
        foreach (var n in g.Nodes)
        {
            // one node as a graph of its own: activations become inputs, parameters stay parameters
            var ins = n.Inputs.Distinct().Where(i => !paramNames.Contains(i)).Select(i => new ValueDecl(i, types[i])).ToArray();
            var ps = n.Inputs.Distinct().Where(paramNames.Contains).Select(i => new ValueDecl(i, types[i])).ToArray();
            var one = new Graph("node_" + KernelName(n.Name), ins, ps, new[] { n }, n.Outputs.ToArray());
            var plan = CudaCodegen.Lower(one, new CudaOptions(CudaDevice.Info.Arch));
            var key = string.Join(",", plan.Kernels.Select(k => k.Name)) + (plan.Steps.Any(s => s is GemmCall) ? "+gemm" : "");
            if (plan.Steps.Count == 0 || !seen.Add(key)) continue;
            using var ex = new CudaExecutor(plan, one, w);
            var got = ex.Run(ins.ToDictionary(i => i.Name, i => env[i.Name]))[n.Outputs[0]];
            double err = Error.RelL2(got, env[n.Outputs[0]]);
            checkedNodes++;
            if (!(err <= worst)) (worst, worstNode) = (err, n.Name);
            rows.Append(CultureInfo.InvariantCulture, $"| {n.Name} | {n.Op.Name} | {key} | {n.Types[0]} | {err:E2} |\n");
        }
        Report("kernel-errors.md", $"# Every distinct kernel of sw-tiny (batch 1) on {CudaDevice.Info.Name} vs the float64 reference\n\n"
            + $"{checkedNodes} nodes checked (one per distinct kernel set); worst relative L2 {worst:E2} at %{worstNode}\n\n" + rows);
        Assert.True(checkedNodes >= 20, $"only {checkedNodes} distinct kernels were checked");
        Assert.True(worst <= 1e-5, $"worst relative L2 {worst:E2} at %{worstNode}");
    }

    [Fact]
    public void EveryStepOfSwTinyAtBatch2MatchesTheReferenceInItsArena()
    {
        RequireGpu();
        // the compiled graph step by step in the real arena (so slot reuse, views and in-place epilogues are part of
        // it): before each node's first step its activation inputs are overwritten with the reference's values, so
        // every node is checked on exact inputs (no accumulated rounding), and its output against the reference
        var (_, g, w) = SwTiny(2);
        var x = Random(g.Inputs[0].Type, 3);
        var env = ReferenceExecutor.Run(g, w, new Dictionary<string, Tensor> { [g.Inputs[0].Name] = x }, keepAll: true);
        var plan = CudaCodegen.Lower(g, new CudaOptions(CudaDevice.Info.Arch));
        using var ex = new CudaExecutor(plan, g, w);
        ex.SetInputs(new Dictionary<string, Tensor> { [g.Inputs[0].Name] = x });
        var rows = new StringBuilder("| step | node | op | relative L2 |\n|---|---|---|---|\n");
        var last = new Dictionary<string, int>(StringComparer.Ordinal);
        var firstStep = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < plan.Steps.Count; i++)
        {
            last[plan.Steps[i].Node] = i;
            firstStep.TryAdd(plan.Steps[i].Node, i);
        }
        var byName = g.Nodes.ToDictionary(n => n.Name, StringComparer.Ordinal);
        var paramNames = g.Params.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        var ops = g.Nodes.ToDictionary(n => n.Name, n => n.Op.Name, StringComparer.Ordinal);
        double worst = 0;
        string first = "";
        for (int i = 0; i < ex.StepCount; i++)
        {
            var n0 = byName[plan.Steps[i].Node];
            if (firstStep[n0.Name] == i)
            {
                ex.Synchronize();
                foreach (var v in n0.Inputs.Distinct().Where(v => !paramNames.Contains(v))) ex.WriteValue(v, env[v]);
            }
            ex.RunStep(i);
            var node = plan.Steps[i].Node;
            if (last[node] != i) continue; // a node's epilogue steps: check after its last step
            ex.Synchronize();
            double err = Error.RelL2(ex.ReadValue(node), env[node]);
            rows.Append(CultureInfo.InvariantCulture, $"| {i} | {node} | {ops[node]} | {err:E2} |\n");
            if (!(err <= 1e-5) && first == "") first = $"step {i} %{node} ({ops[node]}): {err:E2}";
            worst = Math.Max(worst, double.IsNaN(err) ? double.PositiveInfinity : err);
        }
        Report("steps-batch2.md", $"# sw-tiny batch 2 step by step on {CudaDevice.Info.Name}\n\nworst {worst:E2}; first above 1e-5: {(first == "" ? "none" : first)}\n\n" + rows);
        Assert.True(first == "", "diverges first at " + first);
    }

    private static string KernelName(string s) => new(s.Select(c => char.IsAsciiLetterOrDigit(c) ? c : '_').ToArray());

    // Whole models end to end. With the "lively" init (every weight O(1)) deep stages are ill-conditioned: the SE
    // sigmoids saturate and a rounding difference grows about tenfold per block through stage 2's 18 blocks (on the CPU
    // target too: 1.0e-3 for one input, 2.6e-5 for another). So the end-to-end bound is checked where it means
    // something: the full sw-tiny with the paper's init, and a shallow sw-tiny with lively weights; every step of the
    // deep lively model is checked on exact inputs by EveryStepOfSwTinyAtBatch2MatchesTheReferenceInItsArena.
    [Theory]
    [InlineData("original", "3,3,18,3", false)]
    [InlineData("original", "3,3,18,3", true)]
    [InlineData("lively", "1,1,2,1", false)]
    [InlineData("lively", "1,1,2,1", true)]
    public void SwTinyMatchesTheReference(string init, string depths, bool graphs)
    {
        RequireGpu();
        var m = ModelSource.Load("sw-tiny", new ModelArgs
        {
            Batch = 2,
            Depths = depths.Split(',').Select(int.Parse).ToArray(),
            Init = init == "original" ? InitScheme.Original : InitScheme.Lively,
        }, withWeights: true);
        using var gm = Driver.Compile(m, new CudaTarget(new CudaRunOptions { Graphs = graphs }));
        var x = Random(m.Graph.Inputs[0].Type, 7);
        var want = ReferenceExecutor.Run(m.Graph, m.Weights, new Dictionary<string, Tensor> { [m.Graph.Inputs[0].Name] = x })[m.Graph.Outputs[0]];
        Tensor got = gm.Run(x);
        for (int i = 0; i < 3; i++) got = gm.Run(x); // with graphs: two eager runs, then the capture, then a replay
        double err = Error.RelL2(got, want);
        Report($"sw-tiny-{init}-{depths.Replace(',', '_')}-{(graphs ? "graph" : "eager")}.md",
            $"sw-tiny (--init {init}, depths {depths}) batch 2 on {CudaDevice.Info.Name}, {(graphs ? "CUDA graph replay" : "eager")}: "
            + $"logits relative L2 {err:E2} vs the float64 reference\n");
        Assert.True(err <= 1e-4, $"logits relative L2 {err:E2}");
    }

    [Fact]
    public void AReplayNeverOverwritesAnEarlierOutputAndMatchesTheEagerRun()
    {
        RequireGpu();
        var m = ModelSource.Load("sw-v2", new ModelArgs
        {
            Depths = [1, 1, 1, 1], Dims = [16, 32, 48, 64], KernelSize = [13, 11, 7, 5, 3], ImageSize = 64, NumClasses = 10, Batch = 2,
        }, withWeights: true);
        using var eager = Driver.Compile(m, new CudaTarget());
        using var graph = Driver.Compile(m, new CudaTarget(new CudaRunOptions { Graphs = true }));
        var a = Random(m.Graph.Inputs[0].Type, 1);
        var b = Random(m.Graph.Inputs[0].Type, 2);
        var ya = Enumerable.Range(0, 4).Select(_ => graph.Run(a)).Last();
        var copy = ya.ToDoubles();
        var yb = graph.Run(b);
        Assert.Equal(copy, ya.ToDoubles());
        Assert.NotEqual(copy, yb.ToDoubles());
        Assert.Equal(eager.Run(a).ToDoubles(), copy);
        var want = ReferenceExecutor.Run(m.Graph, m.Weights, new Dictionary<string, Tensor> { [m.Graph.Inputs[0].Name] = b })[m.Graph.Outputs[0]];
        Assert.True(Error.RelL2(yb, want) <= 1e-4);
    }

    [Fact]
    public void CheckFiniteNamesTheFirstNodeWhoseOutputOverflowsOnTheGpu()
    {
        RequireGpu();
        var m = ModelSource.Load("sw-v2", new ModelArgs
        {
            Depths = [1, 1, 1, 1], Dims = [8, 16, 16, 32], KernelSize = [7, 5, 5, 3, 3], ImageSize = 24, NumClasses = 5, Batch = 1,
        }, withWeights: true);
        using var gm = Driver.Compile(m, new CudaTarget());
        var huge = Tensor.F32(m.Graph.Inputs[0].Type.Shape, Enumerable.Repeat(3e38f, (int)m.Graph.Inputs[0].Type.Shape.Elements).ToArray());
        gm.Run(huge);  // without the check: runs to the end
        gm.Executor.CheckFinite = true;
        var e = Assert.Throws<ShiftWise.Runtime.NonFiniteException>(() => gm.Run(huge));
        Assert.Matches(@"--check-finite: node %\S+, output %\S+, holds (NaN|\+Inf|-Inf) at flat index \d+", e.Message);
        Report("check-finite.md", $"swc run --device cuda --check-finite on an overflowing input: {e.Message}\n");
        var fine = Random(m.Graph.Inputs[0].Type, 3);
        gm.Executor.CheckFinite = false;
        var plain = gm.Run(fine).ToDoubles();
        gm.Executor.CheckFinite = true;
        Assert.Equal(plain, gm.Run(fine).ToDoubles());  // checking step by step computes the same
    }

    [Fact]
    public void AnAllocationBeyondTheDeviceSaysOutOfDeviceMemory()
    {
        RequireGpu();
        long tooMuch = CudaDevice.Info.TotalMemory * 4;
        var e = Assert.Throws<DeviceMemoryException>(() => DeviceBuffer.Alloc(tooMuch, "a test buffer"));
        Assert.Contains("CUDA_ERROR_OUT_OF_MEMORY: out of device memory", e.Message);
        Assert.Contains("smaller --batch", e.Message);
        using var ok = DeviceBuffer.Alloc(1 << 20, "a small buffer");  // the device is still usable
        Assert.True(ok.Bytes == 1 << 20);
    }

    [Fact]
    public void TheDeviceIsDescribed()
    {
        RequireGpu();
        var i = CudaDevice.Info;
        Assert.Matches("^sm_[0-9]+$", i.Arch);
        Assert.True(i.Multiprocessors > 0 && i.TotalMemory > 0);
        Report("device.md", $"{i.Name}: {i.Arch}, {i.Multiprocessors} SMs, SM clock {i.ClockKhz / 1000} MHz, "
            + $"FP32 peak {i.Fp32Peak / 1e12:F1} TFLOP/s (SMs x 128 lanes x 2 x clock), driver {i.DriverVersion}, "
            + $"NVRTC {NvrtcCompiler.Version.Major}.{NvrtcCompiler.Version.Minor}\n");
    }
}

/// <summary>Runs everywhere: without a GPU the runtime says why in one sentence.</summary>
public sealed class NoGpuTests
{
    [Fact]
    public void WithoutAGpuTheRuntimeSaysWhyInOneSentence()
    {
        if (CudaDevice.Available) Assert.Skip("a GPU is present");
        var reason = CudaDevice.MissingReason!;
        Assert.False(string.IsNullOrWhiteSpace(reason));
        Assert.DoesNotContain('\n', reason);
        var e = Assert.Throws<IrException>(() => CudaDevice.Info);
        Assert.Equal(reason, e.Message);
        var m = ModelSource.Load("sw-layer", new ModelArgs { Channels = 8, Height = 9, Width = 9, Big = 7 }, withWeights: true);
        Assert.Equal(reason, Assert.Throws<IrException>(() => Driver.Compile(m, new CudaTarget())).Message);
    }
}
