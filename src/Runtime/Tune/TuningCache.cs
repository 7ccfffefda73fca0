using ShiftWise.IR;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ShiftWise.Frontend.IO;

namespace ShiftWise.Runtime.Tune;

/// <summary>
/// What a tuning result depends on: the kernel spec (its content hash) and the device, compiler and code generator
/// it was measured with. Any part changing gives a different <see cref="Key"/>, so a result is never reused where it
/// was not measured. The candidate list is recorded with the entry but is not part of the key.
/// </summary>
public sealed record TuneKey(string SpecHash, string Device, string ComputeCapability, string Driver, string Compiler,
    string Codegen)
{
    /// <summary>SHA-256 over the parts, one per line, each named.</summary>
    public string Key => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
        $"spec={SpecHash}\ndevice={Device}\ncc={ComputeCapability}\ndriver={Driver}\ncompiler={Compiler}\n"
        + $"codegen={Codegen}\n")));
}

/// <summary>One measured candidate: its configuration and median milliseconds, or why it has no time.</summary>
public sealed record TuneTime(IReadOnlyDictionary<string, int> Config, double? Ms, string? Note = null);

/// <summary>The tuning result of one kernel spec on one device.</summary>
public sealed record TuneEntry(TuneKey Key, string Kernel, IReadOnlyDictionary<string, int> Best, double BestMs,
    IReadOnlyDictionary<string, int> Default, double DefaultMs,
    IReadOnlyList<IReadOnlyDictionary<string, int>> Candidates, IReadOnlyList<TuneTime> Times);

/// <summary>
/// The tuning cache: one JSON file per device under $SWC_CACHE_DIR/tune, entries by <see cref="TuneKey.Key"/>.
/// A file that does not parse, and entries whose stored key does not match their parts, are ignored with a warning
/// and rewritten on the next save. Saving takes an exclusive lock file, merges with what is on disk (another process
/// may have tuned other kernels meanwhile) and replaces the file atomically (temp file + rename).
/// </summary>
public sealed class TuningCache
{
    private const int Format = 1;
    private readonly Dictionary<string, TuneEntry> _entries = new(StringComparer.Ordinal);
    private readonly HashSet<string> _mine = new(StringComparer.Ordinal);
    private readonly Action<string> _warn;

    private TuningCache(string file, Action<string>? warn)
    {
        File = file;
        _warn = warn ?? (_ => { });
    }

    /// <summary>The cache file.</summary>
    public string File { get; }

    /// <summary>The valid entries read or added.</summary>
    public IReadOnlyCollection<TuneEntry> Entries => _entries.Values;

    /// <summary>
    /// The file of a device: $SWC_CACHE_DIR/tune/&lt;target&gt;-&lt;device name&gt;.json, the name reduced to a safe
    /// slug.
    /// </summary>
    public static string FileFor(string target, string device)
    {
        var sb = new StringBuilder(target + "-");
        foreach (char c in device.ToLowerInvariant()) sb.Append(char.IsAsciiLetterOrDigit(c) ? c : '-');
        var slug = string.Join("-", sb.ToString().Split('-', StringSplitOptions.RemoveEmptyEntries));
        if (slug.Length > 80) slug = slug[..80];
        return Path.Combine(SwcCache.Dir("tune"), slug + ".json");
    }

    /// <summary>Reads a cache file (missing: empty); what cannot be trusted is dropped with a warning.</summary>
    public static TuningCache Load(string file, Action<string>? warn = null)
    {
        var c = new TuningCache(file, warn);
        foreach (var e in c.ReadDisk()) c._entries[e.Key.Key] = e;
        return c;
    }

    /// <summary>The entry for a key, if one was measured.</summary>
    public TuneEntry? Find(TuneKey key) => _entries.GetValueOrDefault(key.Key);

    /// <summary>Adds or replaces an entry (kept in memory until <see cref="Save"/>).</summary>
    public void Put(TuneEntry e)
    {
        _entries[e.Key.Key] = e;
        _mine.Add(e.Key.Key);
    }

    /// <summary>Writes the entries added here merged over the file's current valid entries, under a lock.</summary>
    public void Save(TimeSpan? lockTimeout = null)
    {
        SwcCache.CreatePrivateDir(Path.GetDirectoryName(File)!);
        using var lk = Lock(File + ".lock", lockTimeout ?? TimeSpan.FromSeconds(60));
        var merged = new Dictionary<string, TuneEntry>(StringComparer.Ordinal);
        foreach (var e in ReadDisk()) merged[e.Key.Key] = e;
        foreach (var k in _mine) merged[k] = _entries[k];
        foreach (var (k, e) in merged) _entries[k] = e;
        var root = new JsonObject
        {
            ["format"] = Format,
            ["entries"] = new JsonArray(merged.OrderBy(kv => kv.Key, StringComparer.Ordinal)
                .Select(kv => (JsonNode)ToJson(kv.Value)).ToArray()),
        };
        // written whole under the lock: a reader without the lock sees the previous file or this one, never a part
        AtomicFile.WriteText(File, root.ToJsonString(new JsonSerializerOptions
        {
            WriteIndented = true,
            Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        }) + "\n");
    }

    private static FileStream Lock(string path, TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                // the lock file stays: deleting it on close would let a waiter lock the unlinked file while a third
                // process creates and locks a new one
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1);
            }
            catch (IOException) when (DateTime.UtcNow < until)
            {
                Thread.Sleep(20);
            }
        }
    }

    private List<TuneEntry> ReadDisk()
    {
        var list = new List<TuneEntry>();
        if (!System.IO.File.Exists(File)) return list;
        JsonArray entries;
        try
        {
            var root = JsonNode.Parse(System.IO.File.ReadAllText(File)) as JsonObject
                ?? throw new FormatException("the top level is not an object");
            if (root["format"]?.GetValue<int>() != Format) throw new FormatException($"format is not {Format}");
            entries = root["entries"] as JsonArray ?? throw new FormatException("no \"entries\" array");
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or IOException
            or ArgumentException)
        {
            _warn($"warning: ignoring the tuning cache {File}: {e.Message}; it is rewritten after tuning");
            return list;
        }
        for (int i = 0; i < entries.Count; i++)
        {
            try
            {
                list.Add(FromJson(entries[i] as JsonObject ?? throw new FormatException("not an object")));
            }
            catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException
                or KeyNotFoundException
                // a key twice in an object: System.Text.Json.Nodes throws when the object is first read
                or ArgumentException)
            {
                _warn($"warning: ignoring entry {i} of the tuning cache {File}: {e.Message}");
            }
        }
        return list;
    }

    private static JsonObject Config(IReadOnlyDictionary<string, int> c)
    {
        var o = new JsonObject();
        foreach (var (k, v) in c.OrderBy(kv => kv.Key, StringComparer.Ordinal)) o[k] = v;
        return o;
    }

    private static JsonObject ToJson(TuneEntry e) => new()
    {
        ["key"] = e.Key.Key,
        ["spec"] = e.Key.SpecHash,
        ["device"] = e.Key.Device,
        ["cc"] = e.Key.ComputeCapability,
        ["driver"] = e.Key.Driver,
        ["compiler"] = e.Key.Compiler,
        ["codegen"] = e.Key.Codegen,
        ["kernel"] = e.Kernel,
        ["best"] = Config(e.Best),
        ["best_ms"] = e.BestMs,
        ["default"] = Config(e.Default),
        ["default_ms"] = e.DefaultMs,
        ["candidates"] = new JsonArray(e.Candidates.Select(c => (JsonNode)Config(c)).ToArray()),
        ["times"] = new JsonArray(e.Times.Select(t =>
        {
            var o = new JsonObject { ["config"] = Config(t.Config), ["ms"] = t.Ms };
            if (t.Note is not null) o["note"] = t.Note;
            return (JsonNode)o;
        }).ToArray()),
    };

    private static string Str(JsonObject o, string k) =>
        o[k]?.GetValue<string>() ?? throw new FormatException($"\"{k}\" is missing");

    private static double Num(JsonObject o, string k)
    {
        double v = o[k]?.GetValue<double>() ?? throw new FormatException($"\"{k}\" is missing");
        return double.IsFinite(v) && v >= 0 ? v : throw new FormatException($"\"{k}\" is {v}");
    }

    private static Dictionary<string, int> ReadConfig(JsonNode? n, string what)
    {
        var o = n as JsonObject ?? throw new FormatException($"\"{what}\" is not an object");
        return o.ToDictionary(kv => kv.Key, kv => kv.Value?.GetValue<int>()
            ?? throw new FormatException($"\"{what}.{kv.Key}\" is null"), StringComparer.Ordinal);
    }

    private static TuneEntry FromJson(JsonObject o)
    {
        var key = new TuneKey(Str(o, "spec"), Str(o, "device"), Str(o, "cc"), Str(o, "driver"), Str(o, "compiler"),
            Str(o, "codegen"));
        if (Str(o, "key") != key.Key) throw new FormatException("its key does not match its parts (stale or edited)");
        var times = (o["times"] as JsonArray ?? throw new FormatException("\"times\" is not an array")).Select(t =>
        {
            var to = t as JsonObject ?? throw new FormatException("a time is not an object");
            double? ms = to["ms"] is null ? null : to["ms"]!.GetValue<double>();
            return new TuneTime(ReadConfig(to["config"], "config"), ms, to["note"]?.GetValue<string>());
        }).ToList();
        var cands = (o["candidates"] as JsonArray ?? throw new FormatException("\"candidates\" is not an array"))
            .Select(c => (IReadOnlyDictionary<string, int>)ReadConfig(c, "candidates")).ToList();
        return new TuneEntry(key, Str(o, "kernel"), ReadConfig(o["best"], "best"), Num(o, "best_ms"),
            ReadConfig(o["default"], "default"), Num(o, "default_ms"), cands, times);
    }
}
