using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;

namespace ShiftWise.Passes.Tests;

public sealed class MemoryPlanTests
{
    public static TheoryData<int> Seeds() => new(Enumerable.Range(0, 6));

    [Theory]
    [MemberData(nameof(Seeds))]
    public void BuffersLiveAtTheSameTimeNeverShareBytes(int seed)
    {
        var (m, w) = PassTestUtil.RandomLayer(seed);
        var g = seed % 2 == 0 ? m.Graph : PassTestUtil.CheckPreserves(m.Graph, w, Pipelines.Get("inference")).Graph;
        CheckPlan(g);
    }

    [Fact]
    public void SmallV2BeforeAndAfterThePipeline()
    {
        var o = new ShiftWiseV2Options { Depths = [1, 1, 2, 1], Dims = [16, 32, 48, 64], KernelSize = [13, 11, 7, 5, 3], Height = 32, Width = 32 };
        var m = ShiftWiseV2.Build(o, dtype: DType.F64);
        var plan = CheckPlan(m.Graph);
        Assert.True(plan.ArenaBytes < plan.NoReuseBytes / 4, "reuse should shrink a deep network's activations a lot");
        var ctx = new PassContext(m.Graph, WeightInit.Draw(m, InitScheme.Lively, 1));
        new PassManager(Pipelines.Get("inference")).Run(ctx);
        CheckPlan(ctx.Graph);
    }

    private static MemoryPlan CheckPlan(Graph g)
    {
        var plan = MemoryPlan.Of(g);
        var s = plan.Slots;
        for (int i = 0; i < s.Count; i++)
        {
            Assert.Equal(0, s[i].Offset % MemoryPlan.Alignment);
            for (int j = i + 1; j < s.Count; j++)
            {
                bool timeOverlap = s[i].First <= s[j].Last && s[j].First <= s[i].Last;
                bool byteOverlap = s[i].Offset < s[j].Offset + s[j].Bytes && s[j].Offset < s[i].Offset + s[i].Bytes;
                Assert.False(timeOverlap && byteOverlap, $"{s[i].Value} and {s[j].Value} overlap");
            }
        }
        // every node output is a buffer or a view of one, and every buffer is live until its last reader
        var planned = s.Select(x => x.Value).Concat(plan.Aliases.Keys).ToHashSet();
        Assert.All(g.Nodes.SelectMany(n => n.Outputs), v => Assert.Contains(v, planned));
        Assert.InRange(plan.ArenaBytes, plan.LowerBound, plan.NoReuseBytes);
        return plan;
    }
}
