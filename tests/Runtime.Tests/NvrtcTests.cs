using ShiftWise.IR;
using ShiftWise.Runtime.Cuda;

namespace ShiftWise.Runtime.Tests;

/// <summary>NVRTC through our binding (Debian's libnvrtc11.2 in CI; the test skips with the reason where it is absent).</summary>
public sealed class NvrtcTests
{
    private const string Saxpy = """
        extern "C" __global__ void saxpy(int n, float a, const float* __restrict__ x, float* __restrict__ y)
        {
            int i = blockIdx.x * blockDim.x + threadIdx.x;
            if (i < n) y[i] = fmaf(a, __ldg(x + i), y[i]);
        }
        """;

    private static void RequireNvrtc()
    {
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
    }

    [Theory]
    [InlineData("compute_80")]
    [InlineData("compute_90")]
    public void CompilesToPtxForVirtualArchitectures(string arch)
    {
        RequireNvrtc();
        var (major, _) = NvrtcCompiler.Version;
        Assert.True(major >= 11);
        var ptx = NvrtcCompiler.Compile(Saxpy, "saxpy.cu", arch).Ptx;
        Assert.Contains(".entry saxpy", ptx);
        Assert.Contains(".target sm_" + arch["compute_".Length..], ptx);
        Assert.DoesNotContain(".local", ptx);
    }

    [Fact]
    public void CompilesToCubinForARealArchitecture()
    {
        RequireNvrtc();
        var o = NvrtcCompiler.Compile(Saxpy, "saxpy.cu", "sm_80");
        Assert.True(o.IsCubin);
        Assert.Equal((byte)0x7F, o.Image[0]); // an ELF image
        Assert.Equal("ELF"u8.ToArray(), o.Image[1..4]);
    }

    [Fact]
    public void ACompileErrorNamesTheFileAndLine()
    {
        RequireNvrtc();
        var e = Assert.Throws<IrException>(() => NvrtcCompiler.Compile(Saxpy.Replace("fmaf(", "fmaf_nope("), "saxpy.cu", "compute_80"));
        Assert.Contains("NVRTC could not compile saxpy.cu for compute_80", e.Message);
        Assert.Contains("saxpy.cu(4)", e.Message);
    }

    [Fact]
    public void ABadArchIsRejected()
    {
        RequireNvrtc();
        Assert.Contains("must be compute_NN", Assert.Throws<IrException>(() => NvrtcCompiler.Compile(Saxpy, "s.cu", "volta")).Message);
    }
}
