namespace ShiftWise.IR.Ops;

/// <summary>y = x·Wᵀ + b over the last axis. Inputs: x (..., K), weight (N, K), optional bias (N).</summary>
public sealed record Linear : Op
{
    /// <inheritdoc/>
    public override string Name => "linear";

    /// <inheritdoc/>
    public override TensorType[] Infer(IReadOnlyList<TensorType> inputs)
    {
        Arity(inputs, 2, 3);
        var d = SameFloat(inputs);
        var x = inputs[0].Shape;
        Check(x.Rank >= 1, "x must have rank >= 1");
        Rank(inputs, 1, 2, "weight");
        var w = inputs[1].Shape;
        Check(w[1] == x[x.Rank - 1], $"weight {w} needs {x[x.Rank - 1]} input features, has {w[1]}");
        if (inputs.Count == 3)
        {
            Check(inputs[2].Shape.Equals(new Shape(w[0])), $"bias must have shape [{w[0]}], got {inputs[2].Shape}");
        }
        return [new TensorType(d, x.With(x.Rank - 1, w[0]))];
    }
}

/// <summary>Element-wise functions of one tensor.</summary>
public enum UnaryKind
{
    /// <summary>Exact GELU, x·Φ(x) with the error function.</summary>
    Gelu,
    /// <summary>max(x, 0).</summary>
    Relu,
    /// <summary>1 / (1 + e^−x).</summary>
    Sigmoid,
}

/// <summary>An element-wise unary function; its text name is the kind (gelu, relu, sigmoid).</summary>
public sealed record Unary(UnaryKind Kind) : Op
{
    /// <inheritdoc/>
    public override string Name => AttrWriter.EnumWord(Kind);

    /// <inheritdoc/>
    public override TensorType[] Infer(IReadOnlyList<TensorType> inputs)
    {
        Arity(inputs, 1, 1);
        SameFloat(inputs);
        return [inputs[0]];
    }
}

/// <summary>Element-wise functions of two tensors.</summary>
public enum BinaryKind
{
    /// <summary>a + b.</summary>
    Add,
    /// <summary>a · b.</summary>
    Mul,
}

/// <summary>An element-wise binary op with numpy broadcasting; its text name is the kind (add, mul).</summary>
public sealed record Binary(BinaryKind Kind) : Op
{
    /// <inheritdoc/>
    public override string Name => AttrWriter.EnumWord(Kind);

    /// <inheritdoc/>
    public override TensorType[] Infer(IReadOnlyList<TensorType> inputs)
    {
        Arity(inputs, 2, 2);
        var d = SameFloat(inputs);
        return [new TensorType(d, Broadcast(inputs[0].Shape, inputs[1].Shape))];
    }

    /// <summary>The numpy broadcast of two shapes; throws when they are incompatible.</summary>
    public static Shape Broadcast(Shape a, Shape b)
    {
        int rank = Math.Max(a.Rank, b.Rank);
        var r = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int da = i < rank - a.Rank ? 1 : a[i - (rank - a.Rank)];
            int db = i < rank - b.Rank ? 1 : b[i - (rank - b.Rank)];
            Check(da == db || da == 1 || db == 1, $"shapes {a} and {b} do not broadcast (axis {i}: {da} vs {db})");
            r[i] = da == 1 ? db : da;
        }
        return new Shape(r);
    }
}

/// <summary>Mean over the given axes (global average pooling is axes [2,3]).</summary>
public sealed record Mean(Vec<int> Axes, bool KeepDim) : Op
{
    /// <inheritdoc/>
    public override string Name => "mean";

    /// <inheritdoc/>
    public override TensorType[] Infer(IReadOnlyList<TensorType> inputs)
    {
        Arity(inputs, 1, 1);
        var d = SameFloat(inputs);
        var x = inputs[0].Shape;
        Check(Axes.Count >= 1, "axes must not be empty");
        var axes = Axes.Select(x.Axis).ToArray();
        Check(axes.Distinct().Count() == axes.Length, $"axes {Axes} repeat an axis");
        var dims = new List<int>();
        for (int i = 0; i < x.Rank; i++)
        {
            if (!axes.Contains(i)) dims.Add(x[i]);
            else if (KeepDim) dims.Add(1);
            else Check(x[i] > 0, $"cannot average over empty axis {i}");
        }
        return [new TensorType(d, new Shape(dims))];
    }

    /// <inheritdoc/>
    public override void WriteAttrs(AttrWriter w)
    {
        w.Ints("axes", Axes);
        w.Bool("keepdim", KeepDim);
    }

    /// <summary>Reads the attributes.</summary>
    public static Mean Read(AttrReader r) => new(r.Ints("axes"), r.Bool("keepdim"));
}

/// <summary>Softmax along one axis.</summary>
public sealed record Softmax(int Axis) : Op
{
    /// <inheritdoc/>
    public override string Name => "softmax";

    /// <inheritdoc/>
    public override TensorType[] Infer(IReadOnlyList<TensorType> inputs)
    {
        Arity(inputs, 1, 1);
        SameFloat(inputs);
        inputs[0].Shape.Axis(Axis);
        return [inputs[0]];
    }

    /// <inheritdoc/>
    public override void WriteAttrs(AttrWriter w) => w.Int("axis", Axis);

    /// <summary>Reads the attributes.</summary>
    public static Softmax Read(AttrReader r) => new(r.Int32("axis"));
}

/// <summary>
/// Mean cross-entropy of logits (N, K) against integer labels (N), with label smoothing ε as torch does:
/// loss = (1−ε)·NLL + ε·mean over classes of −log p. Output: a scalar.
/// </summary>
public sealed record CrossEntropy(double LabelSmoothing) : Op
{
    /// <inheritdoc/>
    public override string Name => "cross_entropy";

    /// <inheritdoc/>
    public override TensorType[] Infer(IReadOnlyList<TensorType> inputs)
    {
        Arity(inputs, 2, 2);
        var d = SameFloat(inputs, 0);
        Check(LabelSmoothing is >= 0 and <= 1, $"label_smoothing {LabelSmoothing} must be in [0, 1]");
        Rank(inputs, 0, 2, "logits");
        Rank(inputs, 1, 1, "labels");
        Check(inputs[1].DType is DType.I64 or DType.I32, $"labels must be i64 or i32, got {inputs[1].DType.Name()}");
        Check(inputs[1].Shape[0] == inputs[0].Shape[0],
            $"labels {inputs[1].Shape} do not match the batch of logits {inputs[0].Shape}");
        Check(inputs[0].Shape[0] >= 1 && inputs[0].Shape[1] >= 1, $"logits {inputs[0].Shape} must not be empty");
        return [new TensorType(d, Shape.Scalar)];
    }

    /// <inheritdoc/>
    public override void WriteAttrs(AttrWriter w) => w.Float("label_smoothing", LabelSmoothing);

    /// <summary>Reads the attributes.</summary>
    public static CrossEntropy Read(AttrReader r) => new(r.Float("label_smoothing"));
}

/// <summary>
/// Stochastic depth: in train mode each sample is kept with probability 1−p (then divided by 1−p) using a
/// generator seeded by <see cref="Seed"/> (SplitMix64 of seed, step and sample index); identity in eval mode.
/// An optional second input, an i64 scalar, is the training step: a training graph feeds it so that every step
/// draws new masks while a given (seed, step) always draws the same ones (resumable, reproducible).
/// </summary>
public sealed record DropPath(double Prob, Mode Mode, long Seed) : Op
{
    /// <inheritdoc/>
    public override string Name => "drop_path";

    /// <inheritdoc/>
    public override TensorType[] Infer(IReadOnlyList<TensorType> inputs)
    {
        Arity(inputs, 1, 2);
        SameFloat(inputs, 0);
        Check(Prob is >= 0 and < 1, $"drop probability {Prob} must be in [0, 1)");
        Check(inputs[0].Shape.Rank >= 1, "x must have a batch axis");
        if (inputs.Count == 2)
        {
            Check(inputs[1].DType == DType.I64 && inputs[1].Shape.Rank == 0,
                $"step (input 1) must be an i64 scalar, got {inputs[1]}");
        }
        return [inputs[0]];
    }

    /// <summary>
    /// Whether sample <paramref name="b"/> is kept in train mode at training step <paramref name="step"/>.
    /// </summary>
    public bool Keeps(int b, long step = 0)
    {
        ulong z = unchecked((ulong)Seed + 0xD1B54A32D192ED03UL * (ulong)step + 0x9E3779B97F4A7C15UL * (ulong)(b + 1));
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        z ^= z >> 31;
        return (z >> 11) * (1.0 / (1UL << 53)) >= Prob;
    }

    /// <inheritdoc/>
    public override void WriteAttrs(AttrWriter w)
    {
        w.Float("p", Prob);
        w.Enum("mode", Mode);
        w.Int("seed", Seed);
    }

    /// <summary>Reads the attributes.</summary>
    public static DropPath Read(AttrReader r) => new(r.Float("p"), r.Enum<Mode>("mode"), r.Int("seed"));
}
