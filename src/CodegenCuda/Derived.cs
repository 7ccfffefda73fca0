using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// The recipes of <see cref="DerivedTensor"/>s: tensors the runtime computes once from a node's parameters when it
/// binds a plan. Pure arithmetic, shared by the CUDA executor, the emulator and the standalone emitter.
/// </summary>
public static class Derived
{
    /// <summary>The SW layer's horizontal band with the vertical band's centre merged in (R·k·n·k floats).</summary>
    public const string SwBandH = "sw_band_h";

    /// <summary>The SW layer's vertical band without its centre (R·n·k·k floats).</summary>
    public const string SwBandV = "sw_band_v";

    /// <summary>
    /// The recipe of <paramref name="band"/> (<see cref="SwBandH"/> or <see cref="SwBandV"/>) in
    /// <paramref name="storage"/>: the band itself in float32; in bf16 / fp16 (issue 22) "band_bf16" / "band_fp16",
    /// the float32 band rounded to the type (nearest, ties to even) and packed two values to a float slot, the first
    /// in the low half (as 16-bit parameters travel).
    /// </summary>
    public static string Band(string band, DType storage) =>
        storage == DType.F32 ? band : band + "_" + Types16.Name(storage);

    /// <summary>Float slots of <paramref name="values"/> band values in <paramref name="storage"/>.</summary>
    public static long BandFloats(long values, DType storage) => storage == DType.F32 ? values : (values + 1) / 2;

    /// <summary>
    /// Every derived tensor of <paramref name="plan"/> from the graph's weights, by name; checks that each recipe's
    /// node exists, reads only parameters, and gives the planned size.
    /// </summary>
    public static Dictionary<string, float[]> ComputeAll(CudaPlan plan, Graph g,
        IReadOnlyDictionary<string, Tensor> weights)
    {
        var nodes = g.Nodes.ToDictionary(n => n.Name, StringComparer.Ordinal);
        var result = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var d in plan.Derived)
        {
            var node = nodes.GetValueOrDefault(d.Node)
                ?? throw new IrException($"derived {d.Name}: the graph has no node %{d.Node}");
            Tensor Input(int i) => weights.TryGetValue(node.Inputs[i], out var t)
                ? t
                : throw new IrException($"derived {d.Name}: input {i} of {node.Describe()} is not a parameter");
            var data = Compute(d.Recipe, node, Input);
            if (data.Length != d.Floats)
            {
                throw new IrException($"derived {d.Name}: {data.Length} floats computed, {d.Floats} planned");
            }
            result[d.Name] = data;
        }
        return result;
    }

    /// <summary>
    /// Computes <paramref name="recipe"/> for <paramref name="node"/>, reading its inputs through
    /// <paramref name="input"/>.
    /// </summary>
    public static float[] Compute(string recipe, Node node, Func<int, Tensor> input)
    {
        switch (recipe)
        {
            case SwBandH:
            case SwBandV:
            {
                var op = node.Op as FusedShiftWise
                    ?? throw new IrException($"{node.Describe()}: recipe {recipe} needs a fused_shiftwise node");
                var cross = SwCollapse.Collapse(op.Shift, op.Subs, input(1).ToDoubles(), input(2).ToDoubles());
                var (h, v) = cross.Merged();
                return recipe == SwBandH ? h : v;
            }
            case SwBandH + "_bf16":
            case SwBandV + "_bf16":
            case SwBandH + "_fp16":
            case SwBandV + "_fp16":
            {
                var t = recipe.EndsWith("_bf16", StringComparison.Ordinal) ? DType.BF16 : DType.F16;
                return Pack(Compute(recipe[..^5], node, input), t);
            }
            default:
                throw new IrException($"{node.Describe()}: unknown derived tensor recipe '{recipe}'");
        }
    }

    // each value rounded to t, two to a float slot (the first in the low 16 bits; a zero pad when odd)
    private static float[] Pack(float[] v, DType t)
    {
        var r = new float[(v.Length + 1) / 2];
        for (int i = 0; i < r.Length; i++)
        {
            uint lo = Float16Bits.Round(v[2 * i], t);
            uint hi = 2 * i + 1 < v.Length ? Float16Bits.Round(v[2 * i + 1], t) : 0u;
            r[i] = BitConverter.UInt32BitsToSingle(lo | hi << 16);
        }
        return r;
    }
}
