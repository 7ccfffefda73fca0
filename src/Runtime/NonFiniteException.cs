using ShiftWise.IR;

namespace ShiftWise.Runtime;

/// <summary>A NaN or an infinity found by --check-finite: where it first appeared.</summary>
public sealed class NonFiniteException(string message) : IrException(message)
{
    /// <summary>
    /// Throws when <paramref name="v"/> holds a NaN or an infinity, naming <paramref name="where"/> and the first
    /// index.
    /// </summary>
    public static void Check(ReadOnlySpan<float> v, string where, TensorType type, string? after = null)
    {
        if (type.DType != DType.F32) return;
        int first = -1, count = 0;
        for (int i = 0; i < v.Length; i++)
        {
            if (!float.IsFinite(v[i]))
            {
                if (first < 0) first = i;
                count++;
            }
        }
        if (first < 0) return;
        float x = v[first];
        var what = float.IsNaN(x) ? "NaN" : x > 0 ? "+Inf" : "-Inf";
        throw new NonFiniteException($"--check-finite: {where} holds {what} at flat index {first} of {type} " +
            $"({count} of {v.Length} values are not finite)" + (after is null ? "" : $"; {after}"));
    }
}
