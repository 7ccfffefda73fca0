using System.Runtime.InteropServices;
using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.Passes;
using ShiftWise.Runtime.Cuda;

namespace ShiftWise.Gpu.Tests;

/// <summary>
/// The project's 16-bit rounding on a real GPU (issue 22): the hardware's cvt.rn.bf16.f32 and cvt.rn.f16.f32 (what the
/// kernels use on sm_80+) against the integer code the emulator and older arches use (<c>SWC_SOFT16</c>) and against
/// the host's <see cref="Float16Bits"/>, bit for bit, on every tie of tools/fixtures/gen_types16_fixtures.py plus four
/// million seeded random float32 patterns (NaNs, subnormals and all). Skipped, with the reason, without a GPU.
/// </summary>
public sealed class Types16GpuTests
{
    [Theory]
    [InlineData("bf16")]
    [InlineData("fp16")]
    public void TheHardwareRoundsAsTheSoftwareDoes(string type)
    {
        if (!CudaDevice.Available) Assert.Skip(CudaDevice.MissingReason!);
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
        var t = type == "bf16" ? DType.BF16 : DType.F16;
        var raw = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Fixtures", "types16",
            $"{type}_round_in.npy"));
        int header = BitConverter.ToUInt16(raw, 8);
        var ties = MemoryMarshal.Cast<byte, uint>(raw.AsSpan(10 + header)).ToArray();
        var rng = new Random(22);
        var bits = ties.Concat(Enumerable.Range(0, 4 << 20).Select(_ => (uint)rng.NextInt64(0, 1L << 32))).ToArray();
        var x = bits.Select(BitConverter.UInt32BitsToSingle).ToArray();
        int n = x.Length;
        var hard = Types16.Cast(t, n, widen: false);
        var soft = Types16.Cast(t, n, widen: false, soft: true);
        var g = new Graph("cast16", new[] { new ValueDecl("x", TensorType.Of(DType.F32, n)) },
            Array.Empty<ValueDecl>(), Array.Empty<Node>(), new[] { "x" });
        var plan = new CudaPlan("cast16", CudaDevice.Info.Arch, [hard, soft], [], [], [], MemoryPlan.Of(g))
        {
            Inputs = g.Inputs.ToArray(),
            Outputs = ["x"],
        };
        using var ex = new CudaExecutor(plan, g, new Dictionary<string, Tensor>());
        ex.SetInputs(new Dictionary<string, Tensor> { ["x"] = Tensor.Wrap(TensorType.Of(DType.F32, n), x) });
        using var yh = DeviceBuffer.Alloc((n + 1) / 2 * 4, "hardware-rounded");
        using var ys = DeviceBuffer.Alloc((n + 1) / 2 * 4, "software-rounded");
        ex.Launch(hard.Entries[0], Types16.Grid(n), new Dim3(Types16.Threads), yh.Ptr, ex.Address("x"));
        ex.Launch(soft.Entries[0], Types16.Grid(n), new Dim3(Types16.Threads), ys.Ptr, ex.Address("x"));
        ex.Synchronize();
        var a = new float[(n + 1) / 2];
        var b = new float[(n + 1) / 2];
        yh.Download(a);
        ys.Download(b);
        var ha = MemoryMarshal.Cast<float, ushort>(a)[..n];
        var hb = MemoryMarshal.Cast<float, ushort>(b)[..n];
        int differ = 0;
        string first = "";
        for (int i = 0; i < n; i++)
        {
            ushort host = Float16Bits.Round(x[i], t);
            if (ha[i] != hb[i] || ha[i] != host)
            {
                if (differ++ == 0)
                {
                    first = $"0x{bits[i]:X8}: hardware 0x{ha[i]:X4}, software 0x{hb[i]:X4}, host 0x{host:X4}";
                }
            }
        }
        Assert.True(differ == 0, $"{type}: {differ} of {n} values round differently, first {first}");
    }
}
