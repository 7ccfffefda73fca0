namespace ShiftWise.IR.Analysis;

/// <summary>The error measure every numerical check in the project states its tolerance in.</summary>
public static class Error
{
    /// <summary>
    /// ‖a − b‖₂ / max(‖b‖₂, tiny), b being the reference; a NaN anywhere counts as an infinite error.
    /// </summary>
    public static double RelL2(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"lengths differ: {a.Length} and {b.Length}");
        double num = 0, den = 0;
        for (int i = 0; i < a.Length; i++)
        {
            num += (a[i] - b[i]) * (a[i] - b[i]);
            den += b[i] * b[i];
        }
        return double.IsNaN(num) ? double.PositiveInfinity : Math.Sqrt(num) / Math.Max(Math.Sqrt(den), 1e-300);
    }

    /// <summary>The same for tensors of equal shape.</summary>
    public static double RelL2(Tensor a, Tensor b) =>
        a.Shape.Equals(b.Shape)
            ? RelL2(a.ToDoubles(), b.ToDoubles())
            : throw new ArgumentException($"shapes differ: {a.Shape} and {b.Shape}");
}
