using ShiftWise.Codegen;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// BatchNorm with batch statistics (training forward) and its backward, on x viewed as (N, C, inner): one block per
/// channel. Each thread walks a strided share of the N·inner values of its channel and the block adds the
/// per-thread partials by a shared-memory tree, so every sum has an order fixed by the block size (no atomics). The
/// statistics are taken in two passes (mean, then squared deviations), as the reference does. The forward writes y
/// and, from thread 0, the updated running mean and variance (momentum, unbiased variance); the backward writes the
/// requested of dx, dweight, dbias.
/// </summary>
public sealed class BatchNormTrainModel : CudaKernelModel
{
    /// <summary>Builds the model; <paramref name="kind"/> is batch_norm_train or grad_batch_norm.</summary>
    public BatchNormTrainModel(string name, string kind, int threads, int batch, int channels, long inner,
        double eps, double momentum, string parameters, bool dx = false, bool dweight = false, bool dbias = false)
        : base(name, kind, threads, (long)batch * channels * inner)
    {
        Batch = batch;
        Channels = channels;
        Inner = inner;
        Count = batch * inner;
        if (Count < 2) throw new ArgumentException($"batch statistics need more than one value, got {Count}");
        Eps = Literal.F(eps);
        InvCount = Literal.F(1.0 / Count);
        Keep = Literal.F(1 - momentum);
        Momentum = Literal.F(momentum);
        Unbias = Literal.F((double)Count / (Count - 1));
        Parameters = parameters;
        (Dx, Dweight, Dbias) = (dx, dweight, dbias);
    }

    /// <summary>N.</summary>
    public int Batch { get; }

    /// <summary>C (one block each).</summary>
    public int Channels { get; }

    /// <summary>Elements per (n, c): H·W.</summary>
    public long Inner { get; }

    /// <summary>Values per channel: N·inner.</summary>
    public long Count { get; }

    /// <summary>C·inner: the stride of n.</summary>
    public long ImageSize => Channels * Inner;

    /// <summary>eps as a float literal.</summary>
    public string Eps { get; }

    /// <summary>1/count as a float literal.</summary>
    public string InvCount { get; }

    /// <summary>1 − momentum.</summary>
    public string Keep { get; }

    /// <summary>The momentum.</summary>
    public string Momentum { get; }

    /// <summary>count/(count − 1): biased to unbiased variance.</summary>
    public string Unbias { get; }

    /// <summary>The entry's parameter list.</summary>
    public string Parameters { get; }

    /// <summary>The backward writes dx.</summary>
    public bool Dx { get; }

    /// <summary>The backward writes dweight.</summary>
    public bool Dweight { get; }

    /// <summary>The backward writes dbias.</summary>
    public bool Dbias { get; }

    /// <summary>The first stride of the tree (half the block).</summary>
    public int HalfThreads => Threads / 2;
}

/// <summary>
/// The backward of LayerNorm on x viewed as (outer, C, inner) (channels-last: inner = 1; channels-first: inner = H·W),
/// in three entries of one source:
/// <list type="number">
/// <item>name_stats: one thread per position (o, k) writes the mean and 1/√(var + eps) of its C values into a
/// scratch of 2·positions floats (two passes, in channel order).</item>
/// <item>name_dx: one thread per position: dx = rstd·(g·w − mean(g·w) − x̂·mean(g·w·x̂)) over its C values.</item>
/// <item>name_params: one block per channel sums g·x̂ (dweight) and g (dbias) over the positions, a strided share per
/// thread then a shared-memory tree: a fixed order, no atomics.</item>
/// </list>
/// </summary>
public sealed class LayerNormGradModel : CudaKernelModel
{
    /// <summary>Builds the model; the parameter lists are for the entries in the order listed on the class.</summary>
    public LayerNormGradModel(string name, int threads, long outer, int channels, long inner, double eps,
        bool dx, bool dweight, bool dbias, string statsParams, string dxParams, string paramsParams)
        : base(name, "grad_layer_norm", threads, outer * channels * inner)
    {
        Channels = channels;
        Inner = inner;
        Positions = outer * inner;
        Eps = Literal.F(eps);
        InvChannels = Literal.F(1.0 / channels);
        (Dx, Dweight, Dbias) = (dx, dweight, dbias);
        (StatsParams, DxParams, ParamsParams) = (statsParams, dxParams, paramsParams);
    }

    /// <summary>C, the normalised axis.</summary>
    public int Channels { get; }

    /// <summary>Elements after the normalised axis (its stride).</summary>
    public long Inner { get; }

    /// <summary>outer·inner positions, each normalised over C values.</summary>
    public long Positions { get; }

    /// <summary>C·inner: the stride of the outer index.</summary>
    public long RowSize => Channels * Inner;

    /// <summary>eps as a float literal.</summary>
    public string Eps { get; }

    /// <summary>1/C as a float literal.</summary>
    public string InvChannels { get; }

    /// <summary>The dx entry is present.</summary>
    public bool Dx { get; }

    /// <summary>The params entry writes dweight.</summary>
    public bool Dweight { get; }

    /// <summary>The params entry writes dbias.</summary>
    public bool Dbias { get; }

    /// <summary>The stats entry's parameter list.</summary>
    public string StatsParams { get; }

    /// <summary>The dx entry's parameter list.</summary>
    public string DxParams { get; }

    /// <summary>The params entry's parameter list.</summary>
    public string ParamsParams { get; }

    /// <summary>The first stride of the tree (half the block).</summary>
    public int HalfThreads => Threads / 2;

    /// <summary>Floats of the statistics scratch: mean and rstd per position.</summary>
    public long StatsFloats => 2 * Positions;

    /// <summary>The entry names: stats, then dx and params where present.</summary>
    public static IReadOnlyList<string> Entries(string name, bool dx, bool parameters) =>
        new[] { "_stats", dx ? "_dx" : null, parameters ? "_params" : null }.OfType<string>().Select(e => name + e)
            .ToArray();
}

/// <summary>
/// The backward of GRN on NHWC x viewed as (N, P = H·W, C), in four entries of one source (with G_c = ‖x_c‖ over P,
/// D = mean G + eps, s_c = Σ_p g·x, a_c = γ_c·s_c):
/// <list type="number">
/// <item>name_stats: one thread per (n, c) sums x², g·x and g over the positions in order, into a scratch
/// [G | s | Σg] of 3·N·C floats.</item>
/// <item>name_scale: one thread per sample: D, Σ_c a_c·G_c, then per channel the factors
/// f1 = γ·G/D + 1 and f2 = (a/D − Σ a·G/(C·D²))/G (0 where G = 0) into a scratch [f1 | f2 | D].</item>
/// <item>name_dx: one thread per element: dx = g·f1 + x·f2.</item>
/// <item>name_params: one thread per channel adds over the samples in order: dγ = Σ s·G/D, dβ = Σ Σg.</item>
/// </list>
/// </summary>
public sealed class GrnGradModel : CudaKernelModel
{
    /// <summary>Builds the model; the parameter lists are for the entries in the order listed on the class.</summary>
    public GrnGradModel(string name, int threads, int batch, long positions, int channels, double eps,
        bool dx, bool dgamma, bool dbeta, IReadOnlyList<string> parameters)
        : base(name, "grad_grn", threads, batch * positions * channels)
    {
        Batch = batch;
        Positions = positions;
        Channels = channels;
        Eps = Literal.F(eps);
        InvChannels = Literal.F(1.0 / channels);
        (Dx, Dgamma, Dbeta) = (dx, dgamma, dbeta);
        (StatsParams, ScaleParams, DxParams, ParamsParams) = (parameters[0], parameters[1], parameters[2],
            parameters[3]);
    }

    /// <summary>N.</summary>
    public int Batch { get; }

    /// <summary>H·W.</summary>
    public long Positions { get; }

    /// <summary>C.</summary>
    public int Channels { get; }

    /// <summary>eps as a float literal.</summary>
    public string Eps { get; }

    /// <summary>1/C as a float literal.</summary>
    public string InvChannels { get; }

    /// <summary>The dx entry is present.</summary>
    public bool Dx { get; }

    /// <summary>The params entry writes dgamma.</summary>
    public bool Dgamma { get; }

    /// <summary>The params entry writes dbeta.</summary>
    public bool Dbeta { get; }

    /// <summary>N·C: rows of the statistics.</summary>
    public long Rows => (long)Batch * Channels;

    /// <summary>Elements per sample.</summary>
    public long ImageSize => Positions * Channels;

    /// <summary>Elements.</summary>
    public long Total => Batch * Positions * Channels;

    /// <summary>Floats of the sums scratch: [G | s | Σg].</summary>
    public long SumFloats => 3 * Rows;

    /// <summary>Floats of the factor scratch: [f1 | f2 | D].</summary>
    public long FactorFloats => 2 * Rows + Batch;

    /// <summary>The stats entry's parameter list.</summary>
    public string StatsParams { get; }

    /// <summary>The scale entry's parameter list.</summary>
    public string ScaleParams { get; }

    /// <summary>The dx entry's parameter list.</summary>
    public string DxParams { get; }

    /// <summary>The params entry's parameter list.</summary>
    public string ParamsParams { get; }

    /// <summary>The entry names: stats, scale, then dx and params where present.</summary>
    public static IReadOnlyList<string> Entries(string name, bool dx, bool parameters) =>
        new[] { "_stats", "_scale", dx ? "_dx" : null, parameters ? "_params" : null }.OfType<string>()
            .Select(e => name + e).ToArray();
}
