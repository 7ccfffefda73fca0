using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Passes.Tests;

/// <summary>
/// The activation memory plan: buffers live at the same time never share bytes, and every buffer lives from its
/// definition to its last reader, checked against readers computed from the graph without the plan.
/// </summary>
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
        CheckLifetimes(g, plan);
        return plan;
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void LifetimesCoverEveryReaderOfSwLayers(int seed)
    {
        var (m, w) = PassTestUtil.RandomLayer(seed);
        CheckLifetimes(m.Graph, MemoryPlan.Of(m.Graph));
        var g = PassTestUtil.CheckPreserves(m.Graph, w, Pipelines.Get("inference")).Graph;
        CheckLifetimes(g, MemoryPlan.Of(g));
    }

    public static TheoryData<int> DagSeeds() => new(Enumerable.Range(0, 40));

    [Theory]
    [MemberData(nameof(DagSeeds))]
    public void LifetimesCoverEveryReaderOfRandomGraphs(int seed)
    {
        var g = RandomDag(seed);
        CheckPlan(g);
    }

    [Fact]
    public void TheRandomGraphsHoldViewsTwoOutputNodesAndViewOutputs()
    {
        // the lifetime checks above are only as good as the shapes the generator makes
        var graphs = Enumerable.Range(0, 40).Select(RandomDag).ToList();
        var plans = graphs.Select(MemoryPlan.Of).ToList();
        Assert.Contains(plans, p => p.Aliases.Count > 0);
        // a reshape of a view (the plan makes it a buffer of its own: a view's view is not an alias)
        Assert.Contains(graphs.Zip(plans),
            gp => gp.First.Nodes.Any(n => n.Op is Reshape && gp.Second.Aliases.ContainsKey(n.Inputs[0])));
        Assert.Contains(graphs, g => g.Nodes.Any(n => n.Outputs.Count == 2));
        Assert.Contains(graphs.Zip(plans), gp => gp.First.Outputs.Any(gp.Second.Aliases.ContainsKey));
    }

    [Theory]
    [InlineData("inference")]
    [InlineData("training")]
    public void LifetimesCoverEveryReaderOfTheSmallV2AfterThePipeline(string pipeline)
    {
        var o = new ShiftWiseV2Options
        {
            Depths = [1, 1, 1, 1], Dims = [8, 16, 16, 32], KernelSize = [7, 5, 5, 3, 3], Height = 24, Width = 24,
            NumClasses = 5, Batch = 2,
        };
        var m = ShiftWiseV2.Build(o, "sw_v2", training: pipeline == "training" ? new TrainingForm(0.1, 3) : null);
        var ctx = new PassContext(m.Graph, WeightInit.Draw(m, InitScheme.Lively, 1));
        new PassManager(Pipelines.Get(pipeline)).Run(ctx);
        if (pipeline == "training") Assert.Contains(ctx.Graph.Nodes, n => n.Op is Grad);
        CheckPlan(ctx.Graph);
    }

    /// <summary>
    /// Checks the plan's lifetimes against the graph's readers, found here by walking the nodes in order: a value is
    /// read by every node that takes it or a view of it (a view is what the plan lists as an alias; each must be a
    /// reshape or an eval drop path of what it names), and a graph output, or a view that is one, is read after the
    /// last node (index Nodes.Count). Every buffer must be placed from its defining node to at least its last reader,
    /// and two buffers whose true intervals overlap (an output is written while the node's inputs are read, so
    /// intervals are closed) must not share a byte.
    /// </summary>
    private static void CheckLifetimes(Graph g, MemoryPlan plan)
    {
        var def = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < g.Nodes.Count; i++)
        {
            foreach (var o in g.Nodes[i].Outputs) def[o] = i;
        }
        foreach (var (view, of) in plan.Aliases)
        {
            var n = g.Nodes[def[view]];
            Assert.True(n.Op is Reshape or DropPath { Mode: Mode.Eval },
                $"%{view} is an alias but {n.Describe()} is not a view");
            Assert.Equal(of, n.Inputs[0]);
        }
        string Buffer(string v) => plan.Aliases.TryGetValue(v, out var of) ? Buffer(of) : v;
        var lastRead = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < g.Nodes.Count; i++)
        {
            var n = g.Nodes[i];
            if (plan.Aliases.ContainsKey(n.Outputs[0])) continue; // a view runs nothing and reads nothing
            foreach (var v in n.Inputs.Where(def.ContainsKey)) lastRead[Buffer(v)] = i;
        }
        foreach (var o in g.Outputs.Where(def.ContainsKey)) lastRead[Buffer(o)] = g.Nodes.Count;

        var slots = plan.Slots.ToDictionary(s => s.Value, StringComparer.Ordinal);
        Assert.Equal(plan.Slots.Count, slots.Count);
        var buffers = def.Keys.Where(v => !plan.Aliases.ContainsKey(v)).ToHashSet(StringComparer.Ordinal);
        Assert.True(buffers.SetEquals(slots.Keys), "the slots are not exactly the node outputs that are not views");
        var live = new Dictionary<string, (int First, int Last)>(StringComparer.Ordinal);
        var types = g.ValueTypes();
        foreach (var v in buffers)
        {
            int first = def[v], last = Math.Max(first, lastRead.GetValueOrDefault(v, first));
            live[v] = (first, last);
            var s = slots[v];
            Assert.True(s.First <= first && s.Last >= last,
                $"%{v}: defined at node {first} and last read at {last} (of {g.Nodes.Count}), "
                + $"but the plan keeps it for [{s.First}, {s.Last}]");
            Assert.True(s.Bytes >= types[v].Shape.Elements * types[v].DType.Size(),
                $"%{v}: its slot is smaller than the value");
        }
        var all = plan.Slots;
        for (int i = 0; i < all.Count; i++)
        {
            for (int j = i + 1; j < all.Count; j++)
            {
                var (a, b) = (live[all[i].Value], live[all[j].Value]);
                bool together = a.First <= b.Last && b.First <= a.Last;
                var (si, sj) = (all[i], all[j]);
                bool shared = si.Offset < sj.Offset + sj.Bytes && sj.Offset < si.Offset + si.Bytes;
                Assert.False(together && shared, $"%{si.Value} {a} and %{sj.Value} {b} live together and share bytes");
            }
        }
    }

    /// <summary>
    /// A random graph of elementwise nodes, views (reshapes, eval drop paths, views of views), two-output nodes
    /// (the gradient of a product) and outputs nobody reads, each node reading values from anywhere before it, so
    /// lifetimes are long, short, and end at views; random values (views included) are graph outputs.
    /// </summary>
    private static Graph RandomDag(int seed)
    {
        var rng = new Random(seed);
        var f32 = new TensorType(DType.F32, new Shape(2, 3, 4, 5));
        var b = new GraphBuilder("dag" + seed);
        var values = new List<Value> { b.Input("x", f32), b.Param("p", f32) };
        Value Pick(Shape s)
        {
            var same = values.Where(v => v.Shape.Equals(s)).ToList();
            return same[rng.Next(same.Count)];
        }
        int nodes = rng.Next(5, 30);
        for (int i = 0; i < nodes; i++)
        {
            var shape = rng.Next(4) == 0 ? new Shape(6, 20) : f32.Shape;
            if (!values.Any(v => v.Shape.Equals(shape))) shape = f32.Shape;
            switch (rng.Next(6))
            {
                case 0:
                    values.Add(b.Apply1(new Unary(UnaryKind.Relu), "relu", Pick(shape)));
                    break;
                case 1:
                {
                    var kind = rng.Next(2) == 0 ? BinaryKind.Add : BinaryKind.Mul;
                    values.Add(b.Apply1(new Binary(kind), "bin", Pick(shape), Pick(shape)));
                    break;
                }
                case 2:
                {
                    bool flat = rng.Next(2) == 0 && values.Any(u => u.Shape.Rank == 2);
                    var v = Pick(flat ? new Shape(6, 20) : f32.Shape);
                    var to = v.Shape.Rank == 2 ? Vec.Of(2, 3, 4, 5) : Vec.Of(6, 20);
                    values.Add(b.Apply1(new Reshape(to), "view", v));
                    break;
                }
                case 3:
                    values.Add(b.Apply1(new DropPath(0.5, Mode.Eval, 1), "drop", Pick(f32.Shape)));
                    break;
                case 4:
                {
                    var (x, y) = (Pick(shape), Pick(shape));
                    var prod = b.Apply1(new Binary(BinaryKind.Mul), "prod", x, y);
                    var g = Pick(shape);
                    values.Add(prod);
                    // two outputs: an unused first or second output has a one-node lifetime
                    var grad = new Grad(new Binary(BinaryKind.Mul), Vec.Of(0, 1), Vec.Of(0));
                    values.AddRange(b.Apply(grad, "dprod", x, y, prod, g));
                    break;
                }
                default:
                    values.Add(b.Apply1(new Unary(UnaryKind.Gelu), "gelu", Pick(shape)));
                    break;
            }
        }
        var nodeOutputs = values.Skip(2).ToList();
        b.Output([.. nodeOutputs.Where(_ => rng.Next(4) == 0).DefaultIfEmpty(nodeOutputs[^1])]);
        return b.Build();
    }
}
