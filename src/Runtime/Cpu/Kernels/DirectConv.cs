using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>Direct convolution of one plane with one k×k filter, for depthwise convs and the SW fallback.</summary>
internal static class DirectConv
{
    /// <summary>Copies the h×w plane into <paramref name="dst"/> inside ph zero rows and pw zero columns.</summary>
    public static void Pad(ReadOnlySpan<float> x, int h, int w, int ph, int pw, Span<float> dst)
    {
        int wp = w + 2 * pw;
        dst[..(ph * wp)].Clear();
        for (int r = 0; r < h; r++)
        {
            var row = dst.Slice((r + ph) * wp, wp);
            row[..pw].Clear();
            x.Slice(r * w, w).CopyTo(row.Slice(pw, w));
            row[(pw + w)..].Clear();
        }
        dst.Slice((ph + h) * wp, ph * wp).Clear();
    }

    /// <summary>Whether <see cref="Flat"/> beats <see cref="Stride1"/>: rows with a scalar tail, and not
    /// wide.</summary>
    public static bool UseFlat(int wo) => wo % 8 != 0 && wo < 64;

    /// <summary>The zero floats <see cref="Flat"/> needs after the padded plane (its last vectors read past
    /// it).</summary>
    public static int FlatSlack(int kw, int d1) => 8 + (kw - 1) * d1;

    /// <summary>The scratch <see cref="Flat"/> writes its padded-width output to: ho·wp rounded up to
    /// vectors.</summary>
    public static int FlatOut(int ho, int wp) => (ho * wp + 7) / 8 * 8;

    /// <summary>
    /// As <see cref="Stride1"/>, for narrow planes: the output is computed at the padded width wp, so that row i
    /// column j is flat position t = i·wp + j and every tap reads xp at t + u·d0·wp + v·d1 — one 1-D correlation
    /// over ⌈ho·wp/8⌉ vectors, four at a time, with no scalar tails; the columns j ≥ wo are dropped when the
    /// rows are copied out of <paramref name="scratch"/>. xp must be followed by <see cref="FlatSlack"/> readable
    /// floats.
    /// </summary>
    public static void Flat(ReadOnlySpan<float> xp, int wp, ReadOnlySpan<float> w, int kh, int kw, int d0, int d1,
        float bias, Span<float> y, int ho, int wo, Span<float> scratch)
    {
        if (ho == 0 || wo == 0) return;
        int n = FlatOut(ho, wp);
        if ((long)n - 1 + (long)(kh - 1) * d0 * wp + (kw - 1) * d1 >= xp.Length || wo + (kw - 1) * d1 > wp
            || w.Length < kh * kw || y.Length < ho * wo || scratch.Length < n)
        {
            throw new ArgumentException("flat direct convolution operands are too small for the requested output");
        }
        ref float x0 = ref MemoryMarshal.GetReference(xp);
        ref float w0 = ref MemoryMarshal.GetReference(w);
        ref float s0 = ref MemoryMarshal.GetReference(scratch);
        var b = Vector256.Create(bias);
        int t = 0;
        for (; t + 32 <= n; t += 32)
        {
            Vector256<float> a0 = b, a1 = b, a2 = b, a3 = b;
            for (int u = 0; u < kh; u++)
            for (int v = 0; v < kw; v++)
            {
                var wv = Vector256.Create(Unsafe.Add(ref w0, u * kw + v));
                nuint at = (nuint)(t + u * d0 * wp + v * d1);
                a0 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref x0, at), wv, a0);
                a1 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref x0, at + 8), wv, a1);
                a2 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref x0, at + 16), wv, a2);
                a3 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref x0, at + 24), wv, a3);
            }
            a0.StoreUnsafe(ref s0, (nuint)t);
            a1.StoreUnsafe(ref s0, (nuint)t + 8);
            a2.StoreUnsafe(ref s0, (nuint)t + 16);
            a3.StoreUnsafe(ref s0, (nuint)t + 24);
        }
        for (; t < n; t += 8)
        {
            var a = b;
            for (int u = 0; u < kh; u++)
            for (int v = 0; v < kw; v++)
            {
                a = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref x0, (nuint)(t + u * d0 * wp + v * d1)),
                    Vector256.Create(Unsafe.Add(ref w0, u * kw + v)), a);
            }
            a.StoreUnsafe(ref s0, (nuint)t);
        }
        for (int i = 0; i < ho; i++) scratch.Slice(i * wp, wo).CopyTo(y.Slice(i * wo, wo));
    }

    /// <summary>
    /// y(i, j) = bias + Σ w(u, v)·xp(i + u·d0, j + v·d1) for a ho×wo output, xp with rows of wp floats. Eight
    /// outputs stay in one register across all taps, so each tap costs a load and an FMA instead of a pass over
    /// the output row; the bounds are checked once up front.
    /// </summary>
    public static void Stride1(ReadOnlySpan<float> xp, int wp, ReadOnlySpan<float> w, int kh, int kw, int d0, int d1,
        float bias, Span<float> y, int ho, int wo)
    {
        long last = (long)(ho - 1 + (kh - 1) * d0) * wp + wo - 1 + (kw - 1) * d1;
        if (ho == 0 || wo == 0) return;
        if (last >= xp.Length || wo + (kw - 1) * d1 > wp || w.Length < kh * kw || y.Length < ho * wo)
        {
            throw new ArgumentException("direct convolution operands are too small for the requested output");
        }
        ref float x0 = ref MemoryMarshal.GetReference(xp);
        ref float w0 = ref MemoryMarshal.GetReference(w);
        ref float y0 = ref MemoryMarshal.GetReference(y);
        for (int i = 0; i < ho; i++)
        {
            int j = 0;
            for (; j <= wo - 8; j += 8)
            {
                var acc = Vector256.Create(bias);
                for (int u = 0; u < kh; u++)
                {
                    nuint row = (nuint)((i + u * d0) * wp + j);
                    for (int v = 0; v < kw; v++)
                    {
                        var xv = Vector256.LoadUnsafe(ref x0, row + (nuint)(v * d1));
                        acc = Vector256.FusedMultiplyAdd(xv, Vector256.Create(Unsafe.Add(ref w0, u * kw + v)), acc);
                    }
                }
                acc.StoreUnsafe(ref y0, (nuint)(i * wo + j));
            }
            for (; j < wo; j++)
            {
                float acc = bias;
                for (int u = 0; u < kh; u++)
                {
                    int row = (i + u * d0) * wp + j;
                    for (int v = 0; v < kw; v++) acc = MathF.FusedMultiplyAdd(xp[row + v * d1], w[u * kw + v], acc);
                }
                y[i * wo + j] = acc;
            }
        }
    }
}
