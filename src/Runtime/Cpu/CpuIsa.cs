using System.Runtime.Intrinsics.X86;

namespace ShiftWise.Runtime.Cpu;

/// <summary>The vector instruction sets the generated CPU kernels are written for.</summary>
public enum CpuIsaKind
{
    /// <summary>AVX2 and FMA: Vector256, 16 vector registers.</summary>
    Avx2,

    /// <summary>AVX-512F: Vector512, 32 vector registers.</summary>
    Avx512,
}

/// <summary>
/// Which vector ISA the generated CPU kernels use: AVX-512 where the CPU has AVX-512F, else AVX2. The environment
/// variable <c>SWC_CPU_ISA</c> (<c>avx2</c> or <c>avx512</c>; unset or <c>auto</c>: detect) forces one, so that CI
/// covers the AVX2 path on every machine and the AVX-512 path where the CPU has it. Forcing AVX-512 on a CPU without
/// it is an error, not a silent fallback. Tests force a choice for one async flow with <see cref="Force"/>.
/// </summary>
public static class CpuIsa
{
    /// <summary>The environment variable that forces the ISA.</summary>
    public const string Variable = "SWC_CPU_ISA";

    private static readonly AsyncLocal<CpuIsaKind?> Forced = new();

    /// <summary>Whether this CPU runs AVX-512F code.</summary>
    public static bool HasAvx512 => Avx512F.IsSupported;

    /// <summary>The ISA in force: a <see cref="Force"/> scope, else <c>SWC_CPU_ISA</c>, else detection.</summary>
    public static CpuIsaKind Current =>
        Forced.Value ?? Resolve(Environment.GetEnvironmentVariable(Variable), HasAvx512);

    /// <summary>Floats per vector of <see cref="Current"/>: 8 or 16.</summary>
    public static int VectorWidth => Width(Current);

    /// <summary>Floats per vector of <paramref name="isa"/>.</summary>
    public static int Width(CpuIsaKind isa) => isa == CpuIsaKind.Avx512 ? 16 : 8;

    /// <summary>
    /// The ISA for a setting of <c>SWC_CPU_ISA</c> (null, empty or "auto": the best this CPU has) on a CPU that has
    /// AVX-512F or not. Throws on an unknown value and on "avx512" without AVX-512F.
    /// </summary>
    public static CpuIsaKind Resolve(string? setting, bool hasAvx512)
    {
        switch (setting?.Trim().ToLowerInvariant())
        {
            case null or "" or "auto":
                return hasAvx512 ? CpuIsaKind.Avx512 : CpuIsaKind.Avx2;
            case "avx2":
                return CpuIsaKind.Avx2;
            case "avx512":
                return hasAvx512 ? CpuIsaKind.Avx512
                    : throw new InvalidOperationException($"{Variable}=avx512, but this CPU lacks AVX-512F");
            default:
                throw new InvalidOperationException($"{Variable}={setting}: expected avx2, avx512 or auto");
        }
    }

    /// <summary>
    /// Forces <paramref name="isa"/> for the calling async flow until the result is disposed (tests; the variable
    /// serves processes). Forcing AVX-512 without AVX-512F throws.
    /// </summary>
    public static IDisposable Force(CpuIsaKind isa)
    {
        if (isa == CpuIsaKind.Avx512 && !HasAvx512)
        {
            throw new InvalidOperationException("cannot force AVX-512: this CPU lacks AVX-512F");
        }
        var before = Forced.Value;
        Forced.Value = isa;
        return new Restore(before);
    }

    private sealed class Restore(CpuIsaKind? before) : IDisposable
    {
        public void Dispose() => Forced.Value = before;
    }
}
