namespace ShiftWise.IR;

/// <summary>
/// The host's side of the device's 16-bit types (CodegenCuda's types16.cu.sbn), bit for bit: float32 rounded to bf16
/// or fp16 to nearest with ties to even (overflow to infinity, every NaN to the canonical 0x7FFF, as the hardware's
/// cvt.rn does), and exact widening. Written here rather than taken from <see cref="Half"/>, whose NaN keeps a payload,
/// because weights uploaded in 16 bits must be what a kernel storing the same floats would have stored.
/// </summary>
public static class Float16Bits
{
    /// <summary>The canonical NaN both types round every NaN to.</summary>
    public const ushort CanonicalNaN = 0x7FFF;

    /// <summary>float32 to bf16, nearest, ties to even.</summary>
    public static ushort RoundBf16(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if ((u & 0x7FFFFFFFu) > 0x7F800000u) return CanonicalNaN;
        return (ushort)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    }

    /// <summary>float32 to fp16 (IEEE binary16), nearest, ties to even, subnormals kept.</summary>
    public static ushort RoundFp16(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f), sign = (u >> 16) & 0x8000u, a = u & 0x7FFFFFFFu;
        if (a > 0x7F800000u) return CanonicalNaN;
        if (a >= 0x477FF000u) return (ushort)(sign | 0x7C00u);        // 65520 and up round to infinity
        if (a >= 0x38800000u)                                         // a normal fp16
        {
            uint r = a + 0xFFFu + ((a >> 13) & 1u);
            return (ushort)(sign | ((r - 0x38000000u) >> 13));
        }
        if (a < 0x33000000u) return (ushort)sign;                     // below 2^-25 (and the tie at it): zero
        int shift = 126 - (int)(a >> 23);
        uint m = (a & 0x7FFFFFu) | 0x800000u, q = m >> shift, rest = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
        uint up = rest > half || (rest == half && (q & 1u) == 1u) ? 1u : 0u;
        return (ushort)(sign | (q + up));
    }

    /// <summary>Rounds to <paramref name="t"/> (bf16 or f16).</summary>
    public static ushort Round(float f, DType t) => t switch
    {
        DType.BF16 => RoundBf16(f),
        DType.F16 => RoundFp16(f),
        _ => throw new ArgumentException($"{t.Name()} is not a 16-bit float type", nameof(t)),
    };

    /// <summary>A bf16 or fp16 pattern widened to float32 (exact; a NaN keeps its payload).</summary>
    public static float Widen(ushort bits, DType t)
    {
        if (t == DType.BF16) return BitConverter.UInt32BitsToSingle((uint)bits << 16);
        if (t != DType.F16) throw new ArgumentException($"{t.Name()} is not a 16-bit float type", nameof(t));
        uint sign = (uint)(bits & 0x8000) << 16, e = (uint)(bits >> 10) & 0x1Fu, m = bits & 0x3FFu;
        if (e == 0x1Fu) return BitConverter.UInt32BitsToSingle(sign | 0x7F800000u | (m << 13));
        if (e != 0) return BitConverter.UInt32BitsToSingle(sign | ((e + 112u) << 23) | (m << 13));
        float v = m * 5.9604644775390625e-8f;
        return sign != 0 ? -v : v;
    }
}
