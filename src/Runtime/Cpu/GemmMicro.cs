using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ShiftWise.Runtime.Cpu;

/// <summary>
/// The vector operations the GEMM micro-kernels need, as a type so that one generic kernel compiles (the JIT
/// specialises generics over structs) to Vector256 or Vector512 code with everything inlined.
/// </summary>
internal unsafe interface ISimd<TV> where TV : struct
{
    /// <summary>Floats per vector.</summary>
    static abstract int Lanes { get; }

    static abstract TV Load(float* p);

    static abstract void Store(TV v, float* p);

    static abstract TV Splat(float x);

    /// <summary>a·b + c, fused.</summary>
    static abstract TV Fma(TV a, TV b, TV c);

    static abstract float Sum(TV v);
}

/// <summary>AVX2 with FMA3: eight lanes.</summary>
internal readonly unsafe struct Simd256 : ISimd<Vector256<float>>
{
    public static int Lanes => 8;

    public static Vector256<float> Load(float* p) => Vector256.Load(p);

    public static void Store(Vector256<float> v, float* p) => Vector256.Store(v, p);

    public static Vector256<float> Splat(float x) => Vector256.Create(x);

    public static Vector256<float> Fma(Vector256<float> a, Vector256<float> b, Vector256<float> c) =>
        System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(a, b, c);

    public static float Sum(Vector256<float> v) => Vector256.Sum(v);
}

/// <summary>AVX-512F: sixteen lanes.</summary>
internal readonly unsafe struct Simd512 : ISimd<Vector512<float>>
{
    public static int Lanes => 16;

    public static Vector512<float> Load(float* p) => Vector512.Load(p);

    public static void Store(Vector512<float> v, float* p) => Vector512.Store(v, p);

    public static Vector512<float> Splat(float x) => Vector512.Create(x);

    public static Vector512<float> Fma(Vector512<float> a, Vector512<float> b, Vector512<float> c) =>
        Avx512F.FusedMultiplyAdd(a, b, c);

    public static float Sum(Vector512<float> v) => Vector512.Sum(v);
}

/// <summary>
/// The register tiles of <see cref="GemmTiled"/>. <see cref="Rows6x2{TS, TV}"/> and <see cref="Rows6x1{TS, TV}"/>:
/// six rows of A broadcast against two (one) vectors of a B row, 12 (6) accumulators, both operands read in place
/// (A row r at a + r·lda, B row p at b + p·ldb). <see cref="Dot4x3{TS, TV}"/>: twelve dot products of four A rows
/// with three B rows, both contiguous along k. Accumulation order is fixed by k alone, so results do not depend on
/// the schedule.
/// </summary>
internal static unsafe class GemmMicro
{
    /// <summary>
    /// tile[r·2L + j] = Σ_p a[r·lda + p]·b[p·ldb + j] for r &lt; 6, j &lt; 2L (L = lanes), added to what the tile
    /// holds when <paramref name="add"/> (a later block of K).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows6x2<TS, TV>(int k, float* a, nint lda, float* b, nint ldb, float* tile, bool add)
        where TS : struct, ISimd<TV> where TV : struct
    {
        int l = TS.Lanes, w = 2 * l;
        TV c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        TV c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        if (add)
        {
            (c00, c01, c10, c11) = (TS.Load(tile), TS.Load(tile + l), TS.Load(tile + w), TS.Load(tile + w + l));
            (c20, c21) = (TS.Load(tile + 2 * w), TS.Load(tile + 2 * w + l));
            (c30, c31) = (TS.Load(tile + 3 * w), TS.Load(tile + 3 * w + l));
            (c40, c41) = (TS.Load(tile + 4 * w), TS.Load(tile + 4 * w + l));
            (c50, c51) = (TS.Load(tile + 5 * w), TS.Load(tile + 5 * w + l));
        }
        float* a0 = a, a1 = a + lda, a2 = a1 + lda, a3 = a2 + lda, a4 = a3 + lda, a5 = a4 + lda;
        for (int p = 0; p < k; p++, b += ldb)
        {
            var b0 = TS.Load(b);
            var b1 = TS.Load(b + l);
            var av = TS.Splat(a0[p]);
            c00 = TS.Fma(av, b0, c00);
            c01 = TS.Fma(av, b1, c01);
            av = TS.Splat(a1[p]);
            c10 = TS.Fma(av, b0, c10);
            c11 = TS.Fma(av, b1, c11);
            av = TS.Splat(a2[p]);
            c20 = TS.Fma(av, b0, c20);
            c21 = TS.Fma(av, b1, c21);
            av = TS.Splat(a3[p]);
            c30 = TS.Fma(av, b0, c30);
            c31 = TS.Fma(av, b1, c31);
            av = TS.Splat(a4[p]);
            c40 = TS.Fma(av, b0, c40);
            c41 = TS.Fma(av, b1, c41);
            av = TS.Splat(a5[p]);
            c50 = TS.Fma(av, b0, c50);
            c51 = TS.Fma(av, b1, c51);
        }
        TS.Store(c00, tile);
        TS.Store(c01, tile + l);
        TS.Store(c10, tile + w);
        TS.Store(c11, tile + w + l);
        TS.Store(c20, tile + 2 * w);
        TS.Store(c21, tile + 2 * w + l);
        TS.Store(c30, tile + 3 * w);
        TS.Store(c31, tile + 3 * w + l);
        TS.Store(c40, tile + 4 * w);
        TS.Store(c41, tile + 4 * w + l);
        TS.Store(c50, tile + 5 * w);
        TS.Store(c51, tile + 5 * w + l);
    }

    /// <summary>As <see cref="Rows6x2{TS, TV}"/> with one vector of B: tile[r·2L + j] for j &lt; L.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows6x1<TS, TV>(int k, float* a, nint lda, float* b, nint ldb, float* tile, bool add)
        where TS : struct, ISimd<TV> where TV : struct
    {
        int w = 2 * TS.Lanes;
        TV c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default;
        if (add)
        {
            (c0, c1, c2) = (TS.Load(tile), TS.Load(tile + w), TS.Load(tile + 2 * w));
            (c3, c4, c5) = (TS.Load(tile + 3 * w), TS.Load(tile + 4 * w), TS.Load(tile + 5 * w));
        }
        float* a0 = a, a1 = a + lda, a2 = a1 + lda, a3 = a2 + lda, a4 = a3 + lda, a5 = a4 + lda;
        for (int p = 0; p < k; p++, b += ldb)
        {
            var b0 = TS.Load(b);
            c0 = TS.Fma(TS.Splat(a0[p]), b0, c0);
            c1 = TS.Fma(TS.Splat(a1[p]), b0, c1);
            c2 = TS.Fma(TS.Splat(a2[p]), b0, c2);
            c3 = TS.Fma(TS.Splat(a3[p]), b0, c3);
            c4 = TS.Fma(TS.Splat(a4[p]), b0, c4);
            c5 = TS.Fma(TS.Splat(a5[p]), b0, c5);
        }
        TS.Store(c0, tile);
        TS.Store(c1, tile + w);
        TS.Store(c2, tile + 2 * w);
        TS.Store(c3, tile + 3 * w);
        TS.Store(c4, tile + 4 * w);
        TS.Store(c5, tile + 5 * w);
    }

    /// <summary>
    /// dot[i·3 + j] = Σ_p a[i·lda + p]·b[j·ldb + p] for i &lt; 4, j &lt; 3: vector lanes along p, the last
    /// k mod L steps in scalar after the horizontal sums.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Dot4x3<TS, TV>(int k, float* a, nint lda, float* b, nint ldb, float* dot)
        where TS : struct, ISimd<TV> where TV : struct
    {
        int l = TS.Lanes;
        TV c00 = default, c01 = default, c02 = default, c10 = default, c11 = default, c12 = default;
        TV c20 = default, c21 = default, c22 = default, c30 = default, c31 = default, c32 = default;
        float* a0 = a, a1 = a + lda, a2 = a1 + lda, a3 = a2 + lda, b0 = b, b1 = b + ldb, b2 = b1 + ldb;
        int p = 0;
        for (; p + l <= k; p += l)
        {
            var x0 = TS.Load(b0 + p);
            var x1 = TS.Load(b1 + p);
            var x2 = TS.Load(b2 + p);
            var w = TS.Load(a0 + p);
            c00 = TS.Fma(w, x0, c00);
            c01 = TS.Fma(w, x1, c01);
            c02 = TS.Fma(w, x2, c02);
            w = TS.Load(a1 + p);
            c10 = TS.Fma(w, x0, c10);
            c11 = TS.Fma(w, x1, c11);
            c12 = TS.Fma(w, x2, c12);
            w = TS.Load(a2 + p);
            c20 = TS.Fma(w, x0, c20);
            c21 = TS.Fma(w, x1, c21);
            c22 = TS.Fma(w, x2, c22);
            w = TS.Load(a3 + p);
            c30 = TS.Fma(w, x0, c30);
            c31 = TS.Fma(w, x1, c31);
            c32 = TS.Fma(w, x2, c32);
        }
        dot[0] = TS.Sum(c00);
        dot[1] = TS.Sum(c01);
        dot[2] = TS.Sum(c02);
        dot[3] = TS.Sum(c10);
        dot[4] = TS.Sum(c11);
        dot[5] = TS.Sum(c12);
        dot[6] = TS.Sum(c20);
        dot[7] = TS.Sum(c21);
        dot[8] = TS.Sum(c22);
        dot[9] = TS.Sum(c30);
        dot[10] = TS.Sum(c31);
        dot[11] = TS.Sum(c32);
        for (; p < k; p++)
        {
            float v0 = b0[p], v1 = b1[p], v2 = b2[p];
            for (int i = 0; i < 4; i++)
            {
                float u = a[i * lda + p];
                dot[i * 3] += u * v0;
                dot[i * 3 + 1] += u * v1;
                dot[i * 3 + 2] += u * v2;
            }
        }
    }
}
