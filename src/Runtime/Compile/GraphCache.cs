using System.Diagnostics;
using System.IO.Hashing;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ShiftWise.Frontend;
using ShiftWise.Frontend.IO;
using ShiftWise.IR;
using ShiftWise.IR.Text;
using ShiftWise.Passes;

namespace ShiftWise.Runtime.Compile;

/// <summary>
/// The optimised-graph cache (graph/ under <see cref="SwcCache.Root"/>): what a pass pipeline made of a model and its
/// weights, so that a later compile of the same model skips the pipeline. An entry is keyed by the SHA-256 of
/// everything the pipeline's result depends on (<see cref="Key"/>): the model's canonical graph text, the content of
/// every parameter, the pipeline with its options and precision, and the build of the compiler's assemblies. It holds
/// the optimised graph as .swir text and, as a safetensors image, only the tensors the pipeline made (folded
/// weights); a parameter the pipeline passed through is recorded by the name of the model's weight it shares storage
/// with, and bound to that weight again on a hit, so a hit holds no second copy of it. Entries are sealed (magic and
/// SHA-256 of the content, checked before any byte is parsed): a tampered or damaged entry is discarded with a warning
/// and rebuilt. SWC_GRAPH_CACHE=0 turns the cache off; at most <see cref="MaxBytes"/> of entries are kept, the least
/// recently used deleted first.
/// </summary>
public static class GraphCache
{
    /// <summary>The format of an entry; part of the key.</summary>
    public const int FormatVersion = 2;

    /// <summary>The file extension of an entry.</summary>
    public const string Extension = ".swgc";

    /// <summary>The environment variable that turns the cache off when "0".</summary>
    public const string Variable = "SWC_GRAPH_CACHE";

    /// <summary>The most bytes of entries kept in the folder.</summary>
    public const long MaxBytes = 1L << 30;

    private const string KeyMeta = "swc.key", GraphMeta = "swc.graph", RefsMeta = "swc.refs",
        AliasMeta = "swc.aliases", RecordsMeta = "swc.records";

    /// <summary>Whether the environment allows the cache (SWC_GRAPH_CACHE is not "0").</summary>
    public static bool Enabled => Environment.GetEnvironmentVariable(Variable) != "0";

    /// <summary>The folder of the entries.</summary>
    public static string Dir => SwcCache.Dir("graph");

    /// <summary>The entry file of a key.</summary>
    public static string FileOf(string key) => Path.Combine(Dir, key + Extension);

    /// <summary>
    /// The key of a pipeline run (lower-case hex SHA-256): the entry format, the module version ids of the IR, pass,
    /// frontend and runtime assemblies (a rebuilt compiler never reads another build's entries), the .NET version, the
    /// pipeline, its disabled passes, the loss and the precision, the model's canonical graph text, and the name, type
    /// and content hash of every parameter's bytes (<see cref="WeightHash"/>; a changed weight changes the key).
    /// </summary>
    public static string Key(Graph graph, IReadOnlyDictionary<string, Tensor> weights, string pipeline,
        PassOptions? passes, string? loss, Precision precision)
    {
        var sb = new StringBuilder();
        sb.Append("swc graph cache ").Append(FormatVersion).Append('\n');
        foreach (var t in new[] { typeof(Graph), typeof(PassManager), typeof(ModelSource), typeof(GraphCache) })
        {
            sb.Append(t.Assembly.GetName().Name).Append(' ').Append(t.Module.ModuleVersionId).Append('\n');
        }
        sb.Append(".net ").Append(Environment.Version).Append('\n');
        sb.Append("pipeline ").Append(pipeline).Append(' ').Append(precision.Name()).Append(" loss ")
            .Append(loss ?? "-").Append('\n');
        foreach (var d in (passes?.Disabled ?? new HashSet<string>()).Order(StringComparer.Ordinal))
        {
            sb.Append("disabled ").Append(d).Append('\n');
        }
        // the graph's text is printed and hashed while the weights are
        var graphHash = Task.Run(graph.ContentHash);
        var ps = graph.Params.Select(p => p.Name).Where(weights.ContainsKey).Order(StringComparer.Ordinal).ToArray();
        var hashes = new string[ps.Length];
        for (int i = 0; i < ps.Length; i++) hashes[i] = WeightHash(weights[ps[i]]);
        PhaseTrace.Mark("weights hashed");
        sb.Append("graph ").Append(graphHash.GetAwaiter().GetResult()).Append('\n');
        for (int i = 0; i < ps.Length; i++)
        {
            sb.Append("weight ").Append(SwirPrinter.Name(ps[i])).Append(' ').Append(weights[ps[i]].Type).Append(' ')
                .Append(hashes[i]).Append('\n');
        }
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())));
    }

    /// <summary>
    /// The content hash of a weight in a key: lower-case hex XXH128 of its bytes. A key tells entries apart and is not
    /// a seal (an entry's SHA-256 is): 128 bits make an accidental collision as unlikely as SHA-256's, and XXH128 reads
    /// memory at its bandwidth, where SHA-256 cost about 0.15 s of a warm start for sw-tiny's 124 MB (issue 24).
    /// </summary>
    public static string WeightHash(Tensor t) => Convert.ToHexStringLower(XxHash128.Hash(t.Bytes()));

    /// <summary>
    /// The pipeline's result for a model: from the entry of its key when there is a sound one, else from running the
    /// pipeline (<see cref="Driver.Optimize"/>), then stored. A hit is marked <see cref="OptimizedGraph.FromCache"/>;
    /// its records are those of the run that made the entry, its time that of the lookup.
    /// </summary>
    public static OptimizedGraph GetOrOptimize(LoadedModel m, string pipeline, PassOptions? passes, string? loss,
        Precision precision, Action<string>? warn)
    {
        var sw = Stopwatch.StartNew();
        var key = Key(m.Graph, m.Weights, pipeline, passes, loss, precision);
        PhaseTrace.Mark("key");
        if (TryLoad(key, m, warn) is { } hit) return hit with { Time = sw.Elapsed };
        var opt = Driver.Optimize(m.Graph, m.Weights, pipeline, passes, loss: loss, precision: precision);
        Store(key, m, opt, warn);
        return opt;
    }

    /// <summary>
    /// The entry of <paramref name="key"/> bound to <paramref name="m"/>'s weights, or null: no entry, or one that is
    /// damaged (discarded with a warning).
    /// </summary>
    public static OptimizedGraph? TryLoad(string key, LoadedModel m, Action<string>? warn)
    {
        var sw = Stopwatch.StartNew();
        var file = FileOf(key);
        using var fs = SealedFile.TryOpen(file, warn);
        PhaseTrace.Mark("entry checked");
        if (fs is null) return null;
        try
        {
            // the graph text is parsed while the tensors are read (the entry was checked whole before either)
            Task<Graph>? parse = null;
            var (tensors, meta) = SafeTensors.ReadWithMetadata(fs, file,
                md => parse = Task.Run(() => SwirParser.Parse(md[GraphMeta], file)));
            PhaseTrace.Mark("entry tensors read");
            if (meta.GetValueOrDefault(KeyMeta) != key) throw new IrException("the entry is for another key");
            var g = parse!.GetAwaiter().GetResult() with { WeightsFile = m.Graph.WeightsFile };
            PhaseTrace.Mark("entry graph parsed");
            var refs = Json(meta, RefsMeta);
            var aliases = Json(meta, AliasMeta);
            var records = JsonSerializer.Deserialize<List<PassRecord>>(meta[RecordsMeta])
                ?? throw new IrException("no pass records");
            var weights = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (var p in g.Params)
            {
                var t = tensors.GetValueOrDefault(p.Name)
                    ?? (refs.TryGetValue(p.Name, out var src) ? m.Weights[src]
                    : aliases.TryGetValue(p.Name, out var q) ? tensors[q]
                    : throw new IrException($"no value for parameter '{p.Name}'"));
                if (t.DType != p.Type.DType) throw new IrException($"parameter '{p.Name}' is {t.Type}, not {p.Type}");
                weights[p.Name] = t.Shape.Equals(p.Type.Shape) ? t : t.Reshape(p.Type.Shape);
            }
            Touch(file);
            return new OptimizedGraph(g, weights, records, sw.Elapsed) { FromCache = true };
        }
        catch (Exception e) when (e is IrException or JsonException or KeyNotFoundException or FormatException)
        {
            warn?.Invoke($"warning: the cache entry {file} cannot be read ({e.Message}); discarded, rebuilding it");
            fs.Dispose();
            SwcCache.TryDelete(file);
            return null;
        }
    }

    /// <summary>
    /// Stores a pipeline's result under <paramref name="key"/>: the graph text, the tensors the pipeline made, and for
    /// every parameter that shares storage with one of <paramref name="m"/>'s weights (or with another stored
    /// parameter) that weight's name. Then trims the folder to <see cref="MaxBytes"/>. Failures are warnings.
    /// </summary>
    public static void Store(string key, LoadedModel m, OptimizedGraph opt, Action<string>? warn)
    {
        var source = new Dictionary<Array, string>(ReferenceEqualityComparer.Instance);
        foreach (var p in m.Graph.Params)
        {
            if (m.Weights.TryGetValue(p.Name, out var t)) source.TryAdd(t.Data, p.Name);
        }
        var stored = new Dictionary<Array, string>(ReferenceEqualityComparer.Instance);
        var tensors = new SortedDictionary<string, Tensor>(StringComparer.Ordinal);
        var refs = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var aliases = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in opt.Graph.Params)
        {
            var t = opt.Weights[p.Name];
            if (source.TryGetValue(t.Data, out var src) && m.Weights[src].DType == t.DType) refs[p.Name] = src;
            else if (stored.TryGetValue(t.Data, out var q)) aliases[p.Name] = q;
            else
            {
                tensors[p.Name] = t;
                stored[t.Data] = p.Name;
            }
        }
        var meta = new Dictionary<string, string>
        {
            [KeyMeta] = key,
            [GraphMeta] = SwirPrinter.Print(opt.Graph with { WeightsFile = null }),
            [RefsMeta] = JsonSerializer.Serialize(refs),
            [AliasMeta] = JsonSerializer.Serialize(aliases),
            [RecordsMeta] = JsonSerializer.Serialize(opt.Records),
        };
        if (SealedFile.TryWrite(FileOf(key), s => SafeTensors.Write(s, tensors, meta), warn)) Trim(FileOf(key));
    }

    private static Dictionary<string, string> Json(IReadOnlyDictionary<string, string> meta, string name) =>
        JsonSerializer.Deserialize<Dictionary<string, string>>(meta[name])
        ?? throw new IrException($"no {name} map");

    // marks an entry used (the trim keeps the most recently used)
    private static void Touch(string file)
    {
        try
        {
            File.SetLastWriteTimeUtc(file, DateTime.UtcNow);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // a read-only cache still serves hits
        }
    }

    // deletes the least recently used entries beyond MaxBytes, never the one just written
    private static void Trim(string keep)
    {
        try
        {
            var files = new DirectoryInfo(Dir).GetFiles("*" + Extension).OrderByDescending(f => f.LastWriteTimeUtc);
            long total = 0;
            foreach (var f in files)
            {
                total += f.Length;
                if (total > MaxBytes && f.FullName != Path.GetFullPath(keep)) SwcCache.TryDelete(f.FullName);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // trimming is housekeeping
        }
    }
}
