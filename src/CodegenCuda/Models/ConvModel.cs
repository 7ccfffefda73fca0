using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// Direct convolution, NCHW: one thread per output position and <see cref="ChannelsPerThread"/> neighbouring output
/// channels of one group, so each input value loaded feeds that many accumulators. Threads run along the output row
/// (coalesced input and output), and the warp shares its weights (one broadcast load per tap).
/// </summary>
public sealed class ConvModel : CudaKernelModel
{
    /// <summary>Taps per channel above which the tap loops are not unrolled.</summary>
    public const int UnrollLimit = 64;

    /// <summary>Builds the model for input <paramref name="x"/> and weight <paramref name="w"/>.</summary>
    public ConvModel(string name, int threads, Conv2d op, Shape x, Shape w, bool hasBias, int channelsPerThread)
        : base(name, "conv2d", threads, Math.Max(x.Elements, OutElements(op, x, w)))
    {
        (Batch, InChannels, Height, Width) = (x[0], x[1], x[2], x[3]);
        (OutChannels, GroupChannels, KernelHeight, KernelWidth) = (w[0], w[1], w[2], w[3]);
        OutHeight = op.OutSize(Height, KernelHeight, 0);
        OutWidth = op.OutSize(Width, KernelWidth, 1);
        GroupOutChannels = OutChannels / op.Groups;
        if (channelsPerThread < 1 || GroupOutChannels % channelsPerThread != 0)
        {
            throw new ArgumentException($"{channelsPerThread} channels per thread do not divide the {GroupOutChannels} "
                + $"output channels of a group");
        }
        ChannelsPerThread = channelsPerThread;
        (StrideY, StrideX) = (op.Stride[0], op.Stride[1]);
        (PadY, PadX) = (op.Padding[0], op.Padding[1]);
        (DilationY, DilationX) = (op.Dilation[0], op.Dilation[1]);
        HasBias = hasBias;
    }

    private static long OutElements(Conv2d op, Shape x, Shape w) =>
        (long)x[0] * w[0] * op.OutSize(x[2], w[2], 0) * op.OutSize(x[3], w[3], 1);

    /// <summary>N.</summary>
    public int Batch { get; }

    /// <summary>Input channels.</summary>
    public int InChannels { get; }

    /// <summary>Input height.</summary>
    public int Height { get; }

    /// <summary>Input width.</summary>
    public int Width { get; }

    /// <summary>Output channels.</summary>
    public int OutChannels { get; }

    /// <summary>Input channels per group (the weight's second axis).</summary>
    public int GroupChannels { get; }

    /// <summary>Output channels per group.</summary>
    public int GroupOutChannels { get; }

    /// <summary>Kernel height.</summary>
    public int KernelHeight { get; }

    /// <summary>Kernel width.</summary>
    public int KernelWidth { get; }

    /// <summary>Output height.</summary>
    public int OutHeight { get; }

    /// <summary>Output width.</summary>
    public int OutWidth { get; }

    /// <summary>Vertical stride.</summary>
    public int StrideY { get; }

    /// <summary>Horizontal stride.</summary>
    public int StrideX { get; }

    /// <summary>Top padding.</summary>
    public int PadY { get; }

    /// <summary>Left padding.</summary>
    public int PadX { get; }

    /// <summary>Vertical dilation.</summary>
    public int DilationY { get; }

    /// <summary>Horizontal dilation.</summary>
    public int DilationX { get; }

    /// <summary>A bias operand is added.</summary>
    public bool HasBias { get; }

    /// <summary>Output channels each thread computes.</summary>
    public int ChannelsPerThread { get; }

    /// <summary>The accumulator indices 0..ChannelsPerThread−1.</summary>
    public int[] Accumulators => Enumerable.Range(0, ChannelsPerThread).ToArray();

    /// <summary>Groups of <see cref="ChannelsPerThread"/> output channels.</summary>
    public int ChannelBlocks => OutChannels / ChannelsPerThread;

    /// <summary>Threads in all: one per (n, channel block, output row, output column).</summary>
    public long Work => (long)Batch * ChannelBlocks * OutHeight * OutWidth;

    /// <summary>Threads per image.</summary>
    public long ImageWork => (long)ChannelBlocks * OutHeight * OutWidth;

    /// <summary>Output plane size.</summary>
    public long OutPlane => (long)OutHeight * OutWidth;

    /// <summary>Input plane size.</summary>
    public long InPlane => (long)Height * Width;

    /// <summary>Weights per output channel.</summary>
    public long WeightsPerChannel => (long)GroupChannels * KernelHeight * KernelWidth;

    /// <summary>Taps per input channel.</summary>
    public int Taps => KernelHeight * KernelWidth;

    /// <summary>
    /// Rows need a bounds check (only with padding: without it every tap of a valid output is inside).
    /// </summary>
    public bool CheckRows => PadY > 0;

    /// <summary>Columns need a bounds check.</summary>
    public bool CheckColumns => PadX > 0;

    /// <summary>Unroll the tap loops.</summary>
    public bool Unroll => Taps <= UnrollLimit;

    /// <summary>There is more than one input channel per group (the channel loop is not trivial).</summary>
    public bool ChannelLoop => GroupChannels > 1;
}
