using System.Collections;

namespace ShiftWise.IR;

/// <summary>
/// An immutable array with value equality, so that op attribute records compare structurally
/// (plain arrays in records compare by reference).
/// </summary>
public readonly struct Vec<T> : IEquatable<Vec<T>>, IReadOnlyList<T>
{
    private readonly T[]? _items;

    /// <summary>Copies the items.</summary>
    public Vec(IEnumerable<T> items) => _items = items.ToArray();

    /// <summary>The empty vector.</summary>
    public static Vec<T> Empty => new(Array.Empty<T>());

    /// <inheritdoc/>
    public int Count => _items?.Length ?? 0;

    /// <inheritdoc/>
    public T this[int i] => (_items ?? throw new IndexOutOfRangeException())[i];

    /// <summary>The items as a span.</summary>
    public ReadOnlySpan<T> Span => _items;

    /// <inheritdoc/>
    public bool Equals(Vec<T> other) =>
        Count == other.Count
        && (Count == 0 || _items!.AsSpan().SequenceEqual(other._items, EqualityComparer<T>.Default));

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is Vec<T> v && Equals(v);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (var x in this)
        {
            h.Add(x);
        }
        return h.ToHashCode();
    }

    /// <summary>Value equality.</summary>
    public static bool operator ==(Vec<T> a, Vec<T> b) => a.Equals(b);

    /// <summary>Value inequality.</summary>
    public static bool operator !=(Vec<T> a, Vec<T> b) => !a.Equals(b);

    /// <summary>Copies out.</summary>
    public T[] ToArray() => _items is null ? Array.Empty<T>() : (T[])_items.Clone();

    /// <inheritdoc/>
    public IEnumerator<T> GetEnumerator() => ((IEnumerable<T>)(_items ?? Array.Empty<T>())).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>Text form [a,b,c].</summary>
    public override string ToString() => "[" + string.Join(",", this) + "]";

    /// <summary>Implicit conversion from an array.</summary>
    public static implicit operator Vec<T>(T[] items) => new(items);
}

/// <summary>Helpers to build <see cref="Vec{T}"/>.</summary>
public static class Vec
{
    /// <summary>Builds a vector from items.</summary>
    public static Vec<T> Of<T>(params T[] items) => new(items);
}
