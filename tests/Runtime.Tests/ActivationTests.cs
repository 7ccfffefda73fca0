using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;
using ShiftWise.Runtime.Cpu;

namespace ShiftWise.Runtime.Tests;

/// <summary>The float32 activations: the erf bound on a dense grid, and GELU, ReLU, sigmoid against float64.</summary>
public sealed class ActivationTests
{
    /// <summary>The documented bound of <see cref="Activations.Erf(Span{float})"/> (measured: about 6e-8 with FMA).</summary>
    private const double ErfBound = 2e-7;

    /// <summary>erf to double precision: Maclaurin series below 3, the continued fraction of erfc above.</summary>
    private static double ErfDouble(double x)
    {
        double ax = Math.Abs(x);
        if (ax < 3)
        {
            double term = x, sum = x, x2 = x * x;
            for (int k = 1; k < 300; k++)
            {
                term *= -x2 / k;
                double add = term / (2 * k + 1);
                sum += add;
                if (Math.Abs(add) < 1e-18 * Math.Abs(sum)) break;
            }
            return 2 / Math.Sqrt(Math.PI) * sum;
        }
        double f = 0;
        for (int k = 80; k >= 1; k--) f = k / 2.0 / (ax + f);
        double erfc = Math.Exp(-ax * ax) / Math.Sqrt(Math.PI) / (ax + f);
        return x > 0 ? 1 - erfc : erfc - 1;
    }

    [Fact]
    public void ErfIsWithinItsBoundOnADenseGridOfMinusTenToTen()
    {
        // step 2⁻¹⁴: 327 681 points, every one exactly representable, so the input is not a source of error
        const int perUnit = 1 << 14;
        var x = new float[20 * perUnit + 1];
        for (int i = 0; i < x.Length; i++) x[i] = -10f + i / (float)perUnit;
        var y = (float[])x.Clone();
        Activations.Erf(y);
        double worst = 0;
        float at = 0;
        for (int i = 0; i < x.Length; i++)
        {
            double e = Math.Abs(y[i] - ErfDouble(x[i]));
            if (e > worst) (worst, at) = (e, x[i]);
        }
        Assert.True(worst <= ErfBound, $"max |erf error| {worst:e3} at x = {at} exceeds {ErfBound:e0}");
    }

    [Fact]
    public void ErfNearZeroKeepsRelativeAccuracy()
    {
        // the small branch is x + x·P(x²): tiny inputs must not lose their digits to an absolute error
        float[] xs = [1e-30f, -3e-20f, 1e-8f, 2.5e-4f, -0.01f];
        var y = (float[])xs.Clone();
        Activations.Erf(y);
        for (int i = 0; i < xs.Length; i++)
        {
            double e = ErfDouble(xs[i]);
            Assert.True(Math.Abs(y[i] - e) <= 2e-7 * Math.Abs(e), $"erf({xs[i]}) = {y[i]}, expected {e}");
        }
    }

    [Fact]
    public void SpecialValues()
    {
        float[] e = [float.PositiveInfinity, float.NegativeInfinity, float.NaN, 30f, -30f];
        Activations.Erf(e);
        Assert.Equal([1f, -1f], e[..2]);
        Assert.True(float.IsNaN(e[2]));
        Assert.Equal([1f, -1f], e[3..]);

        float[] g = [float.PositiveInfinity, float.NaN, -100f, -1e6f, 100f];
        Activations.Gelu(g);
        Assert.Equal(float.PositiveInfinity, g[0]);
        Assert.True(float.IsNaN(g[1]));
        // the left tail is x·erfc(|x|/√2)/2 computed without cancellation: far out it underflows to zero
        Assert.Equal(0f, Math.Abs(g[2]));
        Assert.Equal(0f, Math.Abs(g[3]));
        Assert.Equal(100f, g[4]);

        float[] r = [float.NaN, -1f, 2f, float.NegativeInfinity];
        Activations.Relu(r);
        Assert.True(float.IsNaN(r[0]));
        Assert.Equal([0f, 2f, 0f], r[1..]);

        float[] s = [-200f, 200f, 0f, float.NaN];
        Activations.Sigmoid(s);
        Assert.Equal([0f, 1f, 0.5f], s[..3]);
        Assert.True(float.IsNaN(s[3]));
    }

    public static TheoryData<UnaryKind> Kinds() => new(UnaryKind.Gelu, UnaryKind.Relu, UnaryKind.Sigmoid);

    /// <summary>
    /// Each activation against the float64 reference (itself rounded to float32), element by element: within 1e-6
    /// relative (about 8 ulps: GELU's 1 + erf(x/√2) loses up to ~3 ulps to cancellation near x = −√2, and the
    /// rounding of x/√2 adds ~1.5) plus 1e-9·|x| absolute for the far left tail of GELU, whose values underflow.
    /// Lengths 0..41 cover every tail length; 200 003 takes the parallel path.
    /// </summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public void MatchTheReferenceAtEveryTailLength(UnaryKind kind)
    {
        var rng = new Random((int)kind);
        foreach (int n in Enumerable.Range(0, 42).Append(200_003))
        {
            var x = new float[n];
            for (int i = 0; i < n; i++) x[i] = (float)((rng.NextDouble() * 2 - 1) * (i % 3 == 0 ? 12 : 3));
            var y = (float[])x.Clone();
            switch (kind)
            {
                case UnaryKind.Gelu: Activations.Gelu(y); break;
                case UnaryKind.Relu: Activations.Relu(y); break;
                default: Activations.Sigmoid(y); break;
            }
            var expected = ReferenceExecutor.Evaluate(new Unary(kind), [Tensor.F32(new Shape(n), x)])[0].ToDoubles();
            for (int i = 0; i < n; i++)
            {
                double tol = 1e-6 * Math.Abs(expected[i]) + 1e-9 * Math.Abs(x[i]);
                Assert.True(Math.Abs(y[i] - expected[i]) <= tol,
                    $"{kind}({x[i]}) = {y[i]}, expected {expected[i]} (n = {n}, i = {i})");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void AnElementsResultDoesNotDependOnItsPosition(UnaryKind kind)
    {
        var rng = new Random(99);
        var x = new float[70_001];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 16 - 8);
        var whole = (float[])x.Clone();
        Apply(kind, whole);
        // one element at a time goes through the padded tail; the whole span through the parallel vector loop
        for (int i = 0; i < x.Length; i += 997)
        {
            var one = new[] { x[i] };
            Apply(kind, one);
            Assert.Equal(whole[i], one[0]);
        }
    }

    private static void Apply(UnaryKind kind, Span<float> y)
    {
        switch (kind)
        {
            case UnaryKind.Gelu: Activations.Gelu(y); break;
            case UnaryKind.Relu: Activations.Relu(y); break;
            default: Activations.Sigmoid(y); break;
        }
    }
}
