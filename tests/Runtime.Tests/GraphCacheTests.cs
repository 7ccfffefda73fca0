using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.Passes;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Cpu;

namespace ShiftWise.Runtime.Tests;

/// <summary>
/// The optimised-graph cache (issue 24, deliver 5): a hit gives the pipeline's graph and weights bit for bit, binds
/// the weights the pipeline passed through to the model's own storage, a tampered entry is discarded with a warning
/// and rebuilt, and the key follows the weights' content and the pipeline's options. Each test has its own cache
/// folder (IsolatedCache).
/// </summary>
public sealed class GraphCacheTests
{
    private static LoadedModel Small(uint seed = 4) => ModelSource.Load("sw-v2", new ModelArgs
    {
        Depths = [1, 1, 2, 1], Dims = [16, 32, 48, 64], KernelSize = [13, 11, 7, 5, 3], ImageSize = 40,
        NumClasses = 10, Seed = seed,
    }, withWeights: true);

    private static readonly CompileOptions Cached = new() { GraphCache = true };

    private static Tensor Input(TensorType t)
    {
        var rng = new Random(1);
        return Tensor.FromDoubles(t, Enumerable.Range(0, (int)t.Shape.Elements).Select(_ => rng.NextDouble() * 2 - 1)
            .ToArray());
    }

    private static byte[] Bits(Tensor t) => t.Bytes().ToArray();

    [Fact]
    public void A_hit_gives_the_pipelines_graph_weights_and_output_bits_and_shares_the_models_storage()
    {
        var m = Small();
        var x = Input(m.Graph.Inputs[0].Type);
        var plain = Driver.Compile(m, new CpuTarget());
        var miss = Driver.Compile(m, new CpuTarget(), Cached);
        var hit = Driver.Compile(m, new CpuTarget(), Cached);
        Assert.False(plain.GraphFromCache);
        Assert.False(miss.GraphFromCache);
        Assert.True(hit.GraphFromCache);
        Assert.Single(Directory.GetFiles(GraphCache.Dir, "*" + GraphCache.Extension));
        // the same graph (structural equality) and every weight the same bits
        Assert.Equal(plain.Graph, hit.Graph);
        Assert.Equal(plain.Graph.ToString(), hit.Graph.ToString());
        Assert.Equal(plain.Weights.Keys.Order(), hit.Weights.Keys.Order());
        foreach (var (name, t) in plain.Weights)
        {
            Assert.Equal(t.Type, hit.Weights[name].Type);
            Assert.True(Bits(t).AsSpan().SequenceEqual(Bits(hit.Weights[name])), name);
        }
        Assert.Equal(plain.Records.Select(r => (r.Name, r.Changed, r.NodesAfter)),
            hit.Records.Select(r => (r.Name, r.Changed, r.NodesAfter)));
        var y = Bits(plain.Run(x));
        Assert.Equal(y, Bits(miss.Run(x)));
        Assert.Equal(y, Bits(hit.Run(x)));
        // weights the pipeline passed through are the model's own arrays again, not copies read from the entry
        var source = m.Weights.Values.Select(t => t.Data).ToHashSet(ReferenceEqualityComparer.Instance);
        int shared = hit.Weights.Values.Count(t => source.Contains(t.Data));
        Assert.True(shared > 0 && shared == plain.Weights.Values.Count(t => source.Contains(t.Data)),
            $"{shared} weights shared with the model");
    }

    [Fact]
    public void A_16_bit_pipeline_stores_its_bf16_weights_and_a_hit_computes_the_same_bits()
    {
        // the reference target at bf16: the pipeline ends by storing every weight in bfloat16 (new ushort[] tensors)
        var m = Small();
        var target = Driver.Target("reference", precision: Precision.Bf16);
        var x = Input(m.Graph.Inputs[0].Type);
        var miss = Driver.Compile(m, target, Cached);
        var hit = Driver.Compile(m, target, Cached);
        Assert.False(miss.GraphFromCache);
        Assert.True(hit.GraphFromCache);
        Assert.Contains(hit.Weights.Values, t => t.DType == DType.BF16);
        foreach (var (name, t) in miss.Weights) Assert.Equal(Bits(t), Bits(hit.Weights[name]));
        Assert.Equal(Bits(miss.Run(x)), Bits(hit.Run(x)));
    }

    [Fact]
    public void A_tampered_entry_is_discarded_with_a_warning_and_rebuilt()
    {
        var m = Small();
        var x = Input(m.Graph.Inputs[0].Type);
        var y = Bits(Driver.Compile(m, new CpuTarget(), Cached).Run(x));
        var file = Assert.Single(Directory.GetFiles(GraphCache.Dir, "*" + GraphCache.Extension));
        var bytes = File.ReadAllBytes(file);
        bytes[^5] ^= 0x01; // the last tensor's data: it would parse, and change a weight
        File.WriteAllBytes(file, bytes);
        var warnings = new List<string>();
        var again = Driver.Compile(m, new CpuTarget(), Cached, warnings.Add);
        Assert.False(again.GraphFromCache);
        Assert.Contains(warnings, w => w.Contains("does not match its content hash", StringComparison.Ordinal)
            && w.Contains(Path.GetFileName(file), StringComparison.Ordinal));
        Assert.Equal(y, Bits(again.Run(x)));
        // rebuilt: the next compile hits, silently, with the same bits
        warnings.Clear();
        var hit = Driver.Compile(m, new CpuTarget(), Cached, warnings.Add);
        Assert.True(hit.GraphFromCache);
        Assert.Empty(warnings);
        Assert.Equal(y, Bits(hit.Run(x)));
    }

    [Fact]
    public void A_sound_entry_that_does_not_parse_is_discarded_with_a_warning_and_rebuilt()
    {
        var m = Small();
        var key = GraphCache.Key(m.Graph, m.Weights, "inference", null, null, Precision.Fp32);
        // sealed with a correct content hash, but not an entry: say so, delete it, run the pipeline and store a real one
        Assert.True(SealedFile.TryWrite(GraphCache.FileOf(key), s => s.Write("not safetensors"u8), null));
        var warnings = new List<string>();
        var cm = Driver.Compile(m, new CpuTarget(), Cached, warnings.Add);
        Assert.False(cm.GraphFromCache);
        Assert.Contains(warnings, w => w.Contains("cannot be read", StringComparison.Ordinal));
        Assert.True(Driver.Compile(m, new CpuTarget(), Cached).GraphFromCache);
    }

    [Fact]
    public void The_key_follows_the_weights_content_and_the_pipeline_options()
    {
        var m = Small();
        string Key(IReadOnlyDictionary<string, Tensor> w, PassOptions? o = null, string pipeline = "inference") =>
            GraphCache.Key(m.Graph, w, pipeline, o, null, Precision.Fp32);
        var k = Key(m.Weights);
        // equal content in other arrays: the same key
        var copy = m.Weights.ToDictionary(p => p.Key, p => Tensor.Wrap(p.Value.Type, (Array)p.Value.Data.Clone()));
        Assert.Equal(k, Key(copy));
        // one element of one weight changed by one ulp: another key
        var name = m.Graph.Params[m.Graph.Params.Count / 2].Name;
        var f = (float[])copy[name].Data;
        f[0] = MathF.BitIncrement(f[0]);
        Assert.NotEqual(k, Key(copy));
        Assert.NotEqual(k, Key(m.Weights, new PassOptions { Disabled = new HashSet<string> { "fuse-epilogues" } }));
        Assert.NotEqual(k, Key(m.Weights, pipeline: "export"));
        Assert.NotEqual(k, GraphCache.Key(m.Graph, m.Weights, "inference", null, null, Precision.Bf16));
        Assert.NotEqual(k, GraphCache.Key(Small(5).Graph with { Name = "other" }, m.Weights, "inference", null, null,
            Precision.Fp32));
    }

    [Fact]
    public void The_key_changes_when_any_one_bit_of_any_weight_flips()
    {
        // the weights' hash (XXH128 since issue 24) covers every byte: its first, a middle one, and its last, where
        // XXH128 hashes a tail apart from its 64-byte stripes; keys of all the flips are all different
        var m = Small();
        var k = GraphCache.Key(m.Graph, m.Weights, "inference", null, null, Precision.Fp32);
        var keys = new HashSet<string> { k };
        int flips = 0;
        foreach (var p in m.Graph.Params)
        {
            var t = m.Weights[p.Name];
            if (t.DType != DType.F32) continue;
            foreach (int at in new[] { 0, t.Bytes().Length / 2, t.Bytes().Length - 1 }.Distinct())
            {
                var bytes = t.Bytes().ToArray();
                bytes[at] ^= (byte)(1 << (at % 8));
                var w = m.Weights.ToDictionary(q => q.Key, q => q.Value);
                w[p.Name] = Tensor.Wrap(t.Type, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes)
                    .ToArray());
                Assert.True(keys.Add(GraphCache.Key(m.Graph, w, "inference", null, null, Precision.Fp32)),
                    $"flipping byte {at} of '{p.Name}' left the key unchanged or equal to another flip's");
                flips++;
            }
        }
        Assert.True(flips > 3 * m.Graph.Params.Count / 2, $"only {flips} flips over {m.Graph.Params.Count} weights");
        // two weights of one type and different values swapping their contents: the key names each weight's hash, so it changes
        var pair = m.Graph.Params.GroupBy(p => p.Type)
            .Select(g => g.DistinctBy(p => GraphCache.WeightHash(m.Weights[p.Name])).Take(2).ToArray())
            .First(g => g.Length == 2);
        var swapped = m.Weights.ToDictionary(q => q.Key, q => q.Value);
        (swapped[pair[0].Name], swapped[pair[1].Name]) = (swapped[pair[1].Name], swapped[pair[0].Name]);
        Assert.NotEqual(k, GraphCache.Key(m.Graph, swapped, "inference", null, null, Precision.Fp32));
        // the hash of a weight is its content's: equal bytes in another array hash alike, and XXH128 is 32 hex digits
        var first = m.Weights[pair[0].Name];
        Assert.Equal(GraphCache.WeightHash(first), GraphCache.WeightHash(Tensor.Wrap(first.Type,
            (Array)first.Data.Clone())));
        Assert.Matches("^[0-9a-f]{32}$", GraphCache.WeightHash(first));
    }

    [Fact]
    public void A_changed_weight_misses_and_compiles_its_own_result()
    {
        var m = Small();
        var x = Input(m.Graph.Inputs[0].Type);
        var y = Bits(Driver.Compile(m, new CpuTarget(), Cached).Run(x));
        var w = m.Weights.ToDictionary(p => p.Key, p => p.Value);
        var head = m.Graph.Params.Last(p => p.Name.EndsWith(".weight", StringComparison.Ordinal)).Name;
        var changed = (float[])w[head].Data.Clone();
        for (int i = 0; i < changed.Length; i++) changed[i] *= 2;
        w[head] = Tensor.Wrap(w[head].Type, changed);
        var m2 = m with { Weights = w };
        var cm = Driver.Compile(m2, new CpuTarget(), Cached);
        Assert.False(cm.GraphFromCache);
        Assert.NotEqual(y, Bits(cm.Run(x)));
        Assert.Equal(Bits(Driver.Compile(m2, new CpuTarget()).Run(x)), Bits(cm.Run(x)));
        Assert.Equal(2, Directory.GetFiles(GraphCache.Dir, "*" + GraphCache.Extension).Length);
    }

    [Fact]
    public void The_executor_reads_float32_weights_in_place_and_copies_them_when_a_trainer_asks()
    {
        var m = Small();
        var cm = Driver.Compile(m, new CpuTarget(), Cached);
        // after the pipeline every weight is stored in float32: no float64 copy of a folded weight survives
        Assert.All(cm.Weights.Values, t => Assert.IsType<float[]>(t.Data));
        var exec = cm.Cpu;
        Assert.All(cm.Graph.Params, p => Assert.True(exec.SharesWeight(p.Name, cm.Weights[p.Name]), p.Name));
        var x = Input(m.Graph.Inputs[0].Type);
        var y = Bits(cm.Run(x));
        // Parameter() hands out an array of the executor's own: changing it changes the run, not the weights
        var name = cm.Graph.Params[0].Name;
        var before = Bits(cm.Weights[name]);
        var p = exec.Parameter(name);
        Assert.False(exec.SharesWeight(name, cm.Weights[name]));
        Assert.Equal(y, Bits(cm.Run(x)));
        Array.Fill(p, 0f);
        Assert.Equal(before, Bits(cm.Weights[name]));
        Assert.NotEqual(y, Bits(cm.Run(x)));
    }
}
