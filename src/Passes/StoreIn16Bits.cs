using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Passes;

/// <summary>
/// The precision pass of --precision bf16 / fp16 (issue 22), last in the inference pipeline: every float32 activation
/// and parameter is stored in <see cref="Storage"/> (parameters rounded to nearest even once, here); each float32
/// graph input gets a cast to the storage type before its first use, and each graph output is cast back to float32
/// under its own name, so callers pass and get float32 as before. Integer values are left as they are. The kernels
/// widen what they load and accumulate in float32; the graph says only where values are stored.
/// </summary>
public sealed class StoreIn16Bits(DType storage) : Pass
{
    /// <summary>The 16-bit storage type: bf16 or f16.</summary>
    public DType Storage { get; } = storage is DType.BF16 or DType.F16 ? storage
        : throw new ArgumentException($"{storage.Name()} is not a 16-bit storage type", nameof(storage));

    /// <inheritdoc/>
    public override string Name => "store-16bit";

    /// <inheritdoc/>
    public override bool Run(PassContext ctx)
    {
        var g = ctx.Graph;
        if (!g.Nodes.Any(n => n.Types.Any(t => t.DType == DType.F32))) return false;
        var taken = g.ValueTypes().Keys.ToHashSet(StringComparer.Ordinal);
        string Fresh(string v)
        {
            var name = $"{v}.{Storage.Name()}";
            for (int i = 2; taken.Contains(name); i++) name = $"{v}.{Storage.Name()}{i}";
            taken.Add(name);
            return name;
        }
        TensorType Retype(TensorType t) => t.DType == DType.F32 ? t with { DType = Storage } : t;
        var rename = new Dictionary<string, string>(StringComparer.Ordinal);
        var nodes = new List<Node>();
        foreach (var d in g.Inputs.Where(d => d.Type.DType == DType.F32))
        {
            rename[d.Name] = Fresh(d.Name);
            nodes.Add(new Node(new Cast(Storage), Vec.Of(d.Name), Vec.Of(rename[d.Name]), Vec.Of(Retype(d.Type))));
        }
        var types = g.ValueTypes();
        var produced = g.Nodes.SelectMany(n => n.Outputs).ToHashSet(StringComparer.Ordinal);
        // outputs a node computes (a graph input passed through as an output stays float32 as it is)
        var castOut = g.Outputs.Distinct().Where(o => produced.Contains(o) && types[o].DType == DType.F32).ToArray();
        foreach (var o in castOut) rename[o] = Fresh(o);
        string R(string v) => rename.GetValueOrDefault(v, v);
        foreach (var n in g.Nodes)
        {
            nodes.Add(n with
            {
                Inputs = n.Inputs.Select(R).ToArray(),
                Outputs = n.Outputs.Select(R).ToArray(),
                Types = n.Types.Select(Retype).ToArray(),
            });
        }
        foreach (var o in castOut)
        {
            nodes.Add(new Node(new Cast(DType.F32), Vec.Of(R(o)), Vec.Of(o), Vec.Of(types[o])));
        }
        var pars = g.Params.Select(p => p with { Type = Retype(p.Type) }).ToArray();
        foreach (var p in pars.Where(p => p.Type.DType == Storage))
        {
            ctx.Weights[p.Name] = ctx.Weights[p.Name].Cast(Storage);
        }
        ctx.Graph = g with { Params = pars, Nodes = nodes.ToArray() };
        return true;
    }
}
