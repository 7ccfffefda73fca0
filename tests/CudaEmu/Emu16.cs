using System.Runtime.InteropServices;
using ShiftWise.CodegenCuda;
using ShiftWise.IR;

namespace ShiftWise.CudaEmu;

/// <summary>
/// Running a 16-bit kernel (issue 22) in the emulator: buffers of packed 16-bit patterns (two per float of an
/// <see cref="EmuBuffer"/>), one <see cref="KernelLaunch"/> whose arguments are named buffers.
/// </summary>
internal static class Emu16
{
    /// <summary><paramref name="bits"/> two to a float (an odd last one in the low half).</summary>
    public static float[] Pack(ushort[] bits)
    {
        var packed = new float[(bits.Length + 1) / 2];
        MemoryMarshal.Cast<ushort, float>(bits.AsSpan(0, bits.Length & ~1)).CopyTo(packed);
        if (bits.Length % 2 == 1) packed[^1] = BitConverter.UInt32BitsToSingle(bits[^1]);
        return packed;
    }

    /// <summary>
    /// <paramref name="n"/> random values uniform in ±<paramref name="scale"/>, rounded to <paramref name="t"/>.
    /// </summary>
    public static ushort[] Random(Random rng, long n, DType t, double scale = 3) =>
        Enumerable.Range(0, checked((int)n))
            .Select(_ => Float16Bits.Round((float)((rng.NextDouble() * 2 - 1) * scale), t)).ToArray();

    /// <summary>
    /// Runs <paramref name="launch"/> of <paramref name="source"/> with its arguments looked up by name: the
    /// <paramref name="inputs"/> (16-bit patterns), the float32 <paramref name="floats"/> (derived tensors, say) and
    /// fresh <paramref name="outputs"/> (name → element count; NaN filled). Checks every buffer's guards; returns each
    /// output's 16-bit patterns.
    /// </summary>
    public static Dictionary<string, ushort[]> Run(CudaKernelSource source, KernelLaunch launch,
        IReadOnlyDictionary<string, ushort[]> inputs, IReadOnlyDictionary<string, long> outputs,
        IReadOnlyDictionary<string, float[]>? floats = null)
    {
        var buffers = new Dictionary<string, EmuBuffer>();
        try
        {
            foreach (var (name, bits) in inputs) buffers[name] = EmuBuffer.From(Pack(bits));
            foreach (var (name, data) in floats ?? new Dictionary<string, float[]>()) buffers[name] = EmuBuffer.From(data);
            foreach (var (name, n) in outputs) buffers[name] = EmuBuffer.Alloc((n + 1) / 2);
            var module = CudaEmulator.Compile(source);
            module.Launch(launch.Entry, launch.Grid, launch.Block, launch.SharedBytes,
                launch.Args.Select(a => buffers[a.Name].Ptr).ToArray());
            foreach (var (name, b) in buffers) b.CheckGuards(name);
            return outputs.ToDictionary(o => o.Key,
                o => MemoryMarshal.Cast<float, ushort>(buffers[o.Key].Span)[..(int)o.Value].ToArray());
        }
        finally
        {
            foreach (var b in buffers.Values) b.Dispose();
        }
    }
}
