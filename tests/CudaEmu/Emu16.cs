using System.Runtime.InteropServices;
using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.Runtime.Cuda;

namespace ShiftWise.CudaEmu;

/// <summary>
/// The 16-bit one-node harness (issue 22; Elementwise16, Conv16, Sw16 and Norm16EmuTests): random inputs rounded
/// to bf16 or fp16 (the kernel reads them exactly as the float32 reference does), the plan's kernel launches run in the
/// emulator on buffers of packed 16-bit values, and each kernel compiled with NVRTC for compute_80/90 and to CUBIN for
/// sm_80/90.
/// </summary>
internal static class Emu16
{
    /// <summary>Every case label in bf16, then in fp16: the theory data of the 16-bit tests.</summary>
    public static TheoryData<string, string> ByType(IEnumerable<string> labels)
    {
        var d = new TheoryData<string, string>();
        var all = labels.ToArray();
        foreach (var t in new[] { "bf16", "fp16" })
        {
            foreach (var label in all) d.Add(t, label);
        }
        return d;
    }

    /// <summary>The unit roundoff of a 16-bit type: 2⁻⁸ for bf16 (8 significand bits), 2⁻¹¹ for fp16 (11).</summary>
    public static double Unit(DType dt) => dt == DType.BF16 ? Math.Pow(2, -8) : Math.Pow(2, -11);

    /// <summary>
    /// Random inputs of <paramref name="g16"/> uniform in ±<paramref name="scale"/> rounded to <paramref name="dt"/>:
    /// their bits, and the same values widened, as float32 tensors of the same shapes.
    /// </summary>
    public static (Dictionary<string, ushort[]> Bits, Dictionary<string, Tensor> Widened) Inputs(Graph g16, DType dt,
        Random rng, double scale = 3)
    {
        var bits16 = new Dictionary<string, ushort[]>();
        var widened = new Dictionary<string, Tensor>();
        foreach (var decl in g16.Inputs)
        {
            var bits = Random(rng, decl.Type.Shape.Elements, dt, scale);
            bits16[decl.Name] = bits;
            widened[decl.Name] = Tensor.Wrap(TensorType.Of(DType.F32, decl.Type.Shape.ToArray()),
                bits.Select(b => Float16Bits.Widen(b, dt)).ToArray());
        }
        return (bits16, widened);
    }

    /// <summary>
    /// <paramref name="n"/> random values uniform in ±<paramref name="scale"/>, rounded to <paramref name="t"/>.
    /// </summary>
    public static ushort[] Random(Random rng, long n, DType t, double scale = 3) =>
        Enumerable.Range(0, checked((int)n))
            .Select(_ => Float16Bits.Round((float)((rng.NextDouble() * 2 - 1) * scale), t)).ToArray();

    /// <summary>
    /// Runs every step of <paramref name="plan"/> (kernel launches only) in the emulator on packed 16-bit buffers of
    /// <paramref name="inputs"/> and float32 buffers of its scratch; checks the buffers' guards and returns the bits of
    /// every graph output.
    /// </summary>
    public static Dictionary<string, ushort[]> Run(CudaPlan plan, Graph g16,
        IReadOnlyDictionary<string, ushort[]> inputs)
    {
        var types = g16.ValueTypes();
        var launches = plan.Steps.Select(step =>
        {
            var launch = Assert.IsType<KernelLaunch>(step);
            return (plan.Kernel(launch.Kernel), launch);
        }).ToArray();
        return Launch(launches, inputs, g16.Outputs.ToDictionary(o => o, o => types[o].Shape.Elements), null,
            plan.Scratch);
    }

    /// <summary>
    /// Runs <paramref name="launch"/> of <paramref name="source"/> with its arguments looked up by name: the
    /// <paramref name="inputs"/> (16-bit patterns), the float32 <paramref name="floats"/> (derived tensors, say) and
    /// fresh <paramref name="outputs"/> (name → element count; NaN filled). Checks every buffer's guards; returns each
    /// output's 16-bit patterns.
    /// </summary>
    public static Dictionary<string, ushort[]> Run(CudaKernelSource source, KernelLaunch launch,
        IReadOnlyDictionary<string, ushort[]> inputs, IReadOnlyDictionary<string, long> outputs,
        IReadOnlyDictionary<string, float[]>? floats = null) =>
        Launch([(source, launch)], inputs, outputs, floats, []);

    private static Dictionary<string, ushort[]> Launch(IReadOnlyList<(CudaKernelSource Source, KernelLaunch Launch)>
        launches, IReadOnlyDictionary<string, ushort[]> inputs, IReadOnlyDictionary<string, long> outputs,
        IReadOnlyDictionary<string, float[]>? floats, IReadOnlyList<ScratchBuffer> scratch)
    {
        TestKernels.RequireEmulator();
        var buffers = new Dictionary<string, EmuBuffer>();
        try
        {
            foreach (var (name, bits) in inputs) buffers[name] = EmuBuffer.From(Pack(bits));
            foreach (var (name, data) in floats ?? new Dictionary<string, float[]>())
            {
                buffers[name] = EmuBuffer.From(data);
            }
            foreach (var (name, n) in outputs) buffers[name] = Alloc(n);
            // float32 scratch (the norms' statistics), NaN-filled like every fresh buffer
            foreach (var s in scratch) buffers[s.Name] = EmuBuffer.Alloc(s.Floats);
            var modules = new Dictionary<string, EmuModule>();
            foreach (var (source, launch) in launches)
            {
                if (!modules.TryGetValue(source.Name, out var module))
                {
                    module = modules[source.Name] = CudaEmulator.Compile(source);
                }
                Launch(module, launch, buffers);
            }
            foreach (var (name, b) in buffers) b.CheckGuards(name);
            return outputs.ToDictionary(o => o.Key, o => Unpack(buffers[o.Key], (int)o.Value));
        }
        finally
        {
            foreach (var b in buffers.Values) b.Dispose();
        }
    }

    /// <summary>
    /// Each kernel of the plan compiles with NVRTC for <paramref name="archs"/> (by default compute_80/90 and CUBIN for
    /// sm_80/90), its PTX without local memory.
    /// </summary>
    public static void Compiles(CudaPlan plan, params string[] archs)
    {
        if (archs.Length == 0) archs = ["compute_80", "compute_90", "sm_80", "sm_90"];
        foreach (var k in plan.Kernels)
        {
            foreach (var arch in archs)
            {
                var compiled = CudaKernelCompiler.Compile(k, arch);
                if (!compiled.Output.IsCubin) Assert.False(CudaKernelCompiler.UsesLocalMemory(compiled.Output.Ptx));
            }
        }
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

    /// <summary>16-bit values packed two to a float, the buffer's element type.</summary>
    public static float[] Pack(ushort[] bits)
    {
        var packed = new float[(bits.Length + 1) / 2];
        MemoryMarshal.Cast<ushort, float>(bits.AsSpan(0, bits.Length & ~1)).CopyTo(packed);
        if (bits.Length % 2 == 1) packed[^1] = BitConverter.UInt32BitsToSingle(bits[^1]);
        return packed;
    }
}
