namespace ShiftWise.CodegenCuda;

/// <summary>
/// One thread per element: v = src[i]; v += pre_bias[c]; v = act(v); v = v·scale[c] + shift[c]; v += res[i];
/// y[i] = v, each step present or not. Channel c = (i / Inner) mod Channels. Serves unary ops, scale_bias and the
/// GEMM epilogue without GRN (in place on the GEMM's output, <see cref="InPlace"/>).
/// </summary>
public sealed class PointwiseModel : CudaKernelModel
{
    /// <summary>
    /// Builds the model; <paramref name="signature"/> must declare y, then x unless in place, then the operands used.
    /// </summary>
    public PointwiseModel(string name, string kind, int threads, long total, string act, bool inPlace, bool hasPreBias,
        bool hasAffine, bool hasResidual, int channels, long inner, KernelSignature signature)
        : base(name, kind, threads, total)
    {
        if (total < 1) throw new ArgumentOutOfRangeException(nameof(total));
        if ((hasPreBias || hasAffine) && (channels < 1 || inner < 1 || channels * inner > total))
        {
            throw new ArgumentException($"channels {channels} with inner {inner} do not fit {total} elements");
        }
        Total = total;
        Act = act;
        InPlace = inPlace;
        HasPreBias = hasPreBias;
        HasAffine = hasAffine;
        HasResidual = hasResidual;
        Channels = channels;
        Inner = inner;
        Params = signature.Declarations;
    }

    /// <summary>Elements.</summary>
    public long Total { get; }

    /// <summary>Activation word (none, gelu, relu, sigmoid).</summary>
    public string Act { get; }

    /// <summary>1/√2 for GELU.</summary>
    public string InvSqrt2 => Activation.InvSqrt2;

    /// <summary>Reads y and writes it back instead of reading x.</summary>
    public bool InPlace { get; }

    /// <summary>Adds pre_bias[c] before the activation.</summary>
    public bool HasPreBias { get; }

    /// <summary>Applies scale[c], shift[c] after the activation.</summary>
    public bool HasAffine { get; }

    /// <summary>Adds res[i] last.</summary>
    public bool HasResidual { get; }

    /// <summary>Channel count of the per-channel operands.</summary>
    public int Channels { get; }

    /// <summary>Elements per channel run (1 when the channel is the innermost axis).</summary>
    public long Inner { get; }

    /// <summary>Whether the kernel needs the channel index.</summary>
    public bool NeedsChannel => HasPreBias || HasAffine;

    /// <summary>The entry's parameter list.</summary>
    public string Params { get; }
}
