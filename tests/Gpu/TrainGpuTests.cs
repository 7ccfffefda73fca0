using ShiftWise.Frontend;
using ShiftWise.Frontend.IO;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.Runtime;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Runtime.Train;
using ShiftWise.Tests.Shared;

namespace ShiftWise.Gpu.Tests;

/// <summary>
/// The GPU trainer (<see cref="CudaTrainer"/>) on a real GPU with the grad fixtures' model (sw-v2, depths 1,1,1,1,
/// dims 16,24,32,48, kernels 11,9,7,5,3, batch 4 at 48²): its gradients against PyTorch's float64 autograd, a step
/// and update that repeat bit for bit, checkpoints that move between the CPU and the GPU trainer, and --check-finite.
/// Skipped, with the reason, where there is no GPU.
/// </summary>
public sealed class TrainGpuTests
{
    private static void RequireGpu()
    {
        if (!CudaDevice.Available) Assert.Skip(CudaDevice.MissingReason!);
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
    }

    private static LoadedModel Model(double smoothing = 0) => GradFixtureModel.Load(smoothing);

    private static Tensor X() => GradFixtureModel.X();

    private static float[] Xf() => X().ToDoubles().Select(v => (float)v).ToArray();

    private static int[] Labels() => GradFixtureModel.LabelInts();

    [Fact]
    public void GradientsOnTheGpuMatchPyTorchFloat64()
    {
        RequireGpu();
        var (loss, got) = Driver.Grad(Model(), X(), Labels(), "cuda");
        var want = SafeTensors.Read(Path.Combine(GradFixtureModel.Dir, "grads.safetensors"));
        double median = want.Where(kv => kv.Key != "loss").Select(kv => Norm(kv.Value.ToDoubles())).Order()
            .ElementAt(want.Count / 2);
        var rows = new List<string>();
        double worst = 0, worstZero = 0;
        foreach (var (name, w) in want)
        {
            var a = got[name].ToDoubles();
            var b = w.ToDoubles();
            double diff = Norm(a.Zip(b, (p, q) => p - q).ToArray()), nb = Norm(b);
            // analytically zero gradients (GRN of a 1x1 map and the like): measured against the median norm
            if (nb < 1e-12 * median) worstZero = Math.Max(worstZero, diff / median);
            else worst = Math.Max(worst, diff / nb);
            rows.Add($"| {name} | {(nb < 1e-12 * median ? diff / median : diff / nb):E2} |");
        }
        Write("train-grad-errors.md", $"# swc grad --device cuda vs PyTorch float64 on {CudaDevice.Info.Name}\n\n"
            + $"loss {loss:R}; worst relative L2 {worst:E2}; worst analytically zero {worstZero:E2}\n\n"
            + "| gradient | relative L2 |\n|---|---|\n" + string.Join("\n", rows) + "\n");
        Assert.True(worst <= 1e-5, $"worst gradient relative L2 {worst:E2} > 1e-5");
        Assert.True(worstZero <= 1e-6, $"an analytically zero gradient has {worstZero:E2} of the median norm");
    }

    [Fact]
    public void AStepAndUpdateRepeatBitForBit()
    {
        RequireGpu();
        var settings = new OptimizerSettings("adamw", 2e-3, 0.05);
        (Dictionary<string, float[]> Grads, Dictionary<string, Tensor> After) Once()
        {
            using var t = Driver.CompileTraining(Model(0.1), settings, "cuda");
            t.Step(Xf(), Labels(), 7);
            var g = t.Gradients();
            t.Update(2e-3);
            t.Step(Xf(), Labels(), 8);
            t.Update(1e-3);
            return (g, t.Weights());
        }
        var a = Once();
        var b = Once();
        foreach (var (k, v) in a.Grads) Assert.True(v.AsSpan().SequenceEqual(b.Grads[k]), $"gradient of {k} differs");
        foreach (var (k, v) in a.After)
        {
            Assert.True(v.ToDoubles().AsSpan().SequenceEqual(b.After[k].ToDoubles()), $"{k} differs after two steps");
        }
    }

    [Theory]
    [InlineData("cpu", "cuda")]
    [InlineData("cuda", "cpu")]
    public void ACheckpointOfOneTargetResumesOnTheOther(string first, string second)
    {
        RequireGpu();
        var settings = new OptimizerSettings("adamw", 2e-3, 0.05);
        using var a = Driver.CompileTraining(Model(0.1), settings, first);
        a.Step(Xf(), Labels(), 0);
        a.Update(2e-3);
        var weights = a.Weights();
        var state = a.SaveState();
        using var b = Driver.CompileTraining(Model(0.1), settings, second);
        b.Load(weights);
        b.LoadState(state);
        Assert.Equal(state.Step, b.SaveState().Step);
        foreach (var (k, v) in b.SaveState().Buffers)
        {
            Assert.True(v.AsSpan().SequenceEqual(state.Buffers[k]), $"optimizer state {k} did not move intact");
        }
        // the second step on both: the same within float32 summation order
        a.Step(Xf(), Labels(), 1);
        a.Update(1e-3);
        b.Step(Xf(), Labels(), 1);
        b.Update(1e-3);
        var wa = a.Weights();
        var wb = b.Weights();
        double worst = wa.Keys.Max(k => Error.RelL2(wb[k], wa[k]) is var e && double.IsNaN(e) ? 0 : e);
        Assert.True(worst <= 1e-5, $"{first} → {second}: weights after the resumed step differ by {worst:E2}");
    }

    [Fact]
    public void CheckFiniteNamesTheFirstNonFiniteNodeOfATrainingStep()
    {
        RequireGpu();
        var m = Model();
        var w = new Dictionary<string, Tensor>(m.Weights);
        var stem = m.Graph.Params.First(p => !p.Buffer && p.Type.Shape.Rank == 4).Name;
        var bad = (float[])w[stem].Cast(DType.F32).Data.Clone();
        bad[0] = float.PositiveInfinity;
        w[stem] = Tensor.Wrap(w[stem].Type with { DType = DType.F32 }, bad);
        using var t = Driver.CompileTraining(m with { Weights = w }, new OptimizerSettings("adamw", 1e-3, 0), "cuda");
        t.CheckFinite = true;
        var e = Assert.Throws<NonFiniteException>(() => t.Step(Xf(), Labels(), 0));
        Assert.Contains("node %", e.Message);
    }

    private static double Norm(double[] a) => Math.Sqrt(a.Sum(v => v * v));

    private static void Write(string file, string text)
    {
        if (Environment.GetEnvironmentVariable("SWC_GPU_RESULTS") is { Length: > 0 } dir)
        {
            File.WriteAllText(Path.Combine(dir, file), text);
        }
    }
}
