namespace ShiftWise.IR;

/// <summary>
/// How a compiled model stores and multiplies its tensors (issue 22). Accumulation is float32 in every case, and
/// what the user gets back is float32.
/// </summary>
public enum Precision
{
    /// <summary>Float32 storage and arithmetic (the default).</summary>
    Fp32,
    /// <summary>Float32 storage; cuBLAS may multiply on TF32 tensor cores (10-bit mantissa inputs).</summary>
    Tf32,
    /// <summary>Activations and weights stored in bfloat16.</summary>
    Bf16,
    /// <summary>Activations and weights stored in IEEE binary16.</summary>
    Fp16,
}

/// <summary>Names and storage types of <see cref="Precision"/> values.</summary>
public static class Precisions
{
    /// <summary>The names --precision and the configuration key take, in order.</summary>
    public static IReadOnlyList<string> Names { get; } = ["fp32", "tf32", "bf16", "fp16"];

    /// <summary>The name (fp32, tf32, bf16, fp16).</summary>
    public static string Name(this Precision p) => Names[(int)p];

    /// <summary>Parses a name; false when it names no precision.</summary>
    public static bool TryParse(string? s, out Precision p)
    {
        int i = s is null ? -1 : Names.ToList().IndexOf(s);
        p = i < 0 ? Precision.Fp32 : (Precision)i;
        return i >= 0;
    }

    /// <summary>The element type activations and weights are stored in: f32, bf16 or f16.</summary>
    public static DType Storage(this Precision p) => p switch
    {
        Precision.Bf16 => DType.BF16,
        Precision.Fp16 => DType.F16,
        _ => DType.F32,
    };

    /// <summary>True for bf16 and fp16.</summary>
    public static bool Is16Bit(this Precision p) => p is Precision.Bf16 or Precision.Fp16;
}
