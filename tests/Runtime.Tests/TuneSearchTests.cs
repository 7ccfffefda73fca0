using ShiftWise.Runtime.Cpu;
using ShiftWise.Runtime.Compile;
using ShiftWise.IR;
using ShiftWise.Runtime.Tune;
using Xunit;

namespace ShiftWise.Runtime.Tests;

/// <summary>The search both tuners share, on candidates with known times (no kernels involved).</summary>
public sealed class TuneSearchTests
{
    private static readonly TuneKey Key = new("s", "d", "c", "r", "n", "g");

    private static IReadOnlyDictionary<string, int> C(int id) => new Dictionary<string, int> { ["id"] = id };

    private sealed class Fake
    {
        public int Created, Disposed;

        public TuneTrial Trial(double ms) => Trial(() => ms);

        public TuneTrial Trial(Func<double> sample)
        {
            Interlocked.Increment(ref Created);
            return new TuneTrial(sample, new Disposer(() => Interlocked.Increment(ref Disposed)));
        }
    }

    private sealed class Disposer(Action a) : IDisposable
    {
        public void Dispose() => a();
    }

    [Fact]
    public void ThePickIsTheFastestAndEveryCandidateIsAccountedFor()
    {
        var fake = new Fake();
        var started = new List<int>();
        // the slow candidate's compile waits for a gate opened only after the search, so it times out whatever the
        // machine's speed; the others return at once, far inside the 5 s limit
        using var gate = new ManualResetEventSlim(false);
        var e = new TuneSearch { CompileTimeout = TimeSpan.FromSeconds(5), Repeats = 3 }.Run(Key, "k",
            [C(0), C(1), C(2), C(3), C(4)], 60, c => c["id"] switch
            {
                0 => fake.Trial(10),
                1 => fake.Trial(5),
                2 => fake.Trial(40), // 8x the best so far: dropped after its first sample
                3 => throw new IrException("ptxas: too many resources"),
                _ => Slow(fake, gate),
            }, (i, n) => started.Add(i));
        Assert.Equal(1, e.Best["id"]);
        Assert.Equal(5, e.BestMs);
        Assert.Equal(10, e.DefaultMs);
        Assert.Equal([1, 2, 3, 4, 5], started);
        Assert.Equal(5, e.Times.Count);
        Assert.Equal(10, e.Times[0].Ms);
        Assert.Null(e.Times[2].Ms);
        Assert.StartsWith("stopped early", e.Times[2].Note);
        Assert.Equal("failed: ptxas: too many resources", e.Times[3].Note);
        Assert.StartsWith("compile timed out", e.Times[4].Note);
        Assert.Equal(3, Volatile.Read(ref fake.Created));  // the slow one has not landed yet
        gate.Set();
        // the timed-out preparation finishes in the background and is disposed of when it lands
        for (int i = 0; i < 1200 && (Volatile.Read(ref fake.Created) < 4 || Volatile.Read(ref fake.Disposed) < fake.Created); i++)
        {
            Thread.Sleep(50);
        }
        Assert.Equal(fake.Created, fake.Disposed);
        Assert.Equal(4, fake.Created);
    }

    [Theory]
    [InlineData(new double[] { 10, 6, 8 }, 1)]
    [InlineData(new double[] { 10, 8, 6 }, 2)]
    [InlineData(new double[] { 6, 10, 8 }, 0)]
    public void ThePickIsTheFastestWhereverItStands(double[] ms, int fastest)
    {
        int samples = 0;
        var e = new TuneSearch { Repeats = 3, ConfirmRounds = 9 }.Run(Key, "k", [C(0), C(1), C(2)], 60,
            c => new TuneTrial(() =>
            {
                samples++;
                return ms[c["id"]];
            }));
        Assert.Equal(fastest, e.Best["id"]);
        Assert.Equal(ms[fastest], e.BestMs);
        Assert.Equal(ms[0], e.DefaultMs);
        Assert.Equal(ms.Select(v => (double?)v), e.Times.Select(t => t.Ms));
        // a warm-up and 3 samples per candidate, and 9 rounds of both when a candidate beat the default
        Assert.Equal(3 * 4 + (fastest == 0 ? 0 : 2 * 9), samples);
    }

    private static TuneTrial Slow(Fake f, ManualResetEventSlim gate)
    {
        gate.Wait(TimeSpan.FromMinutes(5));
        return f.Trial(1);
    }

    [Theory]
    [InlineData(9.9, 0)] // 1% faster: within the noise, the default stays
    [InlineData(9.0, 1)] // 10% faster: taken
    public void AWinnerMustBeatTheDefaultClearly(double ms, int expected)
    {
        var fake = new Fake();
        var e = new TuneSearch { Repeats = 3 }.Run(Key, "k", [C(0), C(1)], 60, c => fake.Trial(c["id"] == 0 ? 10 : ms));
        Assert.Equal(expected, e.Best["id"]);
        // each time is its own candidate's: the default's 10, and the pick's (the default's again when it stays)
        Assert.Equal(10, e.DefaultMs);
        Assert.Equal(expected == 1 ? ms : 10, e.BestMs);
        Assert.Equal(new double?[] { 10, ms }, e.Times.Select(t => t.Ms));
    }

    [Fact]
    public void TheConfirmationAlternatesAndUsesItsOwnMedians()
    {
        var order = new List<int>();
        var fake = new Fake();
        // the search sees 10 and 4 ms, the confirmation 12 and 5 ms (a machine that slowed down meanwhile)
        var e = new TuneSearch { Repeats = 1, ConfirmRounds = 3 }.Run(Key, "k", [C(0), C(1)], 60, c =>
        {
            int id = c["id"];
            return fake.Trial(() =>
            {
                order.Add(id);
                bool confirming = order.Count(i => i == id) > 2;
                return id == 0 ? (confirming ? 12 : 10) : (confirming ? 5 : 4);
            });
        });
        // warm-up + 1 sample each, then three alternating rounds
        Assert.Equal([0, 0, 1, 1, 0, 1, 0, 1, 0, 1], order);
        Assert.Equal(1, e.Best["id"]);
        Assert.Equal(5, e.BestMs);
        Assert.Equal(12, e.DefaultMs);
        Assert.Equal(new double?[] { 10, 4 }, e.Times.Select(t => t.Ms)); // the search's medians stay as measured
    }

    [Fact]
    public void AWinnerTheConfirmationDoesNotBearOutLeavesTheDefaultWithItsConfirmedTime()
    {
        var fake = new Fake();
        var n = new int[2];
        // 4 ms against 10 in the search, but 9.95 against 10.1 in the confirmation: within 2%, the default stays
        var e = new TuneSearch { Repeats = 1, ConfirmRounds = 3 }.Run(Key, "k", [C(0), C(1)], 60, c =>
        {
            int id = c["id"];
            return fake.Trial(() => ++n[id] <= 2 ? (id == 0 ? 10 : 4) : (id == 0 ? 10.1 : 9.95));
        });
        Assert.Equal(0, e.Best["id"]);
        Assert.Equal(10.1, e.DefaultMs);
        Assert.Equal(10.1, e.BestMs);
        Assert.Equal(new double?[] { 10, 4 }, e.Times.Select(t => t.Ms));
    }

    [Fact]
    public void ASpentBudgetStillMeasuresTheDefault()
    {
        var fake = new Fake();
        var e = new TuneSearch { Repeats = 3 }.Run(Key, "k", [C(0), C(1), C(2)], 0, c => fake.Trial(1));
        Assert.Equal(0, e.Best["id"]);
        Assert.Equal(1, e.BestMs);
        Assert.Equal(1, e.DefaultMs);
        Assert.Equal(1, fake.Created);
        Assert.All(e.Times.Skip(1), t => Assert.Equal(TuneSearch.BudgetSpent, t.Note));
    }

    [Fact]
    public void AFailingDefaultIsAnErrorNamingTheKernel()
    {
        var ex = Assert.Throws<IrException>(() => new TuneSearch().Run(Key, "sw_fused_x", [C(0)], 60,
            _ => throw new ArgumentException("bad tile")));
        Assert.Contains("sw_fused_x", ex.Message);
        Assert.Contains("bad tile", ex.Message);
    }

    [Fact]
    public void CopiesOfALayerShareItsParametersAndTakeSeparateInputs()
    {
        var m = Frontend.ModelSource.Load("sw-layer", new Frontend.ModelArgs { Channels = 8, Height = 10, Width = 10, Big = 7 },
            withWeights: true);
        var cm = Driver.Compile(m, new CpuTarget(), new CompileOptions { Tuning = CpuTuning.Off });
        var node = cm.Graph.Nodes.First(n => n.Op is IR.Ops.FusedShiftWise);
        var (g, w) = CudaTuner.Copies(node, cm.Graph.ValueTypes(), cm.Weights, 3);
        Assert.Equal(3, g.Nodes.Count);
        Assert.Equal(3, g.Inputs.Count);
        Assert.Equal(node.Inputs.Count - 1, g.Params.Count);
        Assert.All(g.Nodes, n => Assert.Equal(node.Inputs.Skip(1), n.Inputs.Skip(1)));
        Assert.Equal(g.Params.Select(p => p.Name).Order(), w.Keys.Order());
        // the compiled layer is the one node, so copy c on input x_c must give what the layer gives on x_c
        Assert.Equal(node.Inputs[0], cm.Graph.Inputs[0].Name);
        Assert.Equal(node.Outputs[0], Assert.Single(cm.Graph.Outputs));
        var rng = new Random(1);
        var xs = g.Inputs.ToDictionary(i => i.Name, i => KernelHarness.Rand(rng, i.Type.Shape));
        var ys = IR.Reference.ReferenceExecutor.Run(g, w, xs);
        for (int c = 0; c < 3; c++)
        {
            // the float32 CPU kernel against the float64 reference: KernelHarness.Tol (1e-5 relative L2, argued there;
            // measured 1.1e-7); a copy reading another copy's input would be off by order 1
            double err = KernelHarness.RelL2(ys[g.Outputs[c]].ToDoubles(), cm.Run(xs[g.Inputs[c].Name]).ToDoubles());
            Assert.True(err <= KernelHarness.Tol, $"copy {c}: relative L2 {err:e2} from the compiled layer");
        }
    }
}
