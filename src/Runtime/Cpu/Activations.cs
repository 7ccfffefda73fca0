using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu;

/// <summary>
/// GELU (exact, erf form), ReLU and sigmoid in float32, in place, eight lanes at a time. A span's last partial
/// vector goes through the same vector code on a zero-padded copy, so an element's result does not depend on
/// where it sits in a span. Spans of <see cref="ParallelMin"/> elements or more are split over the cores;
/// callers that already run in parallel pass smaller pieces.
/// </summary>
public static unsafe class Activations
{
    /// <summary>Spans at least this long are processed in parallel chunks.</summary>
    public const int ParallelMin = 1 << 16;

    private const int Chunk = 1 << 14;

    // erf(x) = x + x·P(x²) for |x| ≤ 1: Chebyshev interpolant of erf(√u)/√u − 1 on u ∈ [0, 1], degree 6
    // (error of the polynomial itself 1.1e-9). Writing it as x + x·P keeps the leading term exact, which halves the
    // float32 rounding error near |x| = 1 compared with x·(1.128… + …).
    private const float P0 = 0.1283791658483504f, P1 = -0.3761262666671963f, P2 = 0.11283594715152362f;
    private const float P3 = -0.026854212010276414f, P4 = 0.005189087422780046f, P5 = -0.0008016864281817756f;
    private const float P6 = 7.875875046790628e-05f;

    // erfc(t) = exp(−t²)·Q(t − 2.5) for 1 < t ≤ 4: Chebyshev interpolant of erfcx(t) = exp(t²)·erfc(t) on [1,
    // 4], degree 12 (error 6.5e-10 absolute on erfc). Above 4 the first three asymptotic terms
    // erfcx(t) ≈ (1 − 1/(2t²) + 3/(4t⁴)) / (t√π) are accurate to 5e-4 relative, i.e. < 1e-11 absolute on
    // erfc.
    private const float Q0 = 0.210806364061144f, Q1 = -0.07434733674204291f, Q2 = 0.024937994751034635f;
    private const float Q3 = -0.008001693887577295f, Q4 = 0.0024670657615061594f, Q5 = -0.0007331529643354266f;
    private const float Q6 = 0.00021091796372084342f, Q7 = -5.9523156986272003e-05f, Q8 = 1.6114106428795168e-05f;
    private const float Q9 = -3.7472737935364474e-06f, Q10 = 9.763901461352122e-07f, Q11 = -4.264734314196347e-07f;
    private const float Q12 = 1.0301513123847302e-07f;
    // erfcx(t) = exp(t²)·erfc(t) ≈ R(z), z = 1/(1 + Rp·t), for all t ≥ 0: a degree-10 polynomial fitted here
    // (least squares reweighted towards minimax on the relative error, t in [0, 40], Rp = 0.43 chosen by a scan)
    // with relative error 1.3e-8, and 3.2e-7 when evaluated in float32. GELU uses it on both sides.
    private const float Rp = 0.4300000071525574f;
    private const float R0 = -8.217673297394867e-08f, R1 = 0.24260620772838593f, R2 = 0.24249257147312164f;
    private const float R3 = 0.22153861820697784f, R4 = 0.1650378406047821f, R5 = 0.163264662027359f;
    private const float R6 = -0.10210117697715759f, R7 = 0.2985760569572449f, R8 = -0.40031376481056213f;
    private const float R9 = 0.20844952762126923f, R10 = -0.03955044224858284f;
    private const float InvSqrtPi = 0.5641895835477563f;
    private const float InvSqrt2 = 0.7071067811865476f;

    // e^x is a normal float for x in [ExpMin, ExpMax]; ExpMin keeps n ≥ −125 so that 2^(n−1) is normal too
    private const float ExpMin = -86.6f;
    private const float ExpMax = 88.72283f;

    /// <summary>x·Φ(x) = x/2·(1 + erf(x/√2)) in place.</summary>
    public static void Gelu(Span<float> x) => Map<GeluOp>(x);

    /// <summary>max(x, 0) in place (NaN stays NaN).</summary>
    public static void Relu(Span<float> x) => Map<ReluOp>(x);

    /// <summary>1 / (1 + e^−x) in place.</summary>
    public static void Sigmoid(Span<float> x) => Map<SigmoidOp>(x);

    /// <summary>
    /// erf in place. Measured against double-precision erf on a dense grid of [−10, 10] (tests/Runtime.Tests):
    /// at most 6e-8 absolute (one float32 ulp just below 1) with FMA hardware; the documented bound is 2e-7.
    /// </summary>
    public static void Erf(Span<float> x) => Map<ErfOp>(x);

    /// <summary>The activation of a GEMM epilogue in place; <see cref="GemmAct.None"/> does nothing.</summary>
    public static void Apply(GemmAct act, Span<float> x)
    {
        switch (act)
        {
            case GemmAct.Gelu: Gelu(x); break;
            case GemmAct.Relu: Relu(x); break;
            case GemmAct.Sigmoid: Sigmoid(x); break;
        }
    }

    /// <summary>erf of eight lanes (see <see cref="Erf(Span{float})"/> for the accuracy).</summary>
    public static Vector256<float> Erf(Vector256<float> x)
    {
        var t = Vector256.Abs(x);
        var small = ErfSmall(x);
        // 1 − erfc(|x|) is non-negative, so or-ing in x's sign bit gives erf's odd symmetry
        var big = (Vector256<float>.One - ErfcTail(t)) | (x & Vector256.Create(-0f));
        return Vector256.ConditionalSelect(Vector256.LessThanOrEqual(t, Vector256<float>.One), small, big);
    }

    /// <summary>
    /// GELU of eight lanes: x·Φ(x) with Φ from E = erfc(t) = exp(−t²)·erfcx(t), t = |x|/√2: Φ = E/2 left of 0
    /// (the left tail keeps its relative accuracy, nothing cancels) and 1 − E/2 right of it. One path for every
    /// lane: about 1.2× faster (1.57 → 1.27 ns per element on one thread here) than the split at |t| = 1 it
    /// replaces, which evaluated both of its branches for every vector.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Gelu(Vector256<float> x)
    {
        var t = Vector256.Abs(x) * Vector256.Create(InvSqrt2);
        var z = Vector256<float>.One / Fmadd(t, Vector256.Create(Rp), Vector256<float>.One);
        var r = Vector256.Create(R10);
        r = Fmadd(r, z, Vector256.Create(R9));
        r = Fmadd(r, z, Vector256.Create(R8));
        r = Fmadd(r, z, Vector256.Create(R7));
        r = Fmadd(r, z, Vector256.Create(R6));
        r = Fmadd(r, z, Vector256.Create(R5));
        r = Fmadd(r, z, Vector256.Create(R4));
        r = Fmadd(r, z, Vector256.Create(R3));
        r = Fmadd(r, z, Vector256.Create(R2));
        r = Fmadd(r, z, Vector256.Create(R1));
        r = Fmadd(r, z, Vector256.Create(R0));
        // exp underflows to 0 far left (Φ = 0) and right (Φ = 1); at t = ∞ the product is 0·R0, not NaN
        var half = Exp(-(t * t)) * r * Vector256.Create(0.5f);
        var phi = Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256<float>.Zero), half,
            Vector256<float>.One - half);
        return x * phi;
    }

    /// <summary>max(x, 0) of eight lanes.</summary>
    public static Vector256<float> Relu(Vector256<float> x) => Vector256.Max(x, Vector256<float>.Zero);

    /// <summary>1 / (1 + e^−x) of eight lanes; e^−x overflowing to ∞ gives exactly 0.</summary>
    public static Vector256<float> Sigmoid(Vector256<float> x) =>
        Vector256<float>.One / (Vector256<float>.One + Exp(-x));

    /// <summary>
    /// e^x of eight lanes, within about 1 ulp (Cephes' expf: e^x = 2^n·e^r with |r| ≤ ln2/2 and a degree-6
    /// polynomial). Ours rather than <see cref="Vector256.Exp(Vector256{float})"/>, which .NET 10 runs as an
    /// out-of-line call at ~80 ns per vector here, an order of magnitude slower. Overflow gives +∞, results
    /// below e^−86.6 ≈ 2.4e-38 (near the smallest normal float) give 0, NaN stays NaN.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp(Vector256<float> x)
    {
        var xc = Vector256.Min(Vector256.Max(x, Vector256.Create(ExpMin)), Vector256.Create(ExpMax));
        var n = Vector256.Round(xc * Vector256.Create(1.44269504088896341f));
        // r = x − n·ln2 in two steps (ln2 = C1 + C2, C1 with few bits) so that n·C1 is exact
        var r = Fmadd(n, Vector256.Create(-0.693359375f), xc);
        r = Fmadd(n, Vector256.Create(2.12194440e-4f), r);
        var p = Vector256.Create(1.9875691500e-4f);
        p = Fmadd(p, r, Vector256.Create(1.3981999507e-3f));
        p = Fmadd(p, r, Vector256.Create(8.3334519073e-3f));
        p = Fmadd(p, r, Vector256.Create(4.1665795894e-2f));
        p = Fmadd(p, r, Vector256.Create(1.6666665459e-1f));
        p = Fmadd(p, r, Vector256.Create(5.0000001201e-1f));
        p = Fmadd(p, r * r, r) + Vector256<float>.One;
        // 2^(n−1)·2: n reaches 128 at the top of the range, one more than a float exponent holds
        var half = (Vector256.ConvertToInt32(n) + Vector256.Create(126)) << 23;
        var y = p * half.AsSingle() * Vector256.Create(2f);
        y = Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256.Create(ExpMax)),
            Vector256.Create(float.PositiveInfinity), y);
        return Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256.Create(ExpMin)), Vector256<float>.Zero, y);
    }

    /// <summary>erf for |x| ≤ 1 (garbage-free but inaccurate beyond).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> ErfSmall(Vector256<float> x)
    {
        var u = x * x;
        var p = Vector256.Create(P6);
        p = Fmadd(p, u, Vector256.Create(P5));
        p = Fmadd(p, u, Vector256.Create(P4));
        p = Fmadd(p, u, Vector256.Create(P3));
        p = Fmadd(p, u, Vector256.Create(P2));
        p = Fmadd(p, u, Vector256.Create(P1));
        p = Fmadd(p, u, Vector256.Create(P0));
        return Fmadd(x, p, x);
    }

    /// <summary>
    /// erfc(t) for t ≥ 1 with small relative error; lanes below 1 give finite values that callers discard.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> ErfcTail(Vector256<float> t)
    {
        var s = t - Vector256.Create(2.5f);
        var q = Vector256.Create(Q12);
        q = Fmadd(q, s, Vector256.Create(Q11));
        q = Fmadd(q, s, Vector256.Create(Q10));
        q = Fmadd(q, s, Vector256.Create(Q9));
        q = Fmadd(q, s, Vector256.Create(Q8));
        q = Fmadd(q, s, Vector256.Create(Q7));
        q = Fmadd(q, s, Vector256.Create(Q6));
        q = Fmadd(q, s, Vector256.Create(Q5));
        q = Fmadd(q, s, Vector256.Create(Q4));
        q = Fmadd(q, s, Vector256.Create(Q3));
        q = Fmadd(q, s, Vector256.Create(Q2));
        q = Fmadd(q, s, Vector256.Create(Q1));
        q = Fmadd(q, s, Vector256.Create(Q0));
        var big = Vector256.GreaterThan(t, Vector256.Create(4f));
        // the asymptotic form costs a division; typical activations never reach it, so test before paying
        if (big != Vector256<float>.Zero)
        {
            var r = Vector256<float>.One / t;
            var r2 = r * r;
            var asym = r * Vector256.Create(InvSqrtPi)
                * Fmadd(r2, Fmadd(r2, Vector256.Create(0.75f), Vector256.Create(-0.5f)), Vector256<float>.One);
            // the polynomial explodes far outside [1, 4] (∞·0 would be NaN), so the select must see t > 4 for +∞
            // too
            q = Vector256.ConditionalSelect(big, asym, q);
        }
        return Exp(-(t * t)) * q;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Fmadd(Vector256<float> x, Vector256<float> y, Vector256<float> z) =>
        Vector256.MultiplyAddEstimate(x, y, z);

    /// <summary>
    /// A lane-wise function, as a type so that generic loops (here and in the GEMM epilogue) inline it.
    /// </summary>
    internal interface ILanes
    {
        static abstract Vector256<float> Apply(Vector256<float> x);
    }

    internal readonly struct NoOp : ILanes
    {
        public static Vector256<float> Apply(Vector256<float> x) => x;
    }

    internal readonly struct GeluOp : ILanes
    {
        public static Vector256<float> Apply(Vector256<float> x) => Gelu(x);
    }

    internal readonly struct ReluOp : ILanes
    {
        public static Vector256<float> Apply(Vector256<float> x) => Relu(x);
    }

    internal readonly struct SigmoidOp : ILanes
    {
        public static Vector256<float> Apply(Vector256<float> x) => Sigmoid(x);
    }

    private readonly struct ErfOp : ILanes
    {
        public static Vector256<float> Apply(Vector256<float> x) => Erf(x);
    }

    private static void Map<T>(Span<float> x) where T : struct, ILanes
    {
        if (x.Length < ParallelMin)
        {
            MapSerial<T>(x);
            return;
        }
        fixed (float* p = x)
        {
            // a span cannot cross into a lambda; the pinned address can, and the call below is synchronous
            nint at = (nint)p;
            int length = x.Length;
            CpuWorkers.For((length + Chunk - 1) / Chunk, c =>
            {
                int start = c * Chunk;
                MapSerial<T>(new Span<float>((float*)at + start, Math.Min(Chunk, length - start)));
            });
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MapSerial<T>(Span<float> x) where T : struct, ILanes
    {
        ref float r = ref MemoryMarshal.GetReference(x);
        int i = 0, n = Vector256<float>.Count;
        // two independent vectors per step: their long dependency chains (GELU's polynomial and exp) overlap
        for (; i <= x.Length - 2 * n; i += 2 * n)
        {
            var a = T.Apply(Vector256.LoadUnsafe(ref r, (nuint)i));
            var b = T.Apply(Vector256.LoadUnsafe(ref r, (nuint)(i + n)));
            a.StoreUnsafe(ref r, (nuint)i);
            b.StoreUnsafe(ref r, (nuint)(i + n));
        }
        for (; i <= x.Length - n; i += n)
        {
            T.Apply(Vector256.LoadUnsafe(ref r, (nuint)i)).StoreUnsafe(ref r, (nuint)i);
        }
        if (i == x.Length) return;
        Span<float> pad = stackalloc float[Vector256<float>.Count];
        pad.Clear();
        var rest = x[i..];
        rest.CopyTo(pad);
        T.Apply(Vector256.Create<float>(pad)).CopyTo(pad);
        pad[..rest.Length].CopyTo(rest);
    }
}
