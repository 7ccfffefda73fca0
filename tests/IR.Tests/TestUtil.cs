namespace ShiftWise.IR.Tests;

internal static class TestUtil
{
    /// <summary>‖a − b‖₂ / max(‖b‖₂, tiny): the error measure every numerical test states its tolerance in.</summary>
    public static double RelL2(double[] a, double[] b)
    {
        Assert.Equal(b.Length, a.Length);
        return Analysis.Error.RelL2(a, b);
    }

    public static Tensor Random(TensorType t, Random rng, double scale = 1)
    {
        var v = new double[t.Shape.Elements];
        for (int i = 0; i < v.Length; i++) v[i] = (rng.NextDouble() * 2 - 1) * scale;
        return Tensor.FromDoubles(t, v);
    }

    public static string FixturePath(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);
}
