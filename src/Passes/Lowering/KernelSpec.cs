using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Passes.Lowering;

/// <summary>
/// The specialised SW layer: a <see cref="FusedShiftWise"/> node on a known input shape, the one kernel with tunables.
/// It is target-free: each target's tunables, defaults and search space are in its own
/// <see cref="ISwTunables"/> (CodegenCpu's SwCpuTunables, CodegenCuda's SwCudaTunables).
/// </summary>
/// <param name="Name">Unique per specialisation: the shape, band, channels and a hash of the attributes.</param>
/// <param name="Op">The fused op.</param>
/// <param name="Input">The input shape (N, C, H, W).</param>
public sealed record SwLayerSpec(string Name, FusedShiftWise Op, Shape Input)
{
    /// <summary>The spec of a fused_shiftwise node on a float32 input of shape <paramref name="x"/>.</summary>
    public static SwLayerSpec Of(Node n, Shape x) => Of(n, new TensorType(DType.F32, x));

    /// <summary>
    /// The spec of a fused_shiftwise node on input <paramref name="x"/>: a 16-bit input (--precision bf16 / fp16)
    /// is another kernel, with its own name, hash and tuning entry (float32 names and hashes are as they were).
    /// </summary>
    public static SwLayerSpec Of(Node n, TensorType x) => Of((FusedShiftWise)n.Op, x);

    /// <summary>The spec of a fused_shiftwise op on input <paramref name="x"/>.</summary>
    public static SwLayerSpec Of(FusedShiftWise op, TensorType x)
    {
        var s = op.Shift;
        var shape = x.Shape;
        var mark = x.DType == DType.F32 ? "" : "_" + x.DType.Name();
        var hash = Sha(SpecText(op, shape, x.DType))[..8];
        var name = string.Create(CultureInfo.InvariantCulture,
            $"sw_fused_b{s.Big}k{s.Small}g{s.NRep}_c{shape[1]}_h{shape[2]}w{shape[3]}{mark}_{hash}");
        return new SwLayerSpec(name, op, shape) { Storage = x.DType };
    }

    /// <summary>The specs of every fused_shiftwise node of a graph, by node name, each computed once.</summary>
    public static IReadOnlyDictionary<string, SwLayerSpec> AllOf(Graph g)
    {
        var types = g.ValueTypes();
        return g.Nodes.Where(n => n.Op is FusedShiftWise)
            .ToDictionary(n => n.Name, n => Of(n, types[n.Inputs[0]]), StringComparer.Ordinal);
    }

    /// <summary>
    /// <see cref="Name"/> of the same layer at batch 1: a kernel that takes the batch as an argument (the CPU's) is
    /// named by it, so that one compiled kernel serves every batch (swc run at a batch chosen at run time).
    /// </summary>
    public string NameAtBatch1 => Input.Rank == 0 || Input[0] == 1 ? Name
        : Of(Op, new TensorType(Storage, Input.With(0, 1))).Name;

    /// <summary>The element type of the layer's tensors: f32, or bf16 / f16 (float32 arithmetic).</summary>
    public DType Storage { get; init; } = DType.F32;

    /// <summary>R, rep channels.</summary>
    public int Rep => Op.Rep.Count;

    /// <summary>
    /// SHA-256 (hex) over everything that specialises the kernel: the op's attributes (shift tables, kept channels),
    /// the input shape and the storage type; it keys the tuning cache.
    /// </summary>
    public string Hash => Sha("fused_shiftwise\n" + SpecText(Op, Input, Storage));

    /// <summary>Width of the band: n·k.</summary>
    public int BandWidth => Op.Shift.N * Op.Shift.Small;

    /// <summary>Position of each kept sub-channel in <see cref="FusedShiftWise.Subs"/>, by sub-channel.</summary>
    public Dictionary<int, int> KeptSlots()
    {
        var slot = new Dictionary<int, int>();
        for (int i = 0; i < Op.Subs.Count; i++) slot[Op.Subs[i]] = i;
        return slot;
    }

    /// <summary>
    /// Per rep channel, its first kept sub-kernel (R + 1 entries; the kept ones of channel o are start[o]..start[o+1]).
    /// </summary>
    public int[] SubStart()
    {
        var start = new int[Rep + 1];
        foreach (var t in Op.Subs) start[t / Op.Shift.N + 1]++;
        for (int o = 0; o < Rep; o++) start[o + 1] += start[o];
        return start;
    }

    /// <summary>Per kept sub-kernel and replica, its horizontal (or vertical) shift: |Subs|·N_rep entries.</summary>
    public int[] KeptShifts(bool vertical)
    {
        var s = Op.Shift;
        return Op.Subs.SelectMany(t => Enumerable.Range(0, s.NRep)
            .Select(g => vertical ? s.ShiftV(t, g) : s.ShiftH(t, g))).ToArray();
    }

    private static string SpecText(FusedShiftWise op, Shape x, DType storage)
    {
        var w = new AttrWriter();
        op.WriteAttrs(w);
        // float32 specs hash as before the 16-bit types existed, so tuning caches stay valid
        var type = storage == DType.F32 ? "" : ";storage=" + storage.Name();
        return x + ";" + string.Join(";", w.Items.Select(i => i.Name + "=" + i.Text)) + type;
    }

    private static string Sha(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
}

/// <summary>
/// One target's tunables of an SW layer kernel: their legal values, the defaults its cost model picks, and the search
/// space the tuner measures. "lowering" is common to all (0 the collapsed cross, 1 the factorised form; CUDA also has
/// 2, the register-blocked cross).
/// </summary>
public interface ISwTunables
{
    /// <summary>The legal values of every tunable of <paramref name="spec"/>.</summary>
    IReadOnlyDictionary<string, int[]> ValuesOf(SwLayerSpec spec);

    /// <summary>The defaults for <paramref name="spec"/> (every value legal).</summary>
    IReadOnlyDictionary<string, int> DefaultsOf(SwLayerSpec spec);

    /// <summary>The configurations the tuner measures, the default first, pruned before anything is compiled.</summary>
    List<IReadOnlyDictionary<string, int>> SearchSpace(SwLayerSpec spec);

    /// <summary>A configuration as "k=v, ..." in name order.</summary>
    static string Text(IReadOnlyDictionary<string, int> c) =>
        string.Join(", ", c.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={kv.Value}"));
}
