using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Text;

namespace ShiftWise.Passes.Tests;

/// <summary>The inference pipeline on whole ShiftWise_v2 networks (float64, reference executor).</summary>
public sealed class PipelineTests
{
    private static (Model, Dictionary<string, Tensor>) SmallV2(int seed = 0, int batch = 2)
    {
        var o = new ShiftWiseV2Options
        {
            InChans = 3, NumClasses = 10, Depths = [1, 1, 2, 1], Dims = [16, 32, 48, 64], KernelSize = [13, 11, 7, 5, 3],
            Batch = batch, Height = 48, Width = 40, DropPathRate = 0.1,
        };
        var m = ShiftWiseV2.Build(o, dtype: DType.F64);
        var w = WeightInit.Draw(m, InitScheme.Lively, (uint)seed);
        PassTestUtil.ZeroSubkernels(w, new Random(seed), 0.3);
        return (m, w);
    }

    [Fact]
    public void InferencePipelineFusesEveryBlockAndKeepsTheLogits()
    {
        var (m, w) = SmallV2();
        var ctx = PassTestUtil.CheckPreserves(m.Graph, w, Pipelines.Get("inference"), tol: 1e-10);
        var g = ctx.Graph;
        Assert.Equal(5, PassTestUtil.Count<FusedShiftWise>(g));
        Assert.Equal(0, PassTestUtil.Count<BatchNorm>(g));
        Assert.Equal(0, PassTestUtil.Count<ShiftAdd>(g));
        Assert.Equal(0, PassTestUtil.Count<Linear>(g));
        Assert.Equal(0, PassTestUtil.Count<DropPath>(g));
        // per block: pwconv1 (prologue permute, GELU, GRN), pwconv2 (NCHW out, BN and layer scale folded, residual),
        // the two SE GEMMs; plus the head. Stage 0 (12×10 positions, 16 channels) folds pwconv1 and pwconv2 into one
        // gemm_grn_fold (fold-grn-apply: P ≥ O); the later stages (P < O) keep the pair
        Assert.Equal(5 * 4 + 1 - 2, PassTestUtil.Count<Gemm>(g));
        Assert.Equal(1, PassTestUtil.Count<GemmGrnFold>(g));
        Assert.Equal(4, g.Nodes.Count(n => n.Op is Gemm { InNchw: true, Act: GemmAct.Gelu, HasGrn: true }));
        Assert.Equal(4, g.Nodes.Count(n => n.Op is Gemm { OutNchw: true, HasResidual: true }));
        Assert.Equal(0, PassTestUtil.Count<Permute>(g));
        // every remaining parameter is used, and the graph survives a print/parse round trip
        Assert.Equal(g, SwirParser.Parse(SwirPrinter.Print(g)));
    }

    public static TheoryData<string> InferencePasses() => new(Pipelines.Get("inference").Select(p => p.Name));

    [Theory]
    [MemberData(nameof(InferencePasses))]
    public void DisablingAnyOnePassStillGivesTheSameLogits(string disabled)
    {
        var (m, w) = SmallV2(seed: 3, batch: 1);
        var x = PassTestUtil.Input(m.Graph, 4);
        var before = IR.Reference.ReferenceExecutor.Run(m.Graph, w, x);
        var ctx = new PassContext(m.Graph, w);
        var records = new PassManager(Pipelines.Get("inference"), new PassOptions { Disabled = new HashSet<string> { disabled } }).Run(ctx);
        Assert.True(records.Single(r => r.Name == disabled).Disabled);
        var after = IR.Reference.ReferenceExecutor.Run(ctx.Graph, ctx.Weights, x);
        var o = m.Graph.Outputs[0];
        Assert.True(PassTestUtil.RelL2(after[o], before[o]) <= 1e-10, $"without {disabled}");
    }

    [Fact]
    public void PrintIrAfterAllWritesFilesThatParseBack()
    {
        var (m, w) = SmallV2(batch: 1);
        var dir = Directory.CreateTempSubdirectory("swc-ir-").FullName;
        var ctx = new PassContext(m.Graph, w);
        var passes = Pipelines.Get("inference");
        new PassManager(passes, new PassOptions { PrintAfterAll = true, DumpDir = dir }).Run(ctx);
        var files = Directory.GetFiles(dir).Order().ToArray();
        Assert.Equal(passes.Count, files.Length);
        Assert.EndsWith("001_merge-parallel-convs.swir", files[0]);
        foreach (var f in files) SwirParser.ParseFile(f);
        Assert.Equal(ctx.Graph, SwirParser.ParseFile(files[^1]));
    }

    [Fact]
    public void UnknownPassNameIsRejected()
    {
        var e = Assert.Throws<IrException>(() => new PassManager(Pipelines.Get("inference"),
            new PassOptions { Disabled = new HashSet<string> { "fold-bn" } }));
        Assert.Contains("unknown pass 'fold-bn'", e.Message);
        Assert.Contains("fold-batch-norm", e.Message);
    }

    [Fact]
    public void APassThatBreaksTheGraphIsCaughtByTheVerifier()
    {
        var (m, w) = SmallV2(batch: 1);
        var ctx = new PassContext(m.Graph, w);
        var e = Assert.Throws<IrException>(() => new PassManager([new Vandal()]).Run(ctx));
        Assert.Contains("pass vandal left an invalid graph", e.Message);
    }

    /// <summary>Drops the first node: its outputs become undefined.</summary>
    private sealed class Vandal : Pass
    {
        public override string Name => "vandal";

        public override bool Run(PassContext ctx)
        {
            ctx.Graph = ctx.Graph with { Nodes = ctx.Graph.Nodes.Skip(1).ToArray() };
            return true;
        }
    }
}
