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
        var e = new TuneSearch { CompileTimeout = TimeSpan.FromMilliseconds(300), Repeats = 3 }.Run(Key, "k",
            [C(0), C(1), C(2), C(3), C(4)], 60, c => c["id"] switch
            {
                0 => fake.Trial(10),
                1 => fake.Trial(5),
                2 => fake.Trial(40), // 8x the best so far: dropped after its first sample
                3 => throw new IrException("ptxas: too many resources"),
                _ => Slow(fake),
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
        // the timed-out preparation finishes in the background and is disposed of when it lands
        for (int i = 0; i < 200 && (Volatile.Read(ref fake.Created) < 4 || Volatile.Read(ref fake.Disposed) < fake.Created); i++)
        {
            Thread.Sleep(50);
        }
        Assert.Equal(fake.Created, fake.Disposed);
        Assert.Equal(4, fake.Created);
    }

    private static TuneTrial Slow(Fake f)
    {
        Thread.Sleep(1000);
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
        Assert.True(e.BestMs <= e.DefaultMs);
    }

    [Fact]
    public void TheConfirmationAlternatesAndUsesItsOwnMedians()
    {
        var order = new List<int>();
        var fake = new Fake();
        var e = new TuneSearch { Repeats = 1, ConfirmRounds = 3 }.Run(Key, "k", [C(0), C(1)], 60, c =>
        {
            int id = c["id"];
            return fake.Trial(() =>
            {
                order.Add(id);
                return id == 0 ? 10 : 4;
            });
        });
        // warm-up + 1 sample each, then three alternating rounds
        Assert.Equal([0, 0, 1, 1, 0, 1, 0, 1, 0, 1], order);
        Assert.Equal(4, e.BestMs);
    }

    [Fact]
    public void ASpentBudgetStillMeasuresTheDefault()
    {
        var fake = new Fake();
        var e = new TuneSearch { Repeats = 3 }.Run(Key, "k", [C(0), C(1), C(2)], 0, c => fake.Trial(1));
        Assert.Equal(0, e.Best["id"]);
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
        var cm = CompiledModel.ForCpu(m, tuning: CpuTuning.Off);
        var node = cm.Graph.Nodes.First(n => n.Op is IR.Ops.FusedShiftWise);
        var (g, w) = CudaTuner.Copies(node, cm.Graph.ValueTypes(), cm.Weights, 3);
        Assert.Equal(3, g.Nodes.Count);
        Assert.Equal(3, g.Inputs.Count);
        Assert.Equal(node.Inputs.Count - 1, g.Params.Count);
        Assert.All(g.Nodes, n => Assert.Equal(node.Inputs.Skip(1), n.Inputs.Skip(1)));
        Assert.Equal(g.Params.Select(p => p.Name).Order(), w.Keys.Order());
        var x = KernelHarness.Rand(new Random(1), g.Inputs[0].Type.Shape);
        var ys = IR.Reference.ReferenceExecutor.Run(g, w, g.Inputs.ToDictionary(i => i.Name, _ => x));
        var y0 = cm.Run(x).ToDoubles();
        Assert.All(g.Outputs, o => Assert.Equal(ys[o].ToDoubles().Length, y0.Length));
    }
}
