namespace ShiftWise.IR;

/// <summary>Element types a tensor can hold.</summary>
public enum DType
{
    /// <summary>IEEE binary32.</summary>
    F32,
    /// <summary>IEEE binary64.</summary>
    F64,
    /// <summary>IEEE binary16.</summary>
    F16,
    /// <summary>bfloat16 (the top half of a binary32).</summary>
    BF16,
    /// <summary>Signed 32-bit integer.</summary>
    I32,
    /// <summary>Signed 64-bit integer.</summary>
    I64,
}

/// <summary>Names, sizes and rounding of <see cref="DType"/> values.</summary>
public static class DTypes
{
    /// <summary>The text name used by .swir and error messages (f32, f64, ...).</summary>
    public static string Name(this DType t) => t switch
    {
        DType.F32 => "f32",
        DType.F64 => "f64",
        DType.F16 => "f16",
        DType.BF16 => "bf16",
        DType.I32 => "i32",
        DType.I64 => "i64",
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    /// <summary>Parses a text name; returns false when it names no type.</summary>
    public static bool TryParse(string s, out DType t)
    {
        foreach (var c in Enum.GetValues<DType>())
        {
            if (c.Name() == s)
            {
                t = c;
                return true;
            }
        }
        t = default;
        return false;
    }

    /// <summary>Bytes per element.</summary>
    public static int Size(this DType t) => t switch
    {
        DType.F32 or DType.I32 => 4,
        DType.F64 or DType.I64 => 8,
        DType.F16 or DType.BF16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    /// <summary>True for the four floating-point types.</summary>
    public static bool IsFloat(this DType t) => t is DType.F32 or DType.F64 or DType.F16 or DType.BF16;

    /// <summary>Rounds a double to the nearest value representable in <paramref name="t"/>.</summary>
    public static double Round(this DType t, double v) => t switch
    {
        DType.F64 => v,
        DType.F32 => (float)v,
        DType.F16 => (double)(Half)v,
        DType.BF16 => BFloat16Bits.ToDouble(BFloat16Bits.FromDouble(v)),
        DType.I32 => (int)v,
        DType.I64 => (long)v,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };
}

/// <summary>Bit-level conversions for bfloat16, stored as <see cref="ushort"/>.</summary>
public static class BFloat16Bits
{
    /// <summary>Round-to-nearest-even conversion; NaN stays NaN.</summary>
    public static ushort FromDouble(double v)
    {
        float f = (float)v;
        uint bits = BitConverter.SingleToUInt32Bits(f);
        if (float.IsNaN(f))
        {
            return (ushort)((bits >> 16) | 0x40);
        }
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }

    /// <summary>Widens a bfloat16 bit pattern.</summary>
    public static double ToDouble(ushort b) => BitConverter.UInt32BitsToSingle((uint)b << 16);
}
