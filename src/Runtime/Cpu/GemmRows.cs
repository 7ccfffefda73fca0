using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using static ShiftWise.Runtime.Cpu.Activations;

namespace ShiftWise.Runtime.Cpu;

/// <summary>
/// The epilogue steps of <see cref="GemmTiled"/> on one row of a tile or of the output, eight lanes at a time while
/// the row is in L1: bias (one value per row: the row is a channel), activation, residual, and GRN's sum of squares
/// in float64 over the valid lanes only.
/// </summary>
internal static unsafe class GemmRows
{
    private static readonly Vector256<float> Lanes = Vector256.Create(0f, 1, 2, 3, 4, 5, 6, 7);

    /// <summary>
    /// v[j] = act(v[j] + bias) for j &lt; <paramref name="width"/> (a multiple of 8: a padded tile row); returns
    /// Σ v[j]² over j &lt; <paramref name="len"/> when <paramref name="stats"/>, else 0.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Tile<T>(float* v, int width, int len, float bias, bool stats) where T : struct, ILanes
    {
        var vb = Vector256.Create(bias);
        var acc = Vector256<double>.Zero;
        for (int j = 0; j < width; j += 8)
        {
            var x = T.Apply(Vector256.Load(v + j) + vb);
            Vector256.Store(x, v + j);
            if (!stats || j >= len) continue;
            if (len - j < 8) x &= Vector256.GreaterThan(Vector256.Create((float)(len - j)), Lanes);
            var (lo, hi) = Vector256.Widen(x);
            acc = Vector256.MultiplyAddEstimate(hi, hi, Vector256.MultiplyAddEstimate(lo, lo, acc));
        }
        return stats ? Vector256.Sum(acc) : 0;
    }

    /// <summary>
    /// dst[j] = src[j] (+ res[j]) for j &lt; <paramref name="len"/>: a tile row to a channel-first output row.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Copy(float* src, float* dst, float* res, int len)
    {
        int j = 0;
        for (; j + 8 <= len; j += 8)
        {
            var x = Vector256.Load(src + j);
            if (res != null) x += Vector256.Load(res + j);
            Vector256.Store(x, dst + j);
        }
        for (; j < len; j++) dst[j] = res != null ? src[j] + res[j] : src[j];
    }

    /// <summary>
    /// v[j] = act(v[j] + bias) + res[j] in place for j &lt; <paramref name="len"/> (res may be null); the last
    /// partial vector goes through a zero-padded copy, so a value does not depend on where it sits in the row.
    /// </summary>
    public static void InPlace<T>(float* v, int len, float bias, float* res) where T : struct, ILanes
    {
        var vb = Vector256.Create(bias);
        int j = 0;
        for (; j + 8 <= len; j += 8)
        {
            var x = T.Apply(Vector256.Load(v + j) + vb);
            if (res != null) x += Vector256.Load(res + j);
            Vector256.Store(x, v + j);
        }
        if (j == len) return;
        var tmp = stackalloc float[8];
        int count = len - j;
        for (int t = 0; t < 8; t++) tmp[t] = t < count ? v[j + t] : 0f;
        var y = T.Apply(Vector256.Load(tmp) + vb);
        Vector256.Store(y, tmp);
        for (int t = 0; t < count; t++) v[j + t] = res != null ? tmp[t] + res[j + t] : tmp[t];
    }

    /// <summary>
    /// dst[j·ldd + i] = src[i·lds + j] (+ res[j·ldd + i]) for i &lt; rows, j &lt; cols: a block of channel-first
    /// tile rows to a channel-last output, in 8×8 register transposes with a scalar rim.
    /// </summary>
    public static void Transpose(float* src, int lds, int rows, int cols, float* dst, int ldd, float* res)
    {
        int i8 = rows / 8 * 8, j8 = cols / 8 * 8;
        for (int i = 0; i < i8; i += 8)
        {
            for (int j = 0; j < j8; j += 8)
            {
                GemmPack.Transpose8x8(src + (long)i * lds + j, lds, dst + (long)j * ldd + i, ldd);
            }
        }
        for (int j = 0; j < cols; j++)
        {
            float* d = dst + (long)j * ldd;
            int from = j < j8 ? i8 : 0;
            for (int i = from; i < rows; i++) d[i] = src[(long)i * lds + j];
            if (res == null) continue;
            float* r = res + (long)j * ldd;
            int t = 0;
            for (; t + 8 <= rows; t += 8) Vector256.Store(Vector256.Load(d + t) + Vector256.Load(r + t), d + t);
            for (; t < rows; t++) d[t] += r[t];
        }
    }
}
