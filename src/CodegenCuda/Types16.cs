using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using ShiftWise.Codegen;
using ShiftWise.IR;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// The project's 16-bit storage types on the device (Templates/types16.cu.sbn: <c>swc_bf16</c>, <c>swc_fp16</c>, their
/// paired forms, exact widening and round-to-nearest-even stores with the hardware's cvt.rn on sm_80+ and integer code
/// elsewhere) and the cast kernels between them and float32. No toolkit header is included, so the same source
/// compiles with NVRTC 11.8 and 13 and in the CUDA emulator.
/// </summary>
public static class Types16
{
    /// <summary>Threads per block of the cast kernels.</summary>
    public const int Threads = 256;

    /// <summary>The type definitions and conversions, for a kernel source to start with.</summary>
    public static string Prelude { get; } = TemplateRenderer.Render("types16.cu.sbn", new { });

    /// <summary>The name of a 16-bit type in kernel sources (bf16, fp16).</summary>
    public static string Name(DType t) => t switch
    {
        DType.BF16 => "bf16",
        DType.F16 => "fp16",
        _ => throw new ArgumentException($"{t.Name()} is not a 16-bit float type", nameof(t)),
    };

    /// <summary>
    /// A kernel that converts <paramref name="n"/> values: float32 to <paramref name="type"/> (<paramref name="widen"/>
    /// false; entry (y, x)) or back. <paramref name="soft"/> forces the integer rounding on every arch (the GPU test
    /// compares it with the hardware's).
    /// </summary>
    public static CudaKernelSource Cast(DType type, long n, bool widen, bool soft = false)
    {
        var model = new CastModel(Name(type), n, widen, soft, Prelude);
        var probe = TemplateRenderer.Render("cast16.cu.sbn", model with { Name = "swc_kernel_name_placeholder" });
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(probe)))[..8];
        string name = string.Create(CultureInfo.InvariantCulture,
            $"cast_{(widen ? "widen" : "round")}_{model.Type}{(soft ? "_soft" : "")}_n{n}_{hash}");
        var source = TemplateRenderer.Render("cast16.cu.sbn", model with { Name = name });
        return new CudaKernelSource(name, model.Kind, source, [name]);
    }

    /// <summary>Blocks for a cast of <paramref name="n"/> values.</summary>
    public static Dim3 Grid(long n) => new((int)Math.Max(1, (n + Threads - 1) / Threads));

    /// <summary>The view-model of cast16.cu.sbn.</summary>
    internal sealed record CastModel(string Type, long N, bool Widen, bool Soft, string Prelude)
    {
        public string Name { get; init; } = "";

        public string Kind => Widen ? "widen_" + Type : "round_" + Type;

        public int Threads => Types16.Threads;
    }
}
