using ShiftWise.Codegen;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// Global response normalisation in three entries of one kernel source, for a standalone grn node (NHWC) and for
/// the GRN epilogue of a GEMM (NHWC or NCHW output):
/// <list type="number">
/// <item>name_stats: per (n, split, c) the sum of squares over a range of positions, into a scratch of
/// N·<see cref="Splits"/>·C partial sums. In a GEMM epilogue it first applies the bias and the activation in place,
/// so the statistics see the activated values. Channels-last: grid (channel blocks, splits, N), 32 channels per
/// block along threadIdx.x % 32 (coalesced), the warps split the block's positions and their partial sums meet in
/// shared memory in a fixed order; the splits give a large plane enough blocks. Channels-first: one warp per
/// (n, c) row, one split.</item>
/// <item>name_scale: one block per sample adds the splits in order, G = √sum, and writes the factor
/// γ·G/(mean G + ε) + 1 into a scratch of N·C floats.</item>
/// <item>name_apply: one thread per element, y = v·factor[n, c] + β[c] (+ residual). Not launched where
/// <see cref="GrnFoldLowering"/> folds it into the next GEMM's weights.</item>
/// </list>
/// </summary>
public sealed class GrnModel : CudaKernelModel
{
    /// <summary>
    /// Positions each thread of a channels-last stats block should sum at least (sets the split count).
    /// </summary>
    public const int PositionsPerThread = 16;

    /// <summary>Builds the model. Signatures are for the three entries, in the order listed on the class.</summary>
    public GrnModel(string name, string kind, int threads, int batch, long positions, int channels, bool channelsFirst,
        double eps, bool inPlace, string act, bool hasBias, bool hasBeta, bool hasResidual,
        KernelSignature stats, KernelSignature scale, KernelSignature apply)
        : base(name, kind, threads, batch * positions * channels)
    {
        Batch = batch;
        Positions = positions;
        Channels = channels;
        ChannelsFirst = channelsFirst;
        Eps = Literal.F(eps);
        InvChannels = Literal.F(1.0 / channels);
        InPlace = inPlace;
        Act = act;
        HasBias = hasBias;
        HasBeta = hasBeta;
        HasResidual = hasResidual;
        int splits = channelsFirst ? 1 : (int)Math.Clamp((positions + Warps * PositionsPerThread - 1)
            / (Warps * PositionsPerThread), 1, 65535);
        Chunk = Math.Max(1, (positions + splits - 1) / splits);
        Splits = (int)Math.Max(1, (positions + Chunk - 1) / Chunk);
        StatsParams = stats.Declarations;
        ScaleParams = scale.Declarations;
        ApplyParams = apply.Declarations;
    }

    /// <summary>N.</summary>
    public int Batch { get; }

    /// <summary>H·W.</summary>
    public long Positions { get; }

    /// <summary>C.</summary>
    public int Channels { get; }

    /// <summary>The tensor is NCHW (rows of positions per channel) rather than NHWC.</summary>
    public bool ChannelsFirst { get; }

    /// <summary>eps as a float literal.</summary>
    public string Eps { get; }

    /// <summary>1/C as a float literal.</summary>
    public string InvChannels { get; }

    /// <summary>1/√2 for GELU.</summary>
    public string InvSqrt2 => Activation.InvSqrt2;

    /// <summary>Stats and apply work in place on y (a GEMM's output) instead of reading x.</summary>
    public bool InPlace { get; }

    /// <summary>Activation applied by the stats entry (none, gelu, relu, sigmoid).</summary>
    public string Act { get; }

    /// <summary>The stats entry adds bias[c] before the activation.</summary>
    public bool HasBias { get; }

    /// <summary>The apply entry adds β[c].</summary>
    public bool HasBeta { get; }

    /// <summary>The apply entry adds res[i].</summary>
    public bool HasResidual { get; }

    /// <summary>Ranges of positions summed separately (grid.y of the channels-last stats entry).</summary>
    public int Splits { get; }

    /// <summary>Positions per split (the last may have fewer).</summary>
    public long Chunk { get; }

    /// <summary>Floats of the partial sums: N·Splits·C.</summary>
    public long PartialFloats => (long)Batch * Splits * Channels;

    /// <summary>Partial sums per sample: Splits·C.</summary>
    public long SampleSums => (long)Splits * Channels;

    /// <summary>N·C: rows of the statistics.</summary>
    public long Rows => (long)Batch * Channels;

    /// <summary>Elements.</summary>
    public long Total => Batch * Positions * Channels;

    /// <summary>Elements per sample.</summary>
    public long ImageSize => Positions * Channels;

    /// <summary>Channel blocks of 32 (channels-last stats grid.x).</summary>
    public int ChannelBlocks => (Channels + 31) / 32;

    /// <summary>The stats entry's parameter list.</summary>
    public string StatsParams { get; }

    /// <summary>The scale entry's parameter list.</summary>
    public string ScaleParams { get; }

    /// <summary>The apply entry's parameter list.</summary>
    public string ApplyParams { get; }

    /// <summary>The entry names: stats, scale, apply.</summary>
    public static IReadOnlyList<string> Entries(string name) => [name + "_stats", name + "_scale", name + "_apply"];
}
