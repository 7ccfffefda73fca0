using System.Diagnostics;
using System.Globalization;
using ShiftWise.IR;
using ShiftWise.IR.Text;

namespace ShiftWise.Passes;

/// <summary>What one pass did: changed or not, time, node count after, or that it was disabled.</summary>
public sealed record PassRecord(int Index, string Name, bool Changed, TimeSpan Time, int NodesAfter, bool Disabled);

/// <summary>How a pipeline runs: passes to skip, and where to dump the IR after passes.</summary>
public sealed record PassOptions
{
    /// <summary>Pass names to skip (to bisect a wrong result).</summary>
    public IReadOnlySet<string> Disabled { get; init; } = new HashSet<string>();

    /// <summary>Write NNN_pass.swir after every pass.</summary>
    public bool PrintAfterAll { get; init; }

    /// <summary>Write NNN_pass.swir after these passes.</summary>
    public IReadOnlySet<string> PrintAfter { get; init; } = new HashSet<string>();

    /// <summary>Where the dumps go.</summary>
    public string? DumpDir { get; init; }
}

/// <summary>
/// Runs a named list of passes in order, verifies the graph (and that every parameter has a value of the right
/// shape) after each, records what each did, and dumps the IR as text on request.
/// </summary>
public sealed class PassManager
{
    private readonly IReadOnlyList<Pass> _passes;
    private readonly PassOptions _options;

    /// <summary>Creates a manager; every disabled or printed name must be a pass of the pipeline.</summary>
    public PassManager(IReadOnlyList<Pass> passes, PassOptions? options = null)
    {
        _passes = passes;
        _options = options ?? new PassOptions();
        var known = passes.Select(p => p.Name).ToHashSet();
        foreach (var n in _options.Disabled.Concat(_options.PrintAfter))
        {
            if (!known.Contains(n))
            {
                throw new IrException($"unknown pass '{n}'; this pipeline has: {string.Join(", ", known)}");
            }
        }
    }

    /// <summary>Runs the pipeline over the context.</summary>
    public IReadOnlyList<PassRecord> Run(PassContext ctx, Action<PassRecord>? progress = null)
    {
        Check(ctx, "the input graph");
        var records = new List<PassRecord>();
        for (int i = 0; i < _passes.Count; i++)
        {
            var p = _passes[i];
            PassRecord rec;
            if (_options.Disabled.Contains(p.Name))
            {
                rec = new PassRecord(i + 1, p.Name, false, TimeSpan.Zero, ctx.Graph.Nodes.Count, true);
            }
            else
            {
                var sw = Stopwatch.StartNew();
                bool changed = p.Run(ctx);
                sw.Stop();
                Check(ctx, $"pass {p.Name}");
                rec = new PassRecord(i + 1, p.Name, changed, sw.Elapsed, ctx.Graph.Nodes.Count, false);
            }
            records.Add(rec);
            progress?.Invoke(rec);
            if (_options.DumpDir is { } dir && (_options.PrintAfterAll || _options.PrintAfter.Contains(p.Name)))
            {
                Directory.CreateDirectory(dir);
                var file = Path.Combine(dir, $"{(i + 1).ToString("D3", CultureInfo.InvariantCulture)}_{p.Name}.swir");
                // a killed compile leaves no half-written dump
                AtomicFile.WriteText(file, SwirPrinter.Print(ctx.Graph with { WeightsFile = null }));
            }
        }
        return records;
    }

    private static void Check(PassContext ctx, string after)
    {
        try
        {
            Verifier.Verify(ctx.Graph);
        }
        catch (VerifyException e)
        {
            throw new IrException($"{after} left an invalid graph: {e.Message}", e);
        }
        foreach (var p in ctx.Graph.Params)
        {
            if (!ctx.Weights.TryGetValue(p.Name, out var t) || !t.Shape.Equals(p.Type.Shape))
            {
                throw new IrException($"{after} left parameter '{p.Name}' without a value of shape {p.Type.Shape}");
            }
        }
    }
}

/// <summary>The named pipelines: explicit lists, no registry.</summary>
public static class Pipelines
{
    /// <summary>Names accepted by <see cref="Get(string)"/>.</summary>
    public static IReadOnlyList<string> Names { get; } = ["inference", "training", "export", "none"];

    /// <summary>
    /// The passes of a pipeline; with a 16-bit <paramref name="precision"/> the inference (or none) pipeline ends with
    /// <see cref="StoreIn16Bits"/>, and the training pipeline runs <see cref="MixedPrecision"/> before autodiff
    /// (float32 master weights; fp16 with a loss-scale input).
    /// </summary>
    public static IReadOnlyList<Pass> Get(string name, Precision precision)
    {
        var passes = Get(name);
        if (!precision.Is16Bit()) return passes;
        if (name == "training")
        {
            return [new DeadCodeElimination(), new MixedPrecision(precision.Storage(), precision == Precision.Fp16),
                new Autodiff()];
        }
        return [.. passes, new StoreIn16Bits(precision.Storage())];
    }

    /// <summary>The passes of a pipeline.</summary>
    public static IReadOnlyList<Pass> Get(string name) => name switch
    {
        "inference" =>
        [
            new MergeParallelConvs(), new FoldBatchNorm(), new ConstantFold(), new CollapseShiftWise(),
            new FuseShiftWise(), new PruneZeroSubkernels(), new FuseEpilogues(), new FoldGrnApply(),
            new DeadCodeElimination(),
        ],
        // the inference graph before epilogue fusion: standard ops an ONNX file can spell (issue 23)
        "export" =>
        [
            new MergeParallelConvs(), new FoldBatchNorm(), new ConstantFold(), new CollapseShiftWise(),
            new FuseShiftWise(), new PruneZeroSubkernels(), new DeadCodeElimination(),
        ],
        "training" => [new DeadCodeElimination(), new Autodiff()],
        "none" => [],
        _ => throw new IrException($"unknown pipeline '{name}'; known: {string.Join(", ", Names)}"),
    };
}
