namespace ShiftWise.CodegenCuda;

/// <summary>
/// grn_fold.cu.sbn: GRN's apply folded into the next GEMM's weights (<see cref="GrnFoldLowering"/>): per sample n the
/// consumer's O×K weight scaled along k by GRN's factor, w2s[n][o][k] = w2[o][k]·factor[n][k], one value per thread,
/// in the storage type (the factor is float32).
/// </summary>
public sealed class GrnFoldModel : CudaKernelModel
{
    /// <summary>Builds the model for <paramref name="batch"/> samples of an O×K weight.</summary>
    public GrnFoldModel(string name, int threads, int batch, int outFeatures, int channels)
        : base(name, "grn_fold", threads, (long)batch * outFeatures * channels)
    {
        (Batch, OutFeatures, Channels) = (batch, outFeatures, channels);
    }

    /// <summary>N.</summary>
    public int Batch { get; }

    /// <summary>O: the consumer's output features.</summary>
    public int OutFeatures { get; }

    /// <summary>K: GRN's channels, the consumer's input features.</summary>
    public int Channels { get; }

    /// <summary>O·K: one sample's weights.</summary>
    public long Weights => (long)OutFeatures * Channels;

    /// <summary>N·O·K: the scaled weights.</summary>
    public long Total => Batch * Weights;
}
