using System.Runtime.InteropServices;
using ShiftWise.CodegenCuda;
using ShiftWise.IR;

namespace ShiftWise.CudaEmu;

/// <summary>
/// What the 16-bit kernel tests (issue 22) share: 16-bit arrays packed two to a float of an emulator buffer and read
/// back, and one launch whose arguments are looked up by name among the test's buffers.
/// </summary>
internal static class Emu16
{
    /// <summary>The 16-bit values two to a float, the last float's upper half zero when the count is odd.</summary>
    public static float[] Pack(ushort[] bits)
    {
        var packed = new float[(bits.Length + 1) / 2];
        MemoryMarshal.Cast<ushort, float>(bits.AsSpan(0, bits.Length & ~1)).CopyTo(packed);
        if (bits.Length % 2 == 1) packed[^1] = BitConverter.UInt32BitsToSingle(bits[^1]);
        return packed;
    }

    /// <summary>The first <paramref name="n"/> 16-bit values of a buffer.</summary>
    public static ushort[] Unpack(EmuBuffer buffer, int n) => MemoryMarshal.Cast<float, ushort>(buffer.Span)[..n]
        .ToArray();

    /// <summary>A buffer for <paramref name="n"/> 16-bit values.</summary>
    public static EmuBuffer Alloc(long n) => EmuBuffer.Alloc((n + 1) / 2);

    /// <summary>
    /// Runs <paramref name="launch"/> of <paramref name="module"/>, each argument the buffer of its name (no offsets).
    /// </summary>
    public static void Launch(EmuModule module, KernelLaunch launch, IReadOnlyDictionary<string, EmuBuffer> buffers)
    {
        Assert.All(launch.Args, a => Assert.Equal(0, a.Offset));
        module.Launch(launch.Entry, launch.Grid, launch.Block, launch.SharedBytes,
            launch.Args.Select(a => buffers[a.Name].Ptr).ToArray());
    }
}
