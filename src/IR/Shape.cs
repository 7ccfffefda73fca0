using System.Collections;

namespace ShiftWise.IR;

/// <summary>An immutable list of dimension sizes with value equality.</summary>
public sealed class Shape : IEquatable<Shape>, IReadOnlyList<int>
{
    private readonly int[] _dims;

    /// <summary>Creates a shape; every dimension must be non-negative.</summary>
    public Shape(params int[] dims)
    {
        foreach (var d in dims)
        {
            if (d < 0)
            {
                throw new IrException($"negative dimension {d} in shape [{string.Join(",", dims)}]");
            }
        }
        _dims = (int[])dims.Clone();
    }

    /// <summary>Creates a shape from any sequence.</summary>
    public Shape(IEnumerable<int> dims) : this(dims.ToArray())
    {
    }

    /// <summary>The shape of a scalar.</summary>
    public static Shape Scalar { get; } = new();

    /// <summary>Number of dimensions.</summary>
    public int Rank => _dims.Length;

    /// <inheritdoc/>
    public int Count => _dims.Length;

    /// <inheritdoc/>
    public int this[int i] => _dims[i];

    /// <summary>Number of elements (1 for a scalar); throws when it would overflow a long.</summary>
    public long Elements
    {
        get
        {
            long n = 1;
            foreach (var d in _dims)
            {
                n = checked(n * d);
            }
            return n;
        }
    }

    /// <summary>
    /// Strides for reading this shape as if broadcast (numpy rules) to <paramref name="to"/>: aligned to the right of
    /// <paramref name="to"/>'s axes, 0 on broadcast (size-1 or missing) axes.
    /// </summary>
    public long[] BroadcastStrides(Shape to)
    {
        var own = Strides();
        var r = new long[to.Rank];
        for (int d = 0; d < Rank; d++) r[d + to.Rank - Rank] = _dims[d] == 1 ? 0 : own[d];
        return r;
    }

    /// <summary>Row-major strides in elements.</summary>
    public long[] Strides()
    {
        var s = new long[_dims.Length];
        long acc = 1;
        for (int i = _dims.Length - 1; i >= 0; i--)
        {
            s[i] = acc;
            acc *= _dims[i];
        }
        return s;
    }

    /// <summary>A copy of the dimensions.</summary>
    public int[] ToArray() => (int[])_dims.Clone();

    /// <summary>Normalises a possibly negative axis; throws when out of range.</summary>
    public int Axis(int axis)
    {
        int a = axis < 0 ? axis + Rank : axis;
        if (a < 0 || a >= Rank)
        {
            throw new IrException($"axis {axis} is out of range for rank {Rank}");
        }
        return a;
    }

    /// <summary>A new shape with dimension <paramref name="axis"/> replaced.</summary>
    public Shape With(int axis, int size)
    {
        var d = ToArray();
        d[axis] = size;
        return new Shape(d);
    }

    /// <inheritdoc/>
    public bool Equals(Shape? other) => other is not null && _dims.AsSpan().SequenceEqual(other._dims);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as Shape);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (var d in _dims)
        {
            h.Add(d);
        }
        return h.ToHashCode();
    }

    /// <summary>Text form: [1,3,224,224].</summary>
    public override string ToString() => "[" + string.Join(",", _dims) + "]";

    /// <inheritdoc/>
    public IEnumerator<int> GetEnumerator() => ((IEnumerable<int>)_dims).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => _dims.GetEnumerator();
}

/// <summary>An element type and a shape.</summary>
public sealed record TensorType(DType DType, Shape Shape)
{
    /// <summary>Shorthand constructor.</summary>
    public static TensorType Of(DType t, params int[] dims) => new(t, new Shape(dims));

    /// <summary>Text form: f32[1,3,224,224].</summary>
    public override string ToString() => DType.Name() + Shape;
}
