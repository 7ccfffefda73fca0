namespace ShiftWise.IR.Ops;

/// <summary>The one table from .swir op names to attribute readers (no reflection).</summary>
public static class OpTable
{
    private static readonly Dictionary<string, Func<AttrReader, Op>> Readers = new()
    {
        ["conv2d"] = Conv2d.Read,
        ["shift_add"] = ShiftAdd.Read,
        ["batch_norm"] = BatchNorm.Read,
        ["layer_norm"] = LayerNorm.Read,
        ["grn"] = Grn.Read,
        ["linear"] = _ => new Linear(),
        ["gelu"] = _ => new Unary(UnaryKind.Gelu),
        ["relu"] = _ => new Unary(UnaryKind.Relu),
        ["sigmoid"] = _ => new Unary(UnaryKind.Sigmoid),
        ["add"] = _ => new Binary(BinaryKind.Add),
        ["mul"] = _ => new Binary(BinaryKind.Mul),
        ["mean"] = Mean.Read,
        ["softmax"] = Softmax.Read,
        ["cross_entropy"] = CrossEntropy.Read,
        ["drop_path"] = DropPath.Read,
        ["channel_select"] = ChannelSelect.Read,
        ["concat"] = Concat.Read,
        ["permute"] = Permute.Read,
        ["reshape"] = Reshape.Read,
        ["scale_bias"] = ScaleBias.Read,
        ["sw_cross"] = SwCross.Read,
        ["fused_shiftwise"] = FusedShiftWise.Read,
        ["gemm"] = Gemm.Read,
        ["gemm_grn_fold"] = GemmGrnFold.Read,
        ["grad"] = Grad.Read,
        ["cast"] = Cast.Read,
    };

    /// <summary>Every op name the parser knows.</summary>
    public static IEnumerable<string> Names => Readers.Keys;

    /// <summary>Finds the reader for an op name.</summary>
    public static bool TryGet(string name, out Func<AttrReader, Op> reader) => Readers.TryGetValue(name, out reader!);
}
