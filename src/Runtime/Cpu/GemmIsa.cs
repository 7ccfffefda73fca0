using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ShiftWise.Runtime.Cpu;

/// <summary>Which vector width the register-tiled GEMM (<see cref="GemmTiled"/>) runs with.</summary>
public enum CpuIsa
{
    /// <summary>No usable vector ISA (no AVX2 and FMA): the GEMM kernels use BLAS and the managed GEMM only.</summary>
    None,
    /// <summary>Vector256 (AVX2 with FMA3).</summary>
    Avx2,
    /// <summary>Vector512 (AVX-512F).</summary>
    Avx512,
}

/// <summary>
/// The one place that reads <c>SWC_CPU_ISA</c> (<c>auto</c>, <c>avx2</c>, <c>avx512</c> or <c>none</c>): auto picks
/// AVX-512F where the CPU has it and AVX2 otherwise, so that CI can force the AVX2 path on an AVX-512 machine; none
/// turns the tiled GEMM off (BLAS and the epilogue passes, as before it existed). Asking for an ISA the CPU lacks
/// falls back to the best one it has, with <see cref="Warning"/> saying so.
/// </summary>
public static class GemmIsa
{
    private static readonly (CpuIsa Isa, string? Warning) Choice = Choose(
        Environment.GetEnvironmentVariable("SWC_CPU_ISA"));

    /// <summary>The ISA chosen for this process.</summary>
    public static CpuIsa Current => Choice.Isa;

    /// <summary>A sentence to show once when <c>SWC_CPU_ISA</c> could not be honoured; null otherwise.</summary>
    public static string? Warning => Choice.Warning;

    /// <summary>The best ISA this CPU runs.</summary>
    public static CpuIsa Best => Supported(CpuIsa.Avx512) ? CpuIsa.Avx512
        : Supported(CpuIsa.Avx2) ? CpuIsa.Avx2 : CpuIsa.None;

    /// <summary>Whether this CPU (and the JIT) runs <paramref name="isa"/>'s code.</summary>
    public static bool Supported(CpuIsa isa) => isa switch
    {
        CpuIsa.Avx2 => Avx2.IsSupported && Fma.IsSupported,
        CpuIsa.Avx512 => Avx512F.IsSupported && Fma.IsSupported && Vector512.IsHardwareAccelerated,
        _ => true,
    };

    /// <summary>
    /// The ISA for an <c>SWC_CPU_ISA</c> value (null or empty: auto), and a warning when it is not honoured.
    /// </summary>
    internal static (CpuIsa, string?) Choose(string? env)
    {
        var word = env?.Trim().ToLowerInvariant();
        CpuIsa want;
        switch (word)
        {
            case null or "" or "auto":
                return (Best, null);
            case "avx2":
                want = CpuIsa.Avx2;
                break;
            case "avx512":
                want = CpuIsa.Avx512;
                break;
            case "none":
                return (CpuIsa.None, null);
            default:
                return (Best, $"SWC_CPU_ISA='{env}' is not one of auto, avx2, avx512, none; using {Best}.");
        }
        return Supported(want) ? (want, null)
            : (Best, $"SWC_CPU_ISA={word}: this CPU does not run it; using {Best}.");
    }
}
