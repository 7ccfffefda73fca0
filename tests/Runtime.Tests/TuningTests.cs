using ShiftWise.Runtime.Cpu;
using ShiftWise.Runtime.Compile;
using ShiftWise.CodegenCpu;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes.Lowering;
using ShiftWise.Runtime.Tune;
using Xunit;

namespace ShiftWise.Runtime.Tests;

/// <summary>
/// The tuning cache (keys, corruption, merging), the CPU tuner on a small SW layer, and what an executor binds for a
/// cache entry.
/// </summary>
public sealed class TuningTests
{
    private static readonly TuneKey Base = new("spec", "device", "cc", "driver", "compiler", "codegen");

    private static string TempFile() => Path.Combine(Directory.CreateTempSubdirectory("swc-tune-").FullName, "cpu-test.json");

    private static TuneEntry Entry(TuneKey key, int rb = 2) => new(key, "sw_kernel",
        new Dictionary<string, int> { ["lowering"] = 0, ["row_block"] = rb }, 1.5,
        new Dictionary<string, int> { ["lowering"] = 0, ["row_block"] = 2 }, 2.0,
        [new Dictionary<string, int> { ["lowering"] = 0, ["row_block"] = 2 }],
        [new TuneTime(new Dictionary<string, int> { ["lowering"] = 0, ["row_block"] = 2 }, 2.0),
            new TuneTime(new Dictionary<string, int> { ["lowering"] = 1 }, null, "stopped early")]);

    [Fact]
    public void TheKeyChangesWhenAnyPartChanges()
    {
        var variants = new[]
        {
            Base with { SpecHash = "spec2" }, Base with { Device = "device2" }, Base with { ComputeCapability = "cc2" },
            Base with { Driver = "driver2" }, Base with { Compiler = "compiler2" }, Base with { Codegen = "codegen2" },
        };
        var keys = variants.Select(v => v.Key).Append(Base.Key).ToHashSet();
        Assert.Equal(7, keys.Count);
        Assert.Equal(Base.Key, (Base with { }).Key);
        // parts do not run into each other: moving a character from one part to the next changes the key
        Assert.NotEqual(new TuneKey("ab", "c", "", "", "", "").Key, new TuneKey("a", "bc", "", "", "", "").Key);
    }

    [Fact]
    public void EntriesRoundTripThroughTheFile()
    {
        var file = TempFile();
        var c = TuningCache.Load(file);
        c.Put(Entry(Base));
        c.Save();
        var back = TuningCache.Load(file, w => Assert.Fail(w)).Find(Base);
        Assert.NotNull(back);
        Assert.Equal(1.5, back.BestMs);
        Assert.Equal(2, back.Times.Count);
        Assert.Null(back.Times[1].Ms);
        Assert.Equal("stopped early", back.Times[1].Note);
        Assert.Equal(2, back.Best["row_block"]);
        Assert.Null(TuningCache.Load(file).Find(Base with { Driver = "other" }));
    }

    [Theory]
    [InlineData("{ not json")]
    [InlineData("[1, 2, 3]")]
    [InlineData("{\"format\": 99, \"entries\": []}")]
    [InlineData("")]
    public void ACorruptFileIsIgnoredWithAWarningAndRewritten(string text)
    {
        var file = TempFile();
        File.WriteAllText(file, text);
        var warnings = new List<string>();
        var c = TuningCache.Load(file, warnings.Add);
        Assert.Empty(c.Entries);
        Assert.Contains(warnings, w => w.Contains("ignoring the tuning cache") && w.Contains(file));
        c.Put(Entry(Base));
        c.Save();
        var again = new List<string>();
        Assert.NotNull(TuningCache.Load(file, again.Add).Find(Base));
        Assert.Empty(again);
    }

    [Fact]
    public void AStaleOrEditedEntryIsDroppedAndTheRestKept()
    {
        var file = TempFile();
        var c = TuningCache.Load(file);
        c.Put(Entry(Base));
        c.Put(Entry(Base with { SpecHash = "other" }));
        c.Save();
        // edit one entry's driver without recomputing its key, as a stale or hand-edited file would have it
        var text = File.ReadAllText(file);
        int at = text.IndexOf("\"driver\": \"driver\"", StringComparison.Ordinal);
        File.WriteAllText(file, text[..at] + "\"driver\": \"changed\"" + text[(at + "\"driver\": \"driver\"".Length)..]);
        var warnings = new List<string>();
        var d = TuningCache.Load(file, warnings.Add);
        Assert.Single(d.Entries);
        Assert.Contains(warnings, w => w.Contains("does not match its parts"));
    }

    [Fact]
    public void SavingMergesWithEntriesAnotherWriterSavedMeanwhile()
    {
        var file = TempFile();
        var a = TuningCache.Load(file);
        var b = TuningCache.Load(file);
        a.Put(Entry(Base with { SpecHash = "a" }));
        b.Put(Entry(Base with { SpecHash = "b" }));
        a.Save();
        b.Save();
        var both = TuningCache.Load(file, w => Assert.Fail(w));
        Assert.Equal(2, both.Entries.Count);
        Assert.DoesNotContain(Directory.GetFiles(Path.GetDirectoryName(file)!), f => f.Contains(".tmp"));
    }

    [Fact]
    public void ManyWritersAtOnceLeaveAValidFileWithEveryEntry()
    {
        var file = TempFile();
        Parallel.For(0, 8, i =>
        {
            var c = TuningCache.Load(file);
            c.Put(Entry(Base with { SpecHash = "s" + i }));
            c.Save();
        });
        Assert.Equal(8, TuningCache.Load(file, w => Assert.Fail(w)).Entries.Count);
    }

    private static (Graph Graph, IReadOnlyDictionary<string, Tensor> Weights) SmallLayer()
    {
        var m = ModelSource.Load("sw-layer", new ModelArgs { Channels = 16, Height = 12, Width = 12, Big = 7, Batch = 4, Seed = 3 },
            withWeights: true);
        var cm = Driver.Compile(m, new CpuTarget(), new CompileOptions { Tuning = CpuTuning.Off });
        return (cm.Graph, cm.Weights);
    }

    [Fact]
    public void CandidatesArePrunedBeforeCompilingAndStartWithTheDefault()
    {
        var (g, _) = SmallLayer();
        var types = g.ValueTypes();
        var n = g.Nodes.First(n => n.Op is FusedShiftWise);
        var spec = SwLayerSpec.Of(n, types[n.Inputs[0]].Shape);
        var cands = SwCpuTunables.Candidates(spec);
        Assert.Equal(ISwTunables.Text(SwCpuTunables.Defaults(spec)), ISwTunables.Text(cands[0]));
        Assert.Contains(cands, c => c["lowering"] == 1);
        Assert.All(cands.Where(c => c["lowering"] == 0), c => Assert.True(c["row_block"] * c["col_vectors"] <= 12));
        Assert.Equal(cands.Count, cands.Select(ISwTunables.Text).Distinct().Count());
        // width 12: two vectors per row at most
        Assert.All(cands, c => Assert.InRange(c["col_vectors"], 1, 2));
    }

    [Fact]
    public void TuningWritesAnEntryThatExecutorsThenUse()
    {
        Assert.SkipUnless(Cpu.SwLayerKernel.Supported, "the generated SW kernels need AVX2 and FMA, which this CPU lacks");
        var (g, w) = SmallLayer();
        var cache = TuningCache.Load(TempFile());
        var statuses = new List<TuneStatus>();
        var rows = new CpuTuner(30, progress: statuses.Add) { Repeats = 3 }.Tune(g, w, cache);
        var row = Assert.Single(rows);
        Assert.Equal("tuned", row.Source);
        Assert.True(row.TunedMs <= row.DefaultMs, $"{row.TunedMs} > {row.DefaultMs}");
        Assert.True(row.Measured >= 1);
        Assert.NotEmpty(statuses);
        var entry = Assert.Single(TuningCache.Load(cache.File, x => Assert.Fail(x)).Entries);
        Assert.Equal(row.Candidates, entry.Candidates.Count);
        Assert.Equal(entry.Candidates.Count, entry.Times.Count);
        // every candidate was compiled and timed: a median, or a first sample 3x the best (never the budget)
        Assert.All(entry.Times, t => Assert.True(t.Ms is > 0 || t.Note!.StartsWith("stopped early", StringComparison.Ordinal), t.Note));

        // a second tune reads the cache instead of measuring
        var again = new CpuTuner(30).Tune(g, w, cache);
        Assert.Equal("cache", Assert.Single(again).Source);

        // an executor bound with the cache gets the tuned configuration, and the outputs match the defaults' closely
        var tuning = CpuTuning.From(TuningCache.Load(cache.File));
        var tuned = new Cpu.CpuExecutor(Cpu.CpuLowering.Lower(g, w, tuned: tuning.For));
        Assert.Contains("1 of 1 SW kernels tuned", tuning.Summary);
        var plain = new Cpu.CpuExecutor(Cpu.CpuLowering.Lower(g, w));
        var x = new Dictionary<string, Tensor> { [g.Inputs[0].Name] = KernelHarness.Rand(new Random(5), g.Inputs[0].Type.Shape) };
        var a = tuned.Run(x)[g.Outputs[0]].ToDoubles();
        var b = plain.Run(x)[g.Outputs[0]].ToDoubles();
        double num = a.Zip(b).Sum(p => (p.First - p.Second) * (p.First - p.Second)), den = b.Sum(v => v * v);
        Assert.True(Math.Sqrt(num / den) <= 1e-5, $"{Math.Sqrt(num / den):e2}");
    }

    /// <summary>
    /// Binds the small layer through <see cref="Driver.Compile"/> (as swc run and bench do) with a cache that
    /// holds <paramref name="best"/> under <paramref name="key"/> (nothing when null); the SW node's kernel and spec.
    /// </summary>
    private static (Cpu.SwLayerKernel Kernel, SwLayerSpec Spec) BindWith(Func<SwLayerSpec, TuneKey>? key,
        IReadOnlyDictionary<string, int>? best)
    {
        var args = new ModelArgs { Channels = 16, Height = 12, Width = 12, Big = 7, Batch = 4, Seed = 3 };
        var m = ModelSource.Load("sw-layer", args, withWeights: true);
        var plain = Driver.Compile(m, new CpuTarget(), new CompileOptions { Tuning = CpuTuning.Off });
        var node = plain.Graph.Nodes.Single(n => n.Op is FusedShiftWise);
        var spec = SwLayerSpec.Of(node, plain.Graph.ValueTypes()[node.Inputs[0]].Shape);
        var cache = TuningCache.Load(TempFile());
        if (key is not null && best is not null)
        {
            var def = SwCpuTunables.Defaults(spec);
            cache.Put(new TuneEntry(key(spec), spec.Name, best, 1.0, def, 2.0, [def, best],
                [new TuneTime(def, 2.0), new TuneTime(best, 1.0)]));
            cache.Save();
        }
        var cm = Driver.Compile(m, new Cpu.CpuTarget(), new CompileOptions
        {
            Tuning = CpuTuning.From(TuningCache.Load(cache.File, w => Assert.Fail(w))),
        });
        return (Assert.IsType<Cpu.SwLayerKernel>(cm.Cpu.KernelOf(node.Name)), spec);
    }

    /// <summary>What a spec renders to: the default cross, a cross with another tile, the factorised form.</summary>
    private static (string Default, IReadOnlyDictionary<string, int> Tile, string Tiled, string Factorised) Sources(
        SwLayerSpec spec)
    {
        var def = SwCpuTunables.Defaults(spec);
        // the cost model's pick for a 12x12 plane: the cross with 3 rows x 2 vectors; 1 x 1 is the other extreme
        Assert.Equal(0, def["lowering"]);
        var tile = new Dictionary<string, int>(def) { ["row_block"] = 1, ["col_vectors"] = 1 };
        Assert.Contains(SwCpuTunables.Candidates(spec), c => ISwTunables.Text(c) == ISwTunables.Text(tile));
        // at the vector width the bound kernel uses (16 under AVX-512 on planes wider than 8, else 8)
        int width = SwCrossCpuModel.WidthFor(spec, Cpu.CpuIsa.VectorWidth);
        var tiled = CpuCodegen.SwCross(spec, tile, width).Source;
        var dflt = CpuCodegen.SwCross(spec, null, width).Source;
        Assert.NotEqual(dflt, tiled);
        return (dflt, tile, tiled, CpuCodegen.SwFactorised(spec).Source);
    }

    private static void RequireGeneratedKernels()
    {
        if (!Cpu.SwLayerKernel.Supported)
        {
            Assert.Skip("no AVX2 and FMA here: SW layers run on the managed kernels, which have no tunables");
        }
    }

    [Fact]
    public void AnEntryForTheOtherLoweringBindsTheFactorisedKernel()
    {
        RequireGeneratedKernels();
        var (_, spec) = BindWith(null, null);
        var best = new Dictionary<string, int>(SwCpuTunables.Defaults(spec)) { ["lowering"] = 1 };
        var (k, _) = BindWith(CpuTuner.KeyFor, best);
        Assert.Equal("factorised", k.Lowering);
        Assert.Equal(spec.NameAtBatch1 + "_f", k.Label); // one kernel serves every batch
        Assert.Equal(Sources(spec).Factorised, k.Source.Source);
    }

    [Fact]
    public void AnEntryWithAnotherTileBindsTheCrossKernelOfThatTile()
    {
        RequireGeneratedKernels();
        var (_, spec) = BindWith(null, null);
        var src = Sources(spec);
        var (k, _) = BindWith(CpuTuner.KeyFor, src.Tile);
        Assert.Equal("cross", k.Lowering);
        Assert.Equal(spec.NameAtBatch1, k.Label);
        Assert.Equal(src.Tiled, k.Source.Source);
    }

    /// <summary>
    /// A tile measured for one vector width is not reused for the other: the key names the ISA the kernels are
    /// generated for, so forcing AVX2 on an AVX-512 CPU gives another key.
    /// </summary>
    [Fact]
    public void TheCpuKeyNamesTheIsaOfTheKernels()
    {
        RequireGeneratedKernels();
        var (_, spec) = BindWith(null, null);
        Assert.SkipUnless(Cpu.CpuIsa.HasAvx512, "this CPU has only AVX2: there is no other ISA to force");
        TuneKey avx2, avx512;
        using (Cpu.CpuIsa.Force(Cpu.CpuIsaKind.Avx2)) avx2 = CpuTuner.KeyFor(spec);
        using (Cpu.CpuIsa.Force(Cpu.CpuIsaKind.Avx512)) avx512 = CpuTuner.KeyFor(spec);
        Assert.NotEqual(avx2.Key, avx512.Key);
        Assert.Contains("Avx2", avx2.ComputeCapability);
        Assert.Contains("Avx512", avx512.ComputeCapability);
    }

    [Fact]
    public void WithoutAnEntryForThisKeyTheDefaultsAreBound()
    {
        RequireGeneratedKernels();
        var (none, spec) = BindWith(null, null);
        var src = Sources(spec);
        Assert.Equal("cross", none.Lowering);
        Assert.Equal(src.Default, none.Source.Source);
        // an entry measured elsewhere (another code generator, another CPU) is not this machine's: defaults again
        var factorised = new Dictionary<string, int>(SwCpuTunables.Defaults(spec)) { ["lowering"] = 1 };
        var (other, _) = BindWith(s => CpuTuner.KeyFor(s) with { Codegen = "another build" }, factorised);
        Assert.Equal(src.Default, other.Source.Source);
        var (elsewhere, _) = BindWith(s => CpuTuner.KeyFor(s) with { Device = "another CPU" }, src.Tile);
        Assert.Equal(src.Default, elsewhere.Source.Source);
    }

    [Fact]
    public void AZeroBudgetStillMeasuresTheDefaultAndKeepsIt()
    {
        Assert.SkipUnless(Cpu.SwLayerKernel.Supported, "the generated SW kernels need AVX2 and FMA, which this CPU lacks");
        var (g, w) = SmallLayer();
        var cache = TuningCache.Load(TempFile());
        var row = Assert.Single(new CpuTuner(0) { Repeats = 3 }.Tune(g, w, cache));
        Assert.Equal("tuned (budget cut)", row.Source);
        Assert.Equal(1, row.Measured);
        Assert.Equal(row.DefaultMs, row.TunedMs);
        var e = Assert.Single(cache.Entries);
        Assert.All(e.Times.Skip(1), t => Assert.Equal("budget spent", t.Note));
    }
}
