using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ShiftWise.Runtime.Cpu;

/// <summary>Which vector width the register-tiled GEMM (<see cref="GemmTiled"/>) runs with.</summary>
public enum GemmVectors
{
    /// <summary>No tiled GEMM (no AVX2 and FMA, or a caller that asks for BLAS and the managed GEMM only).</summary>
    None,
    /// <summary>Vector256 (AVX2 with FMA3).</summary>
    Avx2,
    /// <summary>Vector512 (AVX-512F).</summary>
    Avx512,
}

/// <summary>
/// The tiled GEMM's vector width: the ISA the generated CPU kernels use (<see cref="CpuIsa.Current"/>, the one reader
/// of <c>SWC_CPU_ISA</c>, and its test scopes), where this CPU and the JIT run it.
/// </summary>
public static class GemmIsa
{
    /// <summary>The width for <see cref="CpuIsa.Current"/>.</summary>
    public static GemmVectors Current => CpuIsa.Current == CpuIsaKind.Avx512 && Supported(GemmVectors.Avx512)
        ? GemmVectors.Avx512
        : Supported(GemmVectors.Avx2) ? GemmVectors.Avx2 : GemmVectors.None;

    /// <summary>Whether this CPU (and the JIT) runs <paramref name="isa"/>'s code.</summary>
    public static bool Supported(GemmVectors isa) => isa switch
    {
        GemmVectors.Avx2 => Avx2.IsSupported && Fma.IsSupported,
        GemmVectors.Avx512 => Avx512F.IsSupported && Fma.IsSupported && Vector512.IsHardwareAccelerated,
        _ => true,
    };
}
