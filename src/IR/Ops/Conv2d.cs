namespace ShiftWise.IR.Ops;

/// <summary>
/// 2-D cross-correlation, NCHW, zero padding (symmetric per axis). Inputs: x (N,C,H,W), weight (O, C/groups, kh, kw),
/// optional bias (O). Covers the stem, the downsamples, the SW small depthwise convs and the SE 1×1 convs.
/// </summary>
public sealed record Conv2d(Vec<int> Stride, Vec<int> Padding, Vec<int> Dilation, int Groups) : Op
{
    /// <summary>Stride 1, no dilation, one group.</summary>
    public static Conv2d Simple(int padding, int stride = 1, int groups = 1) =>
        new(Vec.Of(stride, stride), Vec.Of(padding, padding), Vec.Of(1, 1), groups);

    /// <inheritdoc/>
    public override string Name => "conv2d";

    /// <inheritdoc/>
    public override TensorType[] Infer(IReadOnlyList<TensorType> inputs)
    {
        Arity(inputs, 2, 3);
        var d = SameFloat(inputs);
        Check(Stride.Count == 2 && Padding.Count == 2 && Dilation.Count == 2,
            "stride, padding and dilation must each have 2 entries (height, width)");
        Check(Stride.All(s => s >= 1), $"stride {Stride} must be >= 1");
        Check(Dilation.All(s => s >= 1), $"dilation {Dilation} must be >= 1");
        Check(Padding.All(s => s >= 0), $"padding {Padding} must be >= 0");
        Check(Groups >= 1, $"groups {Groups} must be >= 1");
        Rank(inputs, 0, 4, "x");
        Rank(inputs, 1, 4, "weight");
        var x = inputs[0].Shape;
        var w = inputs[1].Shape;
        Check(x[1] % Groups == 0, $"groups {Groups} does not divide input channels {x[1]}");
        Check(w[0] % Groups == 0, $"groups {Groups} does not divide output channels {w[0]}");
        Check(w[1] == x[1] / Groups, $"weight {w} needs {x[1] / Groups} input channels per group, has {w[1]}");
        if (inputs.Count == 3)
        {
            Check(inputs[2].Shape.Equals(new Shape(w[0])), $"bias must have shape [{w[0]}], got {inputs[2].Shape}");
        }
        int ho = OutSize(x[2], w[2], 0);
        int wo = OutSize(x[3], w[3], 1);
        Check(ho >= 1 && wo >= 1, $"output would be empty ({ho}x{wo}) for input {x} and kernel {w[2]}x{w[3]}");
        return [TensorType.Of(d, x[0], w[0], ho, wo)];
    }

    /// <summary>Output extent along axis a (0 = height, 1 = width).</summary>
    public int OutSize(int input, int kernel, int a) =>
        (input + 2 * Padding[a] - Dilation[a] * (kernel - 1) - 1) / Stride[a] + 1;

    /// <inheritdoc/>
    public override void WriteAttrs(AttrWriter w)
    {
        w.Ints("stride", Stride);
        w.Ints("padding", Padding);
        w.Ints("dilation", Dilation);
        w.Int("groups", Groups);
    }

    /// <summary>Reads the attributes.</summary>
    public static Conv2d Read(AttrReader r) =>
        new(r.Ints("stride"), r.Ints("padding"), r.Ints("dilation"), r.Int32("groups"));
}
