using ShiftWise.Codegen;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// Global response normalisation in three entries of one kernel source, for a standalone grn node (NHWC) and for
/// the GRN epilogue of a GEMM (NHWC or NCHW output):
/// <list type="number">
/// <item>name_stats: per (n, c) the sum of squares over the positions, into a scratch of N·C floats. In a GEMM
/// epilogue it first applies the bias and the activation in place, so the statistics see the activated values.
/// Channels-last: 32 channels per block along threadIdx.x % 32 (coalesced), the warps split the positions and
/// their partial sums meet in shared memory in a fixed order. Channels-first: one warp per (n, c) row.</item>
/// <item>name_scale: one block per sample turns the sums in place into the factor γ·G/(mean G + ε) + 1, G = √sum.</item>
/// <item>name_apply: one thread per element, y = v·factor[n, c] + β[c] (+ residual).</item>
/// </list>
/// </summary>
public sealed class GrnModel : CudaKernelModel
{
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
