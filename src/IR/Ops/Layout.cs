namespace ShiftWise.IR.Ops;

/// <summary>index_select along an axis: the SW layer's rep and ghost channel picks.</summary>
public sealed record ChannelSelect(int Axis, Vec<int> Indices) : Op
{
    /// <inheritdoc/>
    public override string Name => "channel_select";

    /// <inheritdoc/>
    public override TensorType[] Infer(IReadOnlyList<TensorType> inputs)
    {
        Arity(inputs, 1, 1);
        var x = inputs[0].Shape;
        int a = x.Axis(Axis);
        foreach (var i in Indices)
        {
            Check(i >= 0 && i < x[a], $"index {i} is out of range for axis {a} of size {x[a]}");
        }
        return [new TensorType(inputs[0].DType, x.With(a, Indices.Count))];
    }

    /// <inheritdoc/>
    public override void WriteAttrs(AttrWriter w)
    {
        w.Int("axis", Axis);
        w.Ints("indices", Indices);
    }

    /// <summary>Reads the attributes.</summary>
    public static ChannelSelect Read(AttrReader r) => new(r.Int32("axis"), r.Ints("indices"));
}

/// <summary>Concatenation of one or more tensors along an axis.</summary>
public sealed record Concat(int Axis) : Op
{
    /// <inheritdoc/>
    public override string Name => "concat";

    /// <inheritdoc/>
    public override TensorType[] Infer(IReadOnlyList<TensorType> inputs)
    {
        Check(inputs.Count >= 1, "expects at least 1 input");
        var first = inputs[0];
        int a = first.Shape.Axis(Axis);
        int total = 0;
        for (int i = 0; i < inputs.Count; i++)
        {
            var s = inputs[i].Shape;
            Check(inputs[i].DType == first.DType, $"input {i} has element type {inputs[i].DType.Name()}, "
                + $"expected {first.DType.Name()}");
            Check(s.Rank == first.Shape.Rank && s.With(a, 0).Equals(first.Shape.With(a, 0)),
                $"input {i} {s} does not match {first.Shape} outside axis {a}");
            total += s[a];
        }
        return [new TensorType(first.DType, first.Shape.With(a, total))];
    }

    /// <inheritdoc/>
    public override void WriteAttrs(AttrWriter w) => w.Int("axis", Axis);

    /// <summary>Reads the attributes.</summary>
    public static Concat Read(AttrReader r) => new(r.Int32("axis"));
}

/// <summary>Axis permutation: output axis i is input axis Perm[i].</summary>
public sealed record Permute(Vec<int> Perm) : Op
{
    /// <inheritdoc/>
    public override string Name => "permute";

    /// <inheritdoc/>
    public override TensorType[] Infer(IReadOnlyList<TensorType> inputs)
    {
        Arity(inputs, 1, 1);
        var x = inputs[0].Shape;
        Check(Perm.Count == x.Rank && Perm.OrderBy(p => p).SequenceEqual(Enumerable.Range(0, x.Rank)),
            $"perm {Perm} is not a permutation of the {x.Rank} axes of {x}");
        return [new TensorType(inputs[0].DType, new Shape(Perm.Select(p => x[p])))];
    }

    /// <inheritdoc/>
    public override void WriteAttrs(AttrWriter w) => w.Ints("perm", Perm);

    /// <summary>Reads the attributes.</summary>
    public static Permute Read(AttrReader r) => new(r.Ints("perm"));
}

/// <summary>Row-major reshape to an explicit shape with the same element count.</summary>
public sealed record Reshape(Vec<int> To) : Op
{
    /// <inheritdoc/>
    public override string Name => "reshape";

    /// <inheritdoc/>
    public override TensorType[] Infer(IReadOnlyList<TensorType> inputs)
    {
        Arity(inputs, 1, 1);
        Check(To.All(d => d >= 0), $"shape {To} has a negative dimension");
        var s = new Shape(To.ToArray());
        Check(s.Elements == inputs[0].Shape.Elements,
            $"cannot reshape {inputs[0].Shape} ({inputs[0].Shape.Elements} elements) to {s} ({s.Elements})");
        return [new TensorType(inputs[0].DType, s)];
    }

    /// <inheritdoc/>
    public override void WriteAttrs(AttrWriter w) => w.Ints("shape", To);

    /// <summary>Reads the attributes.</summary>
    public static Reshape Read(AttrReader r) => new(r.Ints("shape"));
}
