using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Passes;

/// <summary>
/// Mixed-precision training (issue 22), on the forward training graph before autodiff: activations are stored in
/// <see cref="Storage"/> (bf16 or f16) while the parameters stay float32 (the master weights the optimizer updates),
/// each cast to 16 bits once per step where a 16-bit op uses it. Batch norm (its running statistics), softmax and the
/// loss stay float32, as PyTorch's autocast keeps them; their 16-bit inputs are widened. Graph inputs and outputs keep
/// their names and float32 types. Autodiff then differentiates through the casts, so every parameter's gradient comes
/// out in float32. With <see cref="LossScale"/> (fp16) the differentiated loss is the loss times a graph input
/// <see cref="ScaleInput"/>, which the trainer sets (dynamic loss scaling); the loss output stays unscaled.
/// </summary>
public sealed class MixedPrecision(DType storage, bool lossScale) : Pass
{
    /// <summary>The graph input holding the loss scale (a float32 of the loss's shape).</summary>
    public const string ScaleInput = "loss_scale";

    /// <summary>The 16-bit storage type: bf16 or f16.</summary>
    public DType Storage { get; } = storage is DType.BF16 or DType.F16 ? storage
        : throw new ArgumentException($"{storage.Name()} is not a 16-bit storage type", nameof(storage));

    /// <summary>Whether the loss is multiplied by <see cref="ScaleInput"/> before autodiff.</summary>
    public bool LossScale { get; } = lossScale;

    /// <inheritdoc/>
    public override string Name => "mixed-precision";

    /// <summary>Ops that run in float32 whatever the storage type: their statistics and the loss need it.</summary>
    public static bool KeepsFloat32(Op op) => op is BatchNorm or CrossEntropy or Softmax;

    /// <inheritdoc/>
    public override bool Run(PassContext ctx)
    {
        var g = ctx.Graph;
        if (g.Nodes.Any(n => n.Op is Grad or Cast)) return false; // after autodiff, or already mixed
        var loss = ctx.Loss ?? (g.Outputs.Count > 0 ? g.Outputs[0] : null);
        var types = g.ValueTypes();
        var taken = types.Keys.ToHashSet(StringComparer.Ordinal);
        string Fresh(string v, DType t)
        {
            var name = $"{v}.{t.Name()}";
            for (int i = 2; taken.Contains(name); i++) name = $"{v}.{t.Name()}{i}";
            taken.Add(name);
            return name;
        }
        var outputs = g.Outputs.ToHashSet(StringComparer.Ordinal);
        // a graph output a 16-bit node computes is computed under another name and cast back under its own
        var rename = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var n in g.Nodes.Where(n => !KeepsFloat32(n.Op)))
        {
            for (int j = 0; j < n.Outputs.Count; j++)
            {
                if (outputs.Contains(n.Outputs[j]) && n.Types[j].DType == DType.F32)
                {
                    rename[n.Outputs[j]] = Fresh(n.Outputs[j], Storage);
                }
            }
        }
        var nodes = new List<Node>();
        var casts = new Dictionary<(string, DType), string>();
        var now = new Dictionary<string, TensorType>(types, StringComparer.Ordinal);
        string As(string v, DType want)
        {
            var t = now[v];
            if (t.DType == want || !(t.DType is DType.F32 || t.DType == Storage)) return v;
            if (casts.TryGetValue((v, want), out var c)) return c;
            c = casts[(v, want)] = Fresh(v, want);
            now[c] = t with { DType = want };
            nodes.Add(new Node(new Cast(want), Vec.Of(v), Vec.Of(c), Vec.Of(now[c])));
            return c;
        }
        foreach (var n in g.Nodes)
        {
            var want = KeepsFloat32(n.Op) ? DType.F32 : Storage;
            var ins = n.Inputs.Select(i => As(i, want)).ToArray();
            var outs = n.Outputs.Select(o => rename.GetValueOrDefault(o, o)).ToArray();
            var ts = n.Types.Select(t => t.DType == DType.F32 ? t with { DType = want } : t).ToArray();
            for (int j = 0; j < outs.Length; j++) now[outs[j]] = ts[j];
            nodes.Add(n with { Inputs = ins, Outputs = outs, Types = ts });
            for (int j = 0; j < outs.Length; j++)
            {
                if (!rename.ContainsKey(n.Outputs[j])) continue;
                // the float32 graph output, right after its producer (float32 consumers use it too)
                var o = n.Outputs[j];
                now[o] = types[o];
                casts[(outs[j], DType.F32)] = o;
                nodes.Add(new Node(new Cast(DType.F32), Vec.Of(outs[j]), Vec.Of(o), Vec.Of(types[o])));
            }
        }
        var inputs = g.Inputs.ToList();
        if (LossScale)
        {
            if (loss is null || !now.TryGetValue(loss, out var lt) || lt.DType != DType.F32)
            {
                throw new IrException($"graph '{g.Name}': loss scaling needs a float32 loss, got "
                    + (loss is null ? "none" : $"%{loss}"));
            }
            if (taken.Contains(ScaleInput))
            {
                throw new IrException($"graph '{g.Name}' already has a value %{ScaleInput}");
            }
            inputs.Add(new ValueDecl(ScaleInput, lt));
            var scaled = loss + ".scaled";
            for (int i = 2; taken.Contains(scaled); i++) scaled = $"{loss}.scaled{i}";
            nodes.Add(new Node(new Binary(BinaryKind.Mul), Vec.Of(loss, ScaleInput), Vec.Of(scaled), Vec.Of(lt)));
            ctx.Loss = scaled;
        }
        ctx.Graph = g with { Inputs = inputs.ToArray(), Nodes = nodes.ToArray() };
        return true;
    }
}
