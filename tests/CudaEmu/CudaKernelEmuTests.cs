using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CudaEmu;

/// <summary>
/// The kernels of every lowering but fused_shiftwise, run in emulation, against the float64 reference executor:
/// every case of <see cref="KernelCases"/>, then seeded random convolutions and GEMMs. fp32 against float64 must
/// agree to a relative L2 error of 1e-5.
/// </summary>
public sealed class CudaKernelEmuTests
{
    private const double Tolerance = 1e-5;

    public static TheoryData<string> Cases() => KernelCases.Labels();

    private static Tensor Random(TensorType t, Random rng)
    {
        var v = new double[t.Shape.Elements];
        for (int i = 0; i < v.Length; i++) v[i] = rng.NextDouble() * 2 - 1;
        return Tensor.FromDoubles(t, v);
    }

    private static double Error(KernelCase c, int seed)
    {
        var rng = new Random(seed);
        var inputs = c.Graph.Inputs.ToDictionary(d => d.Name, d => Random(d.Type, rng));
        var weights = c.Graph.Params.ToDictionary(d => d.Name, d => Random(d.Type, rng));
        return EmuCheck.ErrorVsReference(c.Graph, weights, inputs, c.Options);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void EveryCaseMatchesTheReference(string label)
    {
        TestKernels.RequireEmulator();
        double err = Error(KernelCases.All[label], label.Length * 7919 + label[^1]);
        Assert.True(err <= Tolerance, $"{label}: relative L2 error {err:e3} vs the reference");
    }

    public static TheoryData<int> Seeds() => new(Enumerable.Range(1, 6));

    [Theory]
    [MemberData(nameof(Seeds))]
    public void RandomConvolutionsMatchTheReference(int seed)
    {
        TestKernels.RequireEmulator();
        var r = new Random(seed);
        int groups = r.Next(3) switch { 0 => 1, 1 => 2, _ => 3 };
        bool depthwise = r.Next(2) == 0;
        int cin = depthwise ? groups : groups * r.Next(1, 4);
        int cout = groups * (depthwise ? r.Next(1, 3) : r.Next(1, 5));
        int kh = r.Next(1, 6), kw = r.Next(1, 6);
        var op = new Conv2d(Vec.Of(r.Next(1, 3), r.Next(1, 4)), Vec.Of(r.Next(0, 3), r.Next(0, 3)),
            Vec.Of(r.Next(1, 3), r.Next(1, 3)), groups);
        int h = op.Dilation[0] * (kh - 1) + r.Next(1, 9), w = op.Dilation[1] * (kw - 1) + r.Next(1, 9);
        var f = (int[] d) => TensorType.Of(DType.F32, d);
        var types = new List<TensorType> { f([r.Next(1, 3), cin, h, w]), f([cout, cin / groups, kh, kw]) };
        if (r.Next(2) == 0) types.Add(f([cout]));
        var c = new KernelCase($"conv_{seed}", KernelCases.One($"conv_{seed}", op, types.ToArray(), 0),
            new Dictionary<string, int> { ["block"] = 32 << r.Next(4), ["channels"] = cout / groups % 2 == 0 ? 2 : 1 });
        double err = Error(c, seed);
        Assert.True(err <= Tolerance, $"{op} on {types[0]} with {types[1]}: relative L2 error {err:e3}");
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void RandomGemmsMatchTheReference(int seed)
    {
        TestKernels.RequireEmulator();
        var r = new Random(100 + seed);
        var op = new Gemm(r.Next(2) == 0, r.Next(2) == 0, (GemmAct)r.Next(4), r.Next(2) == 0, r.Next(2) == 0, 1e-6,
            r.Next(2) == 0);
        var types = KernelCases.GemmInputs(op, r.Next(1, 3), r.Next(1, 8), r.Next(1, 8), r.Next(1, 20), r.Next(1, 40));
        var c = new KernelCase($"gemm_{seed}", KernelCases.One($"gemm_{seed}", op, types, KernelCases.GemmActivations(op)),
            new Dictionary<string, int> { ["block"] = 32 << r.Next(4) });
        double err = Error(c, seed);
        Assert.True(err <= Tolerance, $"{op} on {types[0]} with {types[1]}: relative L2 error {err:e3}");
    }
}
