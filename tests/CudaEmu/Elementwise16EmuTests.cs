using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// The element-wise kernels (pointwise.cu.sbn, binary.cu.sbn) in bf16 and fp16 (issue 22): a one-node graph whose
/// values are declared 16-bit lowers to the same kernels with 16-bit loads and stores and float32 arithmetic. Inputs
/// are random 16-bit values; the output is checked against the float64 reference of the same graph in float32 on those
/// values (exact inputs), so the only error is the store's one rounding plus float32 arithmetic: relative L2 at most
/// the unit roundoff, 2⁻⁸ for bf16 (8 significand bits) and 2⁻¹¹ for fp16 (11 bits), plus 1e-6. Where float32
/// arithmetic is exactly reproducible on the host (add, mul, relu, scale_bias's fma), the kernel's bits must equal the
/// host's float32 result rounded by <see cref="Float16Bits"/>. Each kernel also compiles with NVRTC for compute_80/90
/// and to CUBIN for sm_80/90.
/// </summary>
public sealed class Elementwise16EmuTests
{
    private static TensorType T(DType t, params int[] d) => TensorType.Of(t, d);

    public static TheoryData<string, string> Cases()
    {
        var d = new TheoryData<string, string>();
        foreach (var t in new[] { "bf16", "fp16" })
        {
            foreach (var c in new[] { "gelu", "relu", "sigmoid", "scale_bias", "add_residual", "add_bias", "mul_se",
                "mul_layer_scale", "add_batch1_odd" })
            {
                d.Add(t, c);
            }
        }
        return d;
    }

    private static (Op Op, int[][] Shapes) Case(string c) => c switch
    {
        "gelu" => (new Unary(UnaryKind.Gelu), [[2, 7, 7, 24]]),
        "relu" => (new Unary(UnaryKind.Relu), [[2, 12, 1, 1]]),
        "sigmoid" => (new Unary(UnaryKind.Sigmoid), [[3, 48, 1, 1]]),
        "scale_bias" => (new ScaleBias(1), [[2, 5, 7, 9], [5], [5]]),
        "add_residual" => (new Binary(BinaryKind.Add), [[2, 24, 7, 7], [2, 24, 7, 7]]),
        "add_bias" => (new Binary(BinaryKind.Add), [[3, 5, 11, 13], [5, 1, 1]]),
        "mul_se" => (new Binary(BinaryKind.Mul), [[2, 48, 4, 4], [2, 48, 1, 1]]),
        "mul_layer_scale" => (new Binary(BinaryKind.Mul), [[2, 24, 7, 7], [1, 24, 1, 1]]),
        "add_batch1_odd" => (new Binary(BinaryKind.Add), [[1, 3, 17, 1], [1, 1, 1, 19]]),
        _ => throw new ArgumentException(c),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void TheSixteenBitKernelMatchesTheReferenceWithinOneRounding(string type, string c)
    {
        TestKernels.RequireEmulator();
        var dt = type == "bf16" ? DType.BF16 : DType.F16;
        var (op, shapes) = Case(c);
        var g16 = OpCatalog.OneNode("e16_" + c, op, shapes.Select(s => T(dt, s)).ToArray());
        var g32 = OpCatalog.OneNode("e32_" + c, op, shapes.Select(s => T(DType.F32, s)).ToArray());
        var plan = CudaCodegen.Lower(g16);
        var launch = Assert.Single(plan.Steps.OfType<KernelLaunch>());
        var source = plan.Kernel(launch.Kernel);
        Assert.Contains("swc_round_" + type, source.Source, StringComparison.Ordinal);

        // random inputs, rounded to the 16-bit type: the kernel reads them exactly as the reference does
        var rng = new Random(c.GetHashCode(StringComparison.Ordinal) ^ (int)dt);
        var inputs16 = new Dictionary<string, ushort[]>();
        var inputs32 = new Dictionary<string, Tensor>();
        foreach (var (decl, i) in g16.Inputs.Select((d, i) => (d, i)))
        {
            var bits = Enumerable.Range(0, (int)decl.Type.Shape.Elements)
                .Select(_ => Float16Bits.Round((float)(rng.NextDouble() * 6 - 3), dt)).ToArray();
            inputs16[decl.Name] = bits;
            inputs32[decl.Name] = Tensor.Wrap(T(DType.F32, decl.Type.Shape.ToArray()),
                bits.Select(b => Float16Bits.Widen(b, dt)).ToArray());
        }
        string output = g16.Outputs[0];
        int n = (int)g16.ValueTypes()[output].Shape.Elements;
        var buffers = new Dictionary<string, EmuBuffer>();
        try
        {
            foreach (var (name, bits) in inputs16) buffers[name] = EmuBuffer.From(Emu16.Pack(bits));
            buffers[output] = Emu16.Alloc(n);
            var module = CudaEmulator.Compile(source);
            Emu16.Launch(module, launch, buffers);
            foreach (var (name, b) in buffers) b.CheckGuards(name);
            var got = Emu16.Unpack(buffers[output], n);
            var gotF = got.Select(b => (double)Float16Bits.Widen(b, dt)).ToArray();
            var want = ReferenceExecutor.Run(g32, new Dictionary<string, Tensor>(), inputs32)[g32.Outputs[0]]
                .ToDoubles();
            double bound = (dt == DType.BF16 ? Math.Pow(2, -8) : Math.Pow(2, -11)) + 1e-6;
            double err = Error.RelL2(gotF, want);
            Assert.True(err <= bound, $"{type} {c}: relative L2 {err:E2} > {bound:E2}");
            // relu of a 16-bit value is a 16-bit value; every other case has results that the store must round
            Assert.True(err > 0 || op is Unary { Kind: UnaryKind.Relu }, "no rounding: the kernel is not 16-bit");
            if (Exact(op) is { } f)
            {
                var x = g16.Inputs.Select(d => (float[])inputs32[d.Name].Data).ToArray();
                var wantBits = Broadcast(f, g32, x, dt);
                for (int i = 0; i < n; i++)
                {
                    Assert.True(got[i] == wantBits[i],
                        $"{type} {c}[{i}]: kernel 0x{got[i]:X4}, host 0x{wantBits[i]:X4}");
                }
            }
        }
        finally
        {
            foreach (var b in buffers.Values) b.Dispose();
        }
        foreach (var arch in new[] { "compute_80", "compute_90", "sm_80", "sm_90" })
        {
            var compiled = CudaKernelCompiler.Compile(source, arch);
            if (!compiled.Output.IsCubin) Assert.False(CudaKernelCompiler.UsesLocalMemory(compiled.Output.Ptx));
        }
    }

    // the ops whose float32 result the host reproduces exactly: (inputs at one output element) -> value
    private static Func<float[], float>? Exact(Op op) => op switch
    {
        Unary { Kind: UnaryKind.Relu } => v => MathF.Max(v[0], 0f),
        Binary { Kind: BinaryKind.Add } => v => v[0] + v[1],
        Binary { Kind: BinaryKind.Mul } => v => v[0] * v[1],
        ScaleBias => v => MathF.FusedMultiplyAdd(v[0], v[1], v[2]),
        _ => null,
    };

    // f at every output element, its inputs broadcast (numpy rules) or, for scale_bias, by channel (axis 1)
    private static ushort[] Broadcast(Func<float[], float> f, Graph g, float[][] x, DType dt)
    {
        var types = g.ValueTypes();
        var o = types[g.Outputs[0]].Shape.ToArray();
        var ins = g.Inputs.Select(d => d.Type.Shape.ToArray()).ToArray();
        bool scaleBias = g.Nodes[0].Op is ScaleBias;
        var result = new ushort[o.Aggregate(1, (a, b) => a * b)];
        var idx = new int[o.Length];
        for (int e = 0; e < result.Length; e++)
        {
            int rest = e;
            for (int d = o.Length - 1; d >= 0; d--)
            {
                idx[d] = rest % o[d];
                rest /= o[d];
            }
            var v = new float[ins.Length];
            for (int k = 0; k < ins.Length; k++)
            {
                if (scaleBias && k > 0)
                {
                    v[k] = x[k][idx[1]];
                    continue;
                }
                int off = 0, lead = o.Length - ins[k].Length;
                for (int d = 0; d < ins[k].Length; d++)
                {
                    off = off * ins[k][d] + (ins[k][d] == 1 ? 0 : idx[lead + d]);
                }
                v[k] = x[k][off];
            }
            result[e] = Float16Bits.Round(f(v), dt);
        }
        return result;
    }
}
