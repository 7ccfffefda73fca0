namespace ShiftWise.IR.Ops;

/// <summary>
/// Batch normalisation over axis 1. Inputs: x, weight, bias, running_mean, running_var (each (C)).
/// Eval: one output from the running statistics. Train: normalises with the batch mean and biased variance and
/// has two more outputs, the updated running mean and running variance (momentum, unbiased variance, as torch).
/// </summary>
public sealed record BatchNorm(double Eps, double Momentum, Mode Mode) : Op
{
    /// <inheritdoc/>
    public override string Name => "batch_norm";

    /// <inheritdoc/>
    public override IReadOnlyList<string> OutputSuffixes => Mode == Mode.Train ? TrainSuffixes : Single;

    private static readonly string[] TrainSuffixes = ["", ".new_running_mean", ".new_running_var"];

    /// <inheritdoc/>
    public override TensorType[] Infer(IReadOnlyList<TensorType> inputs)
    {
        Arity(inputs, 5, 5);
        var d = SameFloat(inputs);
        Check(Eps > 0, $"eps {Eps} must be > 0");
        Check(Momentum is >= 0 and <= 1, $"momentum {Momentum} must be in [0, 1]");
        var x = inputs[0].Shape;
        Check(x.Rank >= 2, $"x must have rank >= 2, got {inputs[0]}");
        var c = new Shape(x[1]);
        for (int i = 1; i < 5; i++)
        {
            Check(inputs[i].Shape.Equals(c), $"input {i} must have shape {c}, got {inputs[i].Shape}");
        }
        if (Mode == Mode.Train)
        {
            long count = x.Elements / Math.Max(1, x[1]);
            Check(count > 1, $"training batch norm needs more than one value per channel, x is {x}");
            return [inputs[0], new TensorType(d, c), new TensorType(d, c)];
        }
        return [inputs[0]];
    }

    /// <inheritdoc/>
    public override void WriteAttrs(AttrWriter w)
    {
        w.Float("eps", Eps);
        w.Float("momentum", Momentum);
        w.Enum("mode", Mode);
    }

    /// <summary>Reads the attributes.</summary>
    public static BatchNorm Read(AttrReader r) => new(r.Float("eps"), r.Float("momentum"), r.Enum<Mode>("mode"));
}

/// <summary>Which axis a LayerNorm normalises.</summary>
public enum NormLayout
{
    /// <summary>Axis 1 of NCHW (the original's custom channels_first LayerNorm).</summary>
    ChannelsFirst,
    /// <summary>The last axis (nn.LayerNorm).</summary>
    ChannelsLast,
}

/// <summary>LayerNorm with biased variance and eps inside the square root. Inputs: x, weight (C), bias (C).</summary>
public sealed record LayerNorm(double Eps, NormLayout Layout) : Op
{
    /// <inheritdoc/>
    public override string Name => "layer_norm";

    /// <summary>The normalised axis for an input of the given rank.</summary>
    public int Axis(int rank) => Layout == NormLayout.ChannelsFirst ? 1 : rank - 1;

    /// <inheritdoc/>
    public override TensorType[] Infer(IReadOnlyList<TensorType> inputs)
    {
        Arity(inputs, 3, 3);
        SameFloat(inputs);
        Check(Eps > 0, $"eps {Eps} must be > 0");
        var x = inputs[0].Shape;
        Check(x.Rank >= 2, $"x must have rank >= 2, got {inputs[0]}");
        var c = new Shape(x[Axis(x.Rank)]);
        Check(inputs[1].Shape.Equals(c), $"weight must have shape {c}, got {inputs[1].Shape}");
        Check(inputs[2].Shape.Equals(c), $"bias must have shape {c}, got {inputs[2].Shape}");
        return [inputs[0]];
    }

    /// <inheritdoc/>
    public override void WriteAttrs(AttrWriter w)
    {
        w.Float("eps", Eps);
        w.Enum("layout", Layout);
    }

    /// <summary>Reads the attributes.</summary>
    public static LayerNorm Read(AttrReader r) => new(r.Float("eps"), r.Enum<NormLayout>("layout"));
}

/// <summary>
/// Global response normalisation of ConvNeXt-V2 on NHWC input: G = ‖x‖₂ over (H, W) per sample and channel,
/// Nrm = G / (mean over channels of G + eps), y = (γ·Nrm + 1)·x + β. Inputs: x, gamma (1,1,1,C), optional beta.
/// </summary>
public sealed record Grn(double Eps) : Op
{
    /// <inheritdoc/>
    public override string Name => "grn";

    /// <inheritdoc/>
    public override TensorType[] Infer(IReadOnlyList<TensorType> inputs)
    {
        Arity(inputs, 2, 3);
        SameFloat(inputs);
        Check(Eps > 0, $"eps {Eps} must be > 0");
        Rank(inputs, 0, 4, "x (NHWC)");
        var c = new Shape(1, 1, 1, inputs[0].Shape[3]);
        for (int i = 1; i < inputs.Count; i++)
        {
            Check(inputs[i].Shape.Equals(c), $"input {i} must have shape {c}, got {inputs[i].Shape}");
        }
        return [inputs[0]];
    }

    /// <inheritdoc/>
    public override void WriteAttrs(AttrWriter w) => w.Float("eps", Eps);

    /// <summary>Reads the attributes.</summary>
    public static Grn Read(AttrReader r) => new(r.Float("eps"));
}
