using System.Runtime.InteropServices;
using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.Runtime.Cuda;

namespace ShiftWise.CudaEmu;

/// <summary>
/// The project's 16-bit types (issue 22, Templates/types16.cu.sbn and <see cref="Float16Bits"/>) against PyTorch and
/// numpy (tools/fixtures/gen_types16_fixtures.py): every one of the 65,536 bf16 and fp16 patterns widened, and float32
/// rounded to each type at every exact value, every tie between neighbours, one float32 ulp either side of each tie and
/// the specials (±0, ±inf, NaNs, float32 subnormals, the overflow threshold), bit for bit. NaN inputs round to the
/// canonical NaN 0x7FFF (the hardware's cvt.rn; torch keeps a quiet payload, so there only NaN-ness is compared). The
/// cast kernels in the emulator give the host's bits, and compile with NVRTC for compute_80 and compute_90 and to
/// CUBIN for sm_80 and sm_90 (where the hardware rounding's inline PTX is assembled).
/// </summary>
public sealed class Types16EmuTests
{
    private static readonly string Dir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "types16");

    // a version-1 .npy of a little-endian unsigned integer array, read raw (the fixtures' own format, checked)
    private static T[] Raw<T>(string file, string descr) where T : unmanaged
    {
        var b = File.ReadAllBytes(Path.Combine(Dir, file));
        Assert.True(b.Length > 10 && b[0] == 0x93 && b[1] == (byte)'N' && b[6] == 1, $"{file} is not a version-1 .npy");
        int header = BitConverter.ToUInt16(b, 8);
        var text = System.Text.Encoding.ASCII.GetString(b, 10, header);
        Assert.Contains($"'descr': '{descr}'", text);
        return MemoryMarshal.Cast<byte, T>(b.AsSpan(10 + header)).ToArray();
    }

    public static TheoryData<string> Types() => ["bf16", "fp16"];

    private static DType Of(string t) => t == "bf16" ? DType.BF16 : DType.F16;

    [Theory]
    [MemberData(nameof(Types))]
    public void WideningEveryPatternMatchesPyTorch(string type)
    {
        var want = Raw<uint>($"{type}_widen.npy", "<u4");
        Assert.Equal(65536, want.Length);
        int nans = 0;
        for (int p = 0; p < 65536; p++)
        {
            uint got = BitConverter.SingleToUInt32Bits(Float16Bits.Widen((ushort)p, Of(type)));
            if (float.IsNaN(BitConverter.UInt32BitsToSingle(want[p])))
            {
                nans++;
                Assert.True(float.IsNaN(BitConverter.UInt32BitsToSingle(got)), $"{type} 0x{p:X4} widens to non-NaN");
                continue;
            }
            Assert.True(got == want[p], $"{type} 0x{p:X4}: 0x{got:X8}, torch 0x{want[p]:X8}");
        }
        Assert.Equal(type == "bf16" ? 254 : 2046, nans);
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void RoundingEveryTieAndNeighbourMatchesPyTorch(string type)
    {
        var x = Raw<uint>($"{type}_round_in.npy", "<u4");
        var want = Raw<ushort>($"{type}_round.npy", "<u2");
        Assert.Equal(x.Length, want.Length);
        Assert.True(x.Length > 250_000);
        int nans = 0;
        for (int i = 0; i < x.Length; i++)
        {
            float f = BitConverter.UInt32BitsToSingle(x[i]);
            ushort got = Float16Bits.Round(f, Of(type));
            if (float.IsNaN(f))
            {
                nans++;
                Assert.Equal(Float16Bits.CanonicalNaN, got);
                Assert.True(float.IsNaN(Float16Bits.Widen(want[i], Of(type))), $"torch made 0x{x[i]:X8} a number");
                continue;
            }
            Assert.True(got == want[i], $"{type}: {f:R} (0x{x[i]:X8}) rounds to 0x{got:X4}, torch 0x{want[i]:X4}");
        }
        Assert.True(nans >= 10);
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void TheCastKernelsGiveTheHostsBitsInTheEmulator(string type)
    {
        TestKernels.RequireEmulator();
        var t = Of(type);
        var x = Raw<uint>($"{type}_round_in.npy", "<u4").Select(BitConverter.UInt32BitsToSingle).ToArray();
        // round: float32 in, 16-bit patterns out (two per float of the guarded output buffer)
        var round = Types16.Cast(t, x.Length, widen: false);
        using var xin = EmuBuffer.From(x);
        using var yout = EmuBuffer.Alloc((x.Length + 1) / 2);
        CudaEmulator.Compile(round).Launch(round.Entries[0], Types16.Grid(x.Length), new(Types16.Threads), 0,
            yout.Ptr, xin.Ptr);
        yout.CheckGuards("rounded");
        var got = MemoryMarshal.Cast<float, ushort>(yout.Span)[..x.Length].ToArray();
        for (int i = 0; i < x.Length; i++)
        {
            Assert.True(got[i] == Float16Bits.Round(x[i], t), $"{type}: kernel rounds {x[i]:R} to 0x{got[i]:X4}");
        }
        // widen: every pattern
        var patterns = Enumerable.Range(0, 65536).Select(p => (ushort)p).ToArray();
        var packed = new float[32768];
        MemoryMarshal.Cast<ushort, float>(patterns).CopyTo(packed);
        using var pin = EmuBuffer.From(packed);
        using var wout = EmuBuffer.Alloc(65536);
        var widen = Types16.Cast(t, 65536, widen: true);
        CudaEmulator.Compile(widen).Launch(widen.Entries[0], Types16.Grid(65536), new(Types16.Threads), 0,
            wout.Ptr, pin.Ptr);
        wout.CheckGuards("widened");
        var w = wout.ToArray();
        for (int p = 0; p < 65536; p++)
        {
            uint a = BitConverter.SingleToUInt32Bits(w[p]);
            uint b = BitConverter.SingleToUInt32Bits(Float16Bits.Widen((ushort)p, t));
            Assert.True(a == b, $"{type} 0x{p:X4}: kernel widens to 0x{a:X8}, host 0x{b:X8}");
        }
    }

    [Fact]
    public void TheCastKernelsCompileForCompute80And90AndToCubin()
    {
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
        foreach (var t in new[] { DType.BF16, DType.F16 })
        {
            foreach (bool widen in new[] { false, true })
            {
                var k = Types16.Cast(t, 1000, widen);
                Assert.DoesNotContain("#include", k.Source, StringComparison.Ordinal);
                foreach (var arch in new[] { "compute_80", "compute_90", "sm_80", "sm_90" })
                {
                    var c = CudaKernelCompiler.Compile(k, arch);
                    if (!c.Output.IsCubin)
                    {
                        Assert.False(CudaKernelCompiler.UsesLocalMemory(c.Output.Ptx), $"{k.Name} uses local memory");
                        if (!widen) Assert.Contains("cvt.rn.", c.Output.Ptx, StringComparison.Ordinal);
                    }
                }
            }
        }
    }
}
