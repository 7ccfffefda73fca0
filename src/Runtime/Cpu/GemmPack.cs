using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ShiftWise.Runtime.Cpu;

/// <summary>
/// Packing for <see cref="ManagedGemm"/>: op(A) into 6-row panels (6 floats per k step), op(B) into 16-column
/// panels (16 floats per k step), zero-padded, so the micro-kernel reads both with unit stride whatever the
/// transposes. Transposed B (the weights of a linear layer, or the activations when computing Yᵀ = W·Xᵀ) goes
/// through 8×8 register transposes: element-wise strided packing cost as much as the multiply at K = 320.
/// </summary>
internal static unsafe class GemmPack
{
    private const int MR = 6;
    private const int NR = 16;

    /// <summary>
    /// Packs panels [p0, p1) of op(B) rows [pc, pc+kc): panel j holds columns 16j..16j+15 at dst + 16·j·kc.
    /// op(B)(p, j) is b[p·ldb + j], or b[j·ldb + p] when <paramref name="transB"/>.
    /// </summary>
    public static void PackB(bool transB, float* b, int ldb, int n, int pc, int kc, int p0, int p1, float* dst)
    {
        for (int panel = p0; panel < p1; panel++)
        {
            float* d = dst + (long)panel * kc * NR;
            int j0 = panel * NR, nr = Math.Min(NR, n - j0);
            if (!transB)
            {
                for (int p = 0; p < kc; p++)
                {
                    float* s = b + (long)(pc + p) * ldb + j0;
                    if (nr == NR)
                    {
                        Vector256.Store(Vector256.Load(s), d + p * NR);
                        Vector256.Store(Vector256.Load(s + 8), d + p * NR + 8);
                    }
                    else
                    {
                        for (int j = 0; j < NR; j++) d[p * NR + j] = j < nr ? s[j] : 0f;
                    }
                }
                continue;
            }
            int p8 = 0;
            if (nr == NR && Avx.IsSupported)
            {
                // two 8×8 blocks per 8 steps of p: rows j0..j0+7 and j0+8..j0+15 of B, transposed into the panel
                for (; p8 + 8 <= kc; p8 += 8)
                {
                    Transpose8x8(b + (long)j0 * ldb + pc + p8, ldb, d + p8 * NR, NR);
                    Transpose8x8(b + (long)(j0 + 8) * ldb + pc + p8, ldb, d + p8 * NR + 8, NR);
                }
            }
            for (int j = 0; j < NR; j++)
            {
                float* s = j < nr ? b + (long)(j0 + j) * ldb + pc : null;
                for (int p = p8; p < kc; p++) d[p * NR + j] = s != null ? s[p] : 0f;
            }
        }
    }

    /// <summary>
    /// Packs op(A) rows [ic + from, ic + mc), columns [pc, pc+kc), as 6-row panels: the panel of row ic + i (i a
    /// multiple of 6) at dst + i·kc. op(A)(i, p) is a[i·lda + p], or a[p·lda + i] when <paramref name="transA"/>.
    /// </summary>
    public static void PackA(bool transA, float* a, int lda, int ic, int from, int mc, int pc, int kc, float* dst)
    {
        for (int ir = from; ir < mc; ir += MR)
        {
            float* d = dst + ir * kc;
            int mr = Math.Min(MR, mc - ir);
            if (!transA)
            {
                for (int r = 0; r < MR; r++)
                {
                    float* s = r < mr ? a + (long)(ic + ir + r) * lda + pc : null;
                    for (int p = 0; p < kc; p++) d[p * MR + r] = s != null ? s[p] : 0f;
                }
            }
            else if (mr == MR)
            {
                // each step of p is six contiguous floats: one 4-wide move and two scalars
                float* s = a + (long)pc * lda + ic + ir;
                for (int p = 0; p < kc; p++, s += lda)
                {
                    Vector128.Store(Vector128.Load(s), d + p * MR);
                    d[p * MR + 4] = s[4];
                    d[p * MR + 5] = s[5];
                }
            }
            else
            {
                for (int p = 0; p < kc; p++)
                {
                    float* s = a + (long)(pc + p) * lda + ic + ir;
                    for (int r = 0; r < MR; r++) d[p * MR + r] = r < mr ? s[r] : 0f;
                }
            }
        }
    }

    /// <summary>
    /// dst[i·ldd + j] = src[j·lds + i] for an 8×8 block, in registers (unpack, shuffle, swap halves).
    /// </summary>
    internal static void Transpose8x8(float* src, int lds, float* dst, int ldd)
    {
        var r0 = Avx.LoadVector256(src);
        var r1 = Avx.LoadVector256(src + lds);
        var r2 = Avx.LoadVector256(src + 2 * lds);
        var r3 = Avx.LoadVector256(src + 3 * lds);
        var r4 = Avx.LoadVector256(src + 4 * lds);
        var r5 = Avx.LoadVector256(src + 5 * lds);
        var r6 = Avx.LoadVector256(src + 6 * lds);
        var r7 = Avx.LoadVector256(src + 7 * lds);
        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5);
        var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7);
        var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44);
        var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44);
        var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44);
        var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44);
        var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(dst + ldd, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(dst + 2 * ldd, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(dst + 3 * ldd, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(dst + 4 * ldd, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(dst + 5 * ldd, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(dst + 6 * ldd, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(dst + 7 * ldd, Avx.Permute2x128(u3, u7, 0x31));
    }
}
