namespace ShiftWise.IR.Ops;

/// <summary>
/// Per-channel affine y = x·scale[c] + bias[c] along an axis: what a batch norm becomes with nothing to fold into.
/// </summary>
public sealed record ScaleBias(int Axis) : Op
{
    /// <inheritdoc/>
    public override string Name => "scale_bias";

    /// <inheritdoc/>
    public override TensorType[] Infer(IReadOnlyList<TensorType> inputs)
    {
        Arity(inputs, 3, 3);
        SameFloat(inputs);
        var x = inputs[0].Shape;
        var c = new Shape(x[x.Axis(Axis)]);
        Check(inputs[1].Shape.Equals(c) && inputs[2].Shape.Equals(c),
            $"scale and bias must have shape {c}, got {inputs[1].Shape} and {inputs[2].Shape}");
        return [inputs[0]];
    }

    /// <inheritdoc/>
    public override void WriteAttrs(AttrWriter w) => w.Int("axis", Axis);

    /// <summary>Reads the attributes.</summary>
    public static ScaleBias Read(AttrReader r) => new(r.Int32("axis"));
}

/// <summary>
/// The collapsed SW layer on its rep channels (SPEC 2): y[o] = a_h[o]·Y_h + a_v[o]·Y_v + a_i[o]·Y_i + a_r[o]·x[o]
/// + bias[o], where Y_* are the shift-add paths of the depthwise k×k conv of x with the kept sub-kernels
/// <see cref="Subs"/> (padding k−1). Equivalently a depthwise convolution with one cross-shaped kernel per channel.
/// Inputs: x (N,R,H,W), weight (|Subs|,1,k,k), scales (4,R) = rows a_h, a_v, a_i, a_r, bias (R).
/// </summary>
public sealed record SwCross(ShiftAdd Shift, Vec<int> Subs) : Op
{
    /// <inheritdoc/>
    public override string Name => "sw_cross";

    /// <inheritdoc/>
    public override TensorType[] Infer(IReadOnlyList<TensorType> inputs)
    {
        Arity(inputs, 4, 4);
        var d = SameFloat(inputs);
        SwCore.Check(Shift, Subs);
        int r = Shift.Rep, k = Shift.Small;
        Rank(inputs, 0, 4, "x");
        var x = inputs[0].Shape;
        Check(x[1] == r, $"x has {x[1]} channels, the tables have R = {r}");
        SwCore.CheckParams(inputs, Subs.Count, k, r, r);
        return [TensorType.Of(d, x[0], r, x[2], x[3])];
    }

    /// <inheritdoc/>
    public override void WriteAttrs(AttrWriter w) => SwCore.Write(w, Shift, Subs);

    /// <summary>Reads the attributes.</summary>
    public static SwCross Read(AttrReader r)
    {
        var shift = ShiftAdd.Read(r);
        return new SwCross(shift, SwCore.ReadSubs(r, shift));
    }
}

/// <summary>
/// A whole SW layer plus the affine that follows it: output channel i &lt; R is <see cref="SwCross"/> applied to
/// x[:, Rep] (channel i) plus bias[i]; output channel R + j is x[:, Ghost[j]]·ghost_scale[j] + bias[R + j].
/// Inputs: x (N,C,H,W), weight (|Subs|,1,k,k), scales (4,R), bias (R+G), ghost_scale (G).
/// Specialised on (big, small, n, N_rep, C, H, W); targets lower it as a collapsed cross or in factorised form.
/// </summary>
public sealed record FusedShiftWise(ShiftAdd Shift, Vec<int> Subs, Vec<int> Rep, Vec<int> Ghost) : Op
{
    /// <inheritdoc/>
    public override string Name => "fused_shiftwise";

    /// <inheritdoc/>
    public override TensorType[] Infer(IReadOnlyList<TensorType> inputs)
    {
        Arity(inputs, 5, 5);
        var d = SameFloat(inputs);
        SwCore.Check(Shift, Subs);
        int r = Shift.Rep, k = Shift.Small, g = Ghost.Count;
        Check(Rep.Count == r, $"rep lists {Rep.Count} channels, the tables have R = {r}");
        Rank(inputs, 0, 4, "x");
        var x = inputs[0].Shape;
        foreach (var c in Rep.Concat(Ghost))
        {
            Check(c >= 0 && c < x[1], $"channel {c} is out of range for x with {x[1]} channels");
        }
        SwCore.CheckParams(inputs, Subs.Count, k, r, r + g);
        Check(inputs[4].Shape.Equals(new Shape(g)), $"ghost_scale must have shape [{g}], got {inputs[4].Shape}");
        return [TensorType.Of(d, x[0], r + g, x[2], x[3])];
    }

    /// <inheritdoc/>
    public override void WriteAttrs(AttrWriter w)
    {
        SwCore.Write(w, Shift, Subs);
        w.Ints("rep", Rep);
        w.Ints("ghost", Ghost);
    }

    /// <summary>Reads the attributes.</summary>
    public static FusedShiftWise Read(AttrReader r)
    {
        var shift = ShiftAdd.Read(r);
        return new FusedShiftWise(shift, SwCore.ReadSubs(r, shift), r.Ints("rep"), r.Ints("ghost"));
    }
}

/// <summary>What <see cref="SwCross"/> and <see cref="FusedShiftWise"/> share.</summary>
public static class SwCore
{
    /// <summary>All sub-channels 0..R·n−1: nothing pruned.</summary>
    public static Vec<int> AllSubs(ShiftAdd s) => Enumerable.Range(0, s.Rep * s.N).ToArray();

    internal static void Check(ShiftAdd shift, Vec<int> subs)
    {
        int rn = shift.Rep * shift.N;
        // the tables carry their own checks; run them on a nominal input
        shift.Infer([TensorType.Of(DType.F64, 1, rn, 1 + 2 * shift.Extra, 1 + 2 * shift.Extra)]);
        for (int i = 0; i < subs.Count; i++)
        {
            if (subs[i] < 0 || subs[i] >= rn || (i > 0 && subs[i] <= subs[i - 1]))
            {
                throw new IrException(
                    $"subs must be ascending sub-channels in [0, {rn}), got {subs[i]} at position {i}");
            }
        }
    }

    internal static void CheckParams(IReadOnlyList<TensorType> inputs, int subs, int k, int r, int biasLen)
    {
        if (!inputs[1].Shape.Equals(new Shape(subs, 1, k, k)))
        {
            throw new IrException($"weight must have shape [{subs},1,{k},{k}], got {inputs[1].Shape}");
        }
        if (!inputs[2].Shape.Equals(new Shape(4, r)))
        {
            throw new IrException($"scales must have shape [4,{r}] (a_h, a_v, a_i, a_r), got {inputs[2].Shape}");
        }
        if (!inputs[3].Shape.Equals(new Shape(biasLen)))
        {
            throw new IrException($"bias must have shape [{biasLen}], got {inputs[3].Shape}");
        }
    }

    internal static void Write(AttrWriter w, ShiftAdd shift, Vec<int> subs)
    {
        shift.WriteAttrs(w);
        if (subs == AllSubs(shift))
        {
            w.Word("subs", "all");
        }
        else
        {
            w.Ints("subs", subs);
        }
    }

    internal static Vec<int> ReadSubs(AttrReader r, ShiftAdd shift) =>
        r.IsWord("subs", "all") ? AllSubs(shift) : r.Ints("subs");
}

/// <summary>Activation applied in a GEMM epilogue.</summary>
public enum GemmAct
{
    /// <summary>No activation.</summary>
    None,
    /// <summary>Exact GELU.</summary>
    Gelu,
    /// <summary>ReLU.</summary>
    Relu,
    /// <summary>Sigmoid.</summary>
    Sigmoid,
}

/// <summary>
/// A linear layer with its prologue and epilogues: y = x·Wᵀ (+ bias), then the activation, then GRN (γ, β inputs,
/// NHWC), then an optional permute to NCHW, then an optional residual add. With <see cref="InNchw"/> the input is
/// NCHW and its channel axis is the reduction axis (the permute to NHWC is absorbed). Inputs in order: x, weight,
/// [bias], [gamma, beta], [residual].
/// </summary>
public sealed record Gemm(bool InNchw, bool OutNchw, GemmAct Act, bool HasBias, bool HasGrn, double GrnEps,
    bool HasResidual) : Op
{
    /// <inheritdoc/>
    public override string Name => "gemm";

    /// <summary>A plain linear layer.</summary>
    public static Gemm Plain(bool bias) => new(false, false, GemmAct.None, bias, false, 1e-6, false);

    /// <summary>Input position of each optional operand (−1 when absent).</summary>
    public (int Bias, int Gamma, int Beta, int Residual) Slots
    {
        get
        {
            int i = 2;
            int b = HasBias ? i++ : -1;
            int g = HasGrn ? i++ : -1;
            int be = HasGrn ? i++ : -1;
            int r = HasResidual ? i : -1;
            return (b, g, be, r);
        }
    }

    /// <inheritdoc/>
    public override TensorType[] Infer(IReadOnlyList<TensorType> inputs)
    {
        int n = 2 + (HasBias ? 1 : 0) + (HasGrn ? 2 : 0) + (HasResidual ? 1 : 0);
        Arity(inputs, n, n);
        var d = SameFloat(inputs);
        var x = inputs[0].Shape;
        if (InNchw) Check(x.Rank == 4, $"x must be NCHW (rank 4) with in_nchw, got {x}");
        var lin = InNchw ? new Shape(x[0], x[2], x[3], x[1]) : x;
        Rank(inputs, 1, 2, "weight");
        var w = inputs[1].Shape;
        Check(w[1] == lin[lin.Rank - 1], $"weight {w} needs {lin[lin.Rank - 1]} input features, has {w[1]}");
        var y = lin.With(lin.Rank - 1, w[0]);
        var s = Slots;
        if (HasBias) Check(inputs[s.Bias].Shape.Equals(new Shape(w[0])), $"bias must have shape [{w[0]}]");
        if (HasGrn)
        {
            Check(y.Rank == 4, $"GRN needs an NHWC output, got {y}");
            Check(GrnEps > 0, $"grn_eps {GrnEps} must be > 0");
            var g = new Shape(1, 1, 1, w[0]);
            Check(inputs[s.Gamma].Shape.Equals(g) && inputs[s.Beta].Shape.Equals(g),
                $"GRN gamma and beta must have shape {g}");
        }
        if (OutNchw)
        {
            Check(y.Rank == 4, $"out_nchw needs a rank-4 output, got {y}");
            y = new Shape(y[0], y[3], y[1], y[2]);
        }
        if (HasResidual)
        {
            Check(inputs[s.Residual].Shape.Equals(y), $"residual must have shape {y}, got {inputs[s.Residual].Shape}");
        }
        return [new TensorType(d, y)];
    }

    /// <inheritdoc/>
    public override void WriteAttrs(AttrWriter w)
    {
        w.Bool("in_nchw", InNchw);
        w.Bool("out_nchw", OutNchw);
        w.Enum("act", Act);
        w.Bool("bias", HasBias);
        w.Bool("grn", HasGrn);
        w.Float("grn_eps", GrnEps);
        w.Bool("residual", HasResidual);
    }

    /// <summary>Reads the attributes.</summary>
    public static Gemm Read(AttrReader r) => new(r.Bool("in_nchw"), r.Bool("out_nchw"), r.Enum<GemmAct>("act"),
        r.Bool("bias"), r.Bool("grn"), r.Float("grn_eps"), r.Bool("residual"));
}
