using ShiftWise.Runtime.Compile;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;
using ShiftWise.Runtime.Train;

namespace ShiftWise.Cli.Tests;

/// <summary>
/// The BatchNorm running statistics after one train-mode forward of Fixtures/grad's model against PyTorch's
/// (running.safetensors: momentum 0.1, running_var updated with the unbiased batch variance). `swc grad` writes only
/// the loss and the gradients, so this is checked where the statistics are computed: the CPU trainer's step (which
/// writes them into the BN buffers, as `swc train` keeps them) and the reference executor's train-mode batch_norm
/// (outputs 1 and 2), for the float32 graph `swc grad --device reference` runs and for the same graph in float64.
/// </summary>
public sealed class GradRunningStatsTests
{
    /// <summary>
    /// Bounds, relative L2 per tensor (no tensor is near zero: running means start N(0, 0.1²), variances U(0.5, 1.5)):
    /// cpu: float32 activations from float32 kernels, the statistics summed in double and stored as float32;
    /// measured worst 1.7e-7 (stages.3.0.large_kernel.bn_small.running_mean, median 3.3e-8), bound 1e-6 since the
    /// activations' summation order depends on the BLAS build, SIMD width and thread count.
    /// reference: float64 arithmetic on float32-rounded node results, stored as float32 (the graph's type), so about
    /// one float32 rounding (6e-8): measured 6.7e-8 (stages.3.0.norm.running_mean, median 2.8e-8), bound 2e-7.
    /// reference-f64: every value float64, like PyTorch; only summation order differs: measured 6.1e-16, bound 2e-15.
    /// A biased running variance differs by 0.1·var/(count − 1) per channel, count = 16 in the last stage (4 images
    /// of 2×2); momentum 0.9 instead of 0.1 moves both statistics by far more.
    /// </summary>
    [Theory]
    [InlineData("cpu", 1e-6)]
    [InlineData("reference", 2e-7)]
    [InlineData("reference-f64", 2e-15)]
    public void RunningStatisticsMatchPyTorch(string device, double bound)
    {
        var m = GradFixture.Load();
        var bns = m.Graph.Nodes.Where(n => n.Op is BatchNorm { Mode: Mode.Train }).ToList();
        var got = device == "cpu" ? OnCpu(m) : OnReference(m, bns, device == "reference-f64");
        var want = GradFixture.Running();
        Assert.Equal(want.Keys.Order(StringComparer.Ordinal), got.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(2 * bns.Count, want.Count);
        var errors = want.Select(kv =>
        {
            Assert.Equal(kv.Value.Shape, got[kv.Key].Shape);
            return (Name: kv.Key, Err: GradFixture.RelL2(got[kv.Key].ToDoubles(), kv.Value.ToDoubles()));
        }).OrderByDescending(e => e.Err).ToList();
        var worst = errors[0];
        Assert.True(worst.Err <= bound, $"{device}: {worst.Name} relative L2 {worst.Err:e2} > {bound:e0} "
            + $"(median {errors[errors.Count / 2].Err:e2})");
    }

    /// <summary>One CPU trainer step; the BN buffers afterwards.</summary>
    private static Dictionary<string, Tensor> OnCpu(Frontend.LoadedModel m)
    {
        var t = Driver.CompileTraining(m);
        var x = GradFixture.X().ToDoubles().Select(v => (float)v).ToArray();
        var labels = GradFixture.Labels().ToDoubles().Select(v => (int)v).ToArray();
        t.Step(x, labels, 0);
        return t.Weights().Where(kv => IsRunning(kv.Key)).ToDictionary(StringComparer.Ordinal);
    }

    /// <summary>The reference forward: each train-mode BN's outputs 1 and 2, by its running_mean/var name.</summary>
    private static Dictionary<string, Tensor> OnReference(Frontend.LoadedModel m, List<Node> bns, bool f64)
    {
        var g = f64 ? GradFixture.InFloat64(m.Graph) : m.Graph;
        var env = ReferenceExecutor.Run(g, m.Weights, GradFixture.Inputs(), keepAll: true);
        var r = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var n in bns)
        {
            Assert.True(IsRunning(n.Inputs[3]) && IsRunning(n.Inputs[4]), n.Describe());
            r.Add(n.Inputs[3], env[n.Outputs[1]]);
            r.Add(n.Inputs[4], env[n.Outputs[2]]);
        }
        return r;
    }

    private static bool IsRunning(string name) => name.EndsWith(".running_mean", StringComparison.Ordinal)
        || name.EndsWith(".running_var", StringComparison.Ordinal);
}
