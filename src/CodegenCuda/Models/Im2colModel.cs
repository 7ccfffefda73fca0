using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// im2col.cu.sbn: unfolds a dense conv2d's input for a GEMM (<see cref="ConvLowering"/>'s tensor-core path). For
/// sample n the columns are a row-major [C·KH·KW][P] block (P = OH·OW output positions), one value per thread:
/// col[n][(c·KH + ky)·KW + kx][p] = x[n][c][oy·sy − py + ky·dy][ox·sx − px + kx·dx], zero outside the image. Values
/// are copied as they are (16-bit patterns bit for bit), so the GEMM reads exactly the input.
/// </summary>
public sealed class Im2colModel : CudaKernelModel
{
    /// <summary>Builds the model for <paramref name="op"/> on input <paramref name="x"/> and weight shape
    /// <paramref name="w"/> (groups = 1).</summary>
    public Im2colModel(string name, int threads, Conv2d op, IR.Shape x, IR.Shape w)
        : base(name, "im2col", threads, (long)x[0] * x[1] * w[2] * w[3] * op.OutSize(x[2], w[2], 0)
            * op.OutSize(x[3], w[3], 1))
    {
        if (op.Groups != 1) throw new ArgumentException("im2col unfolds dense convolutions (groups = 1)");
        (Channels, Height, Width, KernelH, KernelW) = (x[1], x[2], x[3], w[2], w[3]);
        (StrideY, StrideX, PadY, PadX) = (op.Stride[0], op.Stride[1], op.Padding[0], op.Padding[1]);
        (DilationY, DilationX) = (op.Dilation[0], op.Dilation[1]);
        (OutH, OutW) = (op.OutSize(x[2], w[2], 0), op.OutSize(x[3], w[3], 1));
        Rows = (long)Channels * KernelH * KernelW;
        Total = x[0] * Rows * Positions;
    }

    /// <summary>Input channels, height, width.</summary>
    public int Channels { get; }

    /// <summary>Input height.</summary>
    public int Height { get; }

    /// <summary>Input width.</summary>
    public int Width { get; }

    /// <summary>Kernel height.</summary>
    public int KernelH { get; }

    /// <summary>Kernel width.</summary>
    public int KernelW { get; }

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

    /// <summary>Output height.</summary>
    public int OutH { get; }

    /// <summary>Output width.</summary>
    public int OutW { get; }

    /// <summary>Output positions per sample (the GEMM's M).</summary>
    public long Positions => (long)OutH * OutW;

    /// <summary>Rows of a sample's block: C·KH·KW (the GEMM's K).</summary>
    public long Rows { get; }

    /// <summary>Values written: N·Rows·Positions.</summary>
    public long Total { get; }
}
