using System.Globalization;
using System.Text.Json;
using ShiftWise.Runtime.Train;

namespace ShiftWise.Runtime.Tests;

/// <summary>
/// The training-recipe pieces against PyTorch 1.13: AdamW and SGD trajectories, the LR schedule, label-smoothed
/// cross-entropy (fixtures from tools/fixtures/gen_optim_fixtures.py), plus resume, the no-decay rule and accumulation.
/// </summary>
public sealed class OptimTests
{
    /// <summary>
    /// Relative error (‖ours − torch‖₂ / ‖torch‖₂ per tensor) allowed between our float32 optimizer and torch's float32
    /// one. Both do the same float32 operations in the same order, but torch's vectorised kernels may fuse
    /// <c>a + α·b</c> into an FMA (one rounding instead of two) and compute in a different association, so results
    /// may differ by a few ulps (float32 ulp ≈ 6e-8 relative) per step; 1e-6 allows that over 5 steps while catching
    /// semantic errors: a missing or misgrouped decay moves values by lr·wd = 2e-4 relative per step, a wrong bias
    /// correction by far more. Measured: AdamW parameters bit-equal, exp_avg 7.7e-8, SGD 2.7e-8.
    /// </summary>
    private const double OptimRelTol = 1e-6;

    /// <summary>Our double cross-entropy vs torch's float64 autograd: a few double roundings apart (measured: loss equal, gradient 1 ulp).</summary>
    private const double CeTol = 1e-12;

    private static readonly Lazy<JsonDocument> Doc = new(() => JsonDocument.Parse(
        File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "optim.json"))));

    private static JsonElement Root => Doc.Value.RootElement;

    private static float[] Floats(JsonElement e) => e.EnumerateArray().Select(x => (float)x.GetDouble()).ToArray();

    private static double[] Doubles(JsonElement e) =>
        e.EnumerateArray().Select(x => double.Parse(x.GetString()!, CultureInfo.InvariantCulture)).ToArray();

    private static Dictionary<string, int[]> Shapes() =>
        Root.GetProperty("shapes").EnumerateObject()
            .ToDictionary(p => p.Name, p => p.Value.EnumerateArray().Select(x => x.GetInt32()).ToArray());

    private static Dictionary<string, float[]> Named(JsonElement e) =>
        e.EnumerateObject().ToDictionary(p => p.Name, p => Floats(p.Value));

    private static Dictionary<string, float[]> Grads(int step) => Named(Root.GetProperty("grads")[step]);

    private static double RelErr(float[] ours, float[] torch)
    {
        double num = 0, den = 0;
        for (int i = 0; i < ours.Length; i++)
        {
            double d = (double)ours[i] - torch[i];
            num += d * d;
            den += (double)torch[i] * torch[i];
        }
        return Math.Sqrt(num / den);
    }

    private static Optimizer Make(string kind, JsonElement cfg)
    {
        double[] lrs = cfg.GetProperty("lrs").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        return kind == "adamw"
            ? new AdamW(Shapes(), lrs[0], cfg.GetProperty("beta1").GetDouble(), cfg.GetProperty("beta2").GetDouble(),
                cfg.GetProperty("eps").GetDouble(), cfg.GetProperty("weight_decay").GetDouble())
            : new Sgd(Shapes(), lrs[0], cfg.GetProperty("momentum").GetDouble(), cfg.GetProperty("weight_decay").GetDouble());
    }

    private static void RunSteps(string kind, Optimizer opt, Dictionary<string, float[]> p, int from, int to)
    {
        var lrs = Root.GetProperty(kind).GetProperty("lrs");
        for (int s = from; s < to; s++)
        {
            opt.LearningRate = lrs[s].GetDouble();
            opt.Step(p, Grads(s));
        }
    }

    [Theory]
    [InlineData("adamw")]
    [InlineData("sgd")]
    public void Optim_MatchesTorchTrajectoryAndState(string kind)
    {
        var cfg = Root.GetProperty(kind);
        var opt = Make(kind, cfg);
        var p = Named(Root.GetProperty("init"));
        var expected = cfg.GetProperty("params");
        for (int s = 0; s < expected.GetArrayLength(); s++)
        {
            RunSteps(kind, opt, p, s, s + 1);
            foreach (var (name, want) in Named(expected[s]))
            {
                double err = RelErr(p[name], want);
                Assert.True(err <= OptimRelTol, $"{kind} step {s + 1} {name}: relative error {err:E2}");
            }
        }
        Assert.Equal(expected.GetArrayLength(), opt.StepCount);
        var state = opt.SaveState();
        foreach (var param in cfg.GetProperty("state").EnumerateObject())
            foreach (var buf in param.Value.EnumerateObject())
            {
                double err = RelErr(state.Buffers[param.Name + "/" + buf.Name], Floats(buf.Value));
                Assert.True(err <= OptimRelTol, $"{kind} state {param.Name}/{buf.Name}: relative error {err:E2}");
            }
    }

    [Theory]
    [InlineData("adamw")]
    [InlineData("sgd")]
    public void Optim_ResumeAfterStep3IsBitIdentical(string kind)
    {
        var cfg = Root.GetProperty(kind);
        var straight = Named(Root.GetProperty("init"));
        RunSteps(kind, Make(kind, cfg), straight, 0, 5);

        var first = Make(kind, cfg);
        var p = Named(Root.GetProperty("init"));
        RunSteps(kind, first, p, 0, 3);
        var saved = first.SaveState();
        RunSteps(kind, first, Named(Root.GetProperty("init")), 0, 1); // later use of the old optimizer must not leak
        var resumed = Make(kind, cfg);
        resumed.LoadState(saved);
        Assert.Equal(3, resumed.StepCount);
        var copy = p.ToDictionary(kv => kv.Key, kv => (float[])kv.Value.Clone());
        RunSteps(kind, resumed, copy, 3, 5);
        foreach (var (name, want) in straight) Assert.Equal(want, copy[name]); // exact float equality
        AssertEveryElementMoved(p, copy, "steps 4-5 after the resume");
    }

    /// <summary>
    /// Each element of every parameter in <paramref name="after"/> differs from <paramref name="before"/>: the
    /// fixtures' gradients are random normals, never zero, so a step of either optimizer moves every element (an
    /// equality above would hold just as well if no step moved anything).
    /// </summary>
    private static void AssertEveryElementMoved(Dictionary<string, float[]> before, Dictionary<string, float[]> after,
        string when)
    {
        foreach (var (name, b) in before)
        {
            int same = b.Zip(after[name]).Count(x => x.First == x.Second);
            Assert.True(same == 0, $"{same} of {b.Length} elements of {name} did not move in {when}");
        }
    }

    [Fact]
    public void Optim_NoDecayPicksExactlyRank1AndBias()
    {
        var shapes = Shapes();
        var picked = shapes.Where(kv => Optimizer.NoDecay(kv.Key, kv.Value)).Select(kv => kv.Key).Order(StringComparer.Ordinal);
        Assert.Equal(["conv.bias", "norm.weight"], picked);
        Assert.False(Optimizer.NoDecay("grn.gamma", [1, 1, 1, 3])); // 4-D GRN γ decays (SPEC 6)
        Assert.False(Optimizer.NoDecay("grn.beta", [1, 1, 1, 3]));
        Assert.True(Optimizer.NoDecay("head.bias", [2, 3])); // by name, whatever the rank
        Assert.False(Optimizer.NoDecay("biasnet.weight", [2, 3]));
        var opt = new AdamW(shapes, weightDecay: 0.05);
        foreach (var (name, shape) in shapes)
            Assert.Equal(Optimizer.NoDecay(name, shape) ? 0f : 0.05f, opt.WeightDecayOf(name));
    }

    [Fact]
    public void Optim_AccumulatorStepsEveryNthMicroBatchOnTheSum()
    {
        var shapes = Shapes();
        var p = Named(Root.GetProperty("init"));
        var reference = p.ToDictionary(kv => kv.Key, kv => (float[])kv.Value.Clone());
        var acc = new GradientAccumulator(new AdamW(shapes), p, 4);
        Assert.Equal(0.25f, acc.LossScale);
        var refOpt = new AdamW(shapes);
        for (int round = 0; round < 2; round++)
        {
            var sum = shapes.ToDictionary(kv => kv.Key, kv => new float[p[kv.Key].Length]);
            for (int micro = 0; micro < 4; micro++)
            {
                var g = Grads(micro + round).ToDictionary(kv => kv.Key, kv => kv.Value.Select(x => x * acc.LossScale).ToArray());
                foreach (var (name, s) in sum)
                    for (int i = 0; i < s.Length; i++) s[i] += g[name][i];
                Assert.Equal(micro == 3, acc.Accumulate(g));
                if (micro < 3) Assert.Equal(reference["conv.weight"], p["conv.weight"]); // no step yet
            }
            var old = reference.ToDictionary(kv => kv.Key, kv => (float[])kv.Value.Clone());
            refOpt.Step(reference, sum);
            AssertEveryElementMoved(old, p, $"round {round + 1}");
            foreach (var (name, want) in reference) Assert.Equal(want, p[name]);
            Assert.All(acc.Sums.Values, s => Assert.All(s, x => Assert.Equal(0f, x)));
            Assert.Equal(0, acc.Pending);
        }
    }

    [Fact]
    public void Optim_LrScheduleMatchesNumpy()
    {
        var sc = Root.GetProperty("schedule");
        var small = new LrSchedule(sc.GetProperty("base").GetDouble(), sc.GetProperty("min").GetDouble(),
            sc.GetProperty("warmup").GetInt32(), sc.GetProperty("total").GetInt32());
        double[] want = Doubles(sc.GetProperty("values"));
        for (int s = 0; s < want.Length; s++) Assert.Equal(want[s], small.At(s), 1e-15 * want.Max());
        Assert.Equal(0.0, small.At(0));
        Assert.Equal(small.BaseLr, small.At(small.WarmupSteps - 1)); // linspace includes the endpoint
        Assert.Equal(small.BaseLr, small.At(small.WarmupSteps)); // cosine starts at base (i = 0)

        var recipe = LrSchedule.ShiftWiseRecipe;
        int[] steps = sc.GetProperty("recipe_steps").EnumerateArray().Select(x => x.GetInt32()).ToArray();
        double[] values = Doubles(sc.GetProperty("recipe_values"));
        for (int i = 0; i < steps.Length; i++) Assert.Equal(values[i], recipe.At(steps[i]), 1e-15 * 4e-3);
        Assert.Throws<ArgumentOutOfRangeException>(() => recipe.At(recipe.TotalSteps));
    }

    [Fact]
    public void Optim_SmoothedCrossEntropyMatchesTorchFloat64()
    {
        var ce = Root.GetProperty("ce");
        int k = ce.GetProperty("k").GetInt32();
        float[] logits = Floats(ce.GetProperty("logits"));
        int[] labels = ce.GetProperty("labels").EnumerateArray().Select(x => x.GetInt32()).ToArray();
        var r = CrossEntropy.SmoothedForwardBackward(logits, labels, k, ce.GetProperty("smoothing").GetDouble());
        double loss = double.Parse(ce.GetProperty("loss").GetString()!, CultureInfo.InvariantCulture);
        Assert.True(Math.Abs(r.Loss - loss) <= CeTol * Math.Max(1, Math.Abs(loss)), $"loss {r.Loss} vs {loss}");
        double[] grad = Doubles(ce.GetProperty("grad"));
        for (int i = 0; i < grad.Length; i++)
            Assert.True(Math.Abs(r.Gradient[i] - grad[i]) <= CeTol, $"grad[{i}] {r.Gradient[i]} vs {grad[i]}");
    }
}
