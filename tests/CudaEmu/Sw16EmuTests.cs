using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// The SW layer's kernels in bf16 and fp16 (issue 22): the training graph's unfused shift_add (forward and input
/// gradient) on real SW tables, and the fused inference SW layer (factorised lowering), on sw-fmnist's stages and
/// sw-tiny's with planes shrunk. A one-node graph whose values are
/// declared 16-bit lowers to a kernel with 16-bit loads and stores and float32 sums, run in the emulator on random
/// 16-bit inputs and compared with the float64 reference of the same graph in float32 on those exact values. Every
/// output is one float32 expression of exact inputs (the fused layer's parameters rounded to 16 bits first, the
/// reference reading them widened), rounded once at the store: relative L2 at most the unit roundoff u (2⁻⁸ bf16, 2⁻¹¹
/// fp16) plus 1e-5 for the float32 sums (as SwCudaEmuTests' float32 bound); the cross lowering's 16-bit bands add a
/// second u. Each kernel also compiles with
/// NVRTC for compute_80/90 and to CUBIN for sm_80/90, without local memory.
/// </summary>
public sealed class Sw16EmuTests
{
    private const double Slack = 1e-5;

    private static DType Type(string t) => t == "bf16" ? DType.BF16 : DType.F16;

    private static double Unit(DType t) => t == DType.BF16 ? Math.Pow(2, -8) : Math.Pow(2, -11);

    // real tables: sw-fmnist's stages 0 and 1 at their planes (batch 2), sw-tiny's stages 1 to 3 with planes shrunk
    private static ShiftAdd Layer(string c) => c switch
    {
        "fmnist0" => TrainForwardEmuTests.Sw(24, 7, 3, 4),
        "fmnist1" => TrainForwardEmuTests.Sw(48, 5, 3, 4),
        "tiny1" => TrainForwardEmuTests.Sw(160, 49, 3, 4),
        "tiny2" => TrainForwardEmuTests.Sw(320, 47, 3, 4),
        "tiny3" => TrainForwardEmuTests.Sw(640, 13, 3, 4),
        _ => throw new ArgumentException(c),
    };

    private static (int Batch, int H, int W) Plane(string c) => c switch
    {
        "fmnist0" => (2, 7, 7),
        "fmnist1" => (2, 3, 3),
        "tiny1" => (1, 6, 5),
        "tiny2" => (1, 5, 4),
        _ => (1, 7, 7),
    };

    public static TheoryData<string, string> Cases() =>
        Emu16.ByType(["fmnist0", "fmnist1", "tiny1", "tiny2", "tiny3"]);

    [Theory]
    [MemberData(nameof(Cases))]
    public void ShiftAddForwardIsOneRoundingFromTheReference(string type, string c)
    {
        TestKernels.RequireEmulator();
        var dt = Type(type);
        var (b, h, w) = Plane(c);
        var g16 = TrainForwardEmuTests.ShiftAddGraph("sa16_" + c, Layer(c), b, h, w, dt);
        var g32 = TrainForwardEmuTests.ShiftAddGraph("sa32_" + c, Layer(c), b, h, w);
        double err = Check(g16, g32, dt, null, "shift_add_", c);
        Assert.True(err <= Unit(dt) + Slack, $"{type} shift_add {c}: relative L2 {err:E2}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ShiftAddInputGradientIsOneRoundingFromTheReference(string type, string c)
    {
        TestKernels.RequireEmulator();
        var dt = Type(type);
        var (b, h, w) = Plane(c);
        // all three paths on the tiny stages; h and identity (listed identity first) and v alone on sw-fmnist's
        int[] dy = c switch { "fmnist0" => [2, 0], "fmnist1" => [1], _ => [0, 1, 2] };
        var (g16, o) = GradCudaEmuTests.ShiftAddGrad("sa16_" + c, Layer(c), b, h, w, dy, 128, dt);
        var (g32, _) = GradCudaEmuTests.ShiftAddGrad("sa32_" + c, Layer(c), b, h, w, dy, 128);
        double err = Check(g16, g32, dt, o, "grad_shift_add_", c);
        Assert.True(err <= Unit(dt) + Slack, $"{type} grad_shift_add {c}: relative L2 {err:E2}");
    }

    // fused SW layers (ghost ratio 0.23, 30% of the sub-kernels pruned): sw-fmnist's stages 0 and 1 at their planes,
    // sw-tiny's stages 0 and 2 with planes shrunk and its stage 3's kernel (big 13) on 160 channels: (channels, h, w,
    // big, batch). (sw-tiny's stages 1 to 3 do not build to CUBIN in the factorised lowering, float32 or 16-bit alike:
    // its int tables pass the 64 KiB constant bank; sw-tiny runs the cross lowering, stage 2 is tested in that one.)
    private static (int C, int H, int W, int Big, int Batch) Fused(string c) => c switch
    {
        "fmnist0" => (24, 14, 14, 7, 2),
        "fmnist1" => (48, 7, 7, 5, 2),
        "tiny0" => (80, 9, 11, 51, 1),
        "tiny3_c160" => (160, 7, 7, 13, 1),
        "tiny2" => (320, 5, 6, 47, 1),
        "tiny0_even" => (40, 6, 10, 51, 1),
        _ => throw new ArgumentException(c),
    };

    public static TheoryData<string, string, int> FusedCases()
    {
        var d = new TheoryData<string, string, int>();
        foreach (var t in new[] { "bf16", "fp16" })
        {
            foreach (var c in new[] { "fmnist0", "fmnist1", "tiny0", "tiny3_c160" })
            {
                d.Add(t, c, 0);
                d.Add(t, c, 1);
            }
            d.Add(t, "tiny2", 0);
            d.Add(t, "tiny0_even", 1);
        }
        return d;
    }

    /// <summary>
    /// The fused SW layer, cross (0) and factorised (1) lowerings: x, y, the sub-kernels, scales and biases 16-bit (the
    /// input windows and ghost copies move in pairs on even widths: fmnist0, tiny2, tiny0_even); the cross's bands
    /// derived from the widened parameters at bind time and rounded once to 16 bits (a second rounding: each weight off
    /// by at most u relative, so the cross's bound is 2u + 1e-5, as SwCrossRb16EmuTests); the sub-kernel maps and sums
    /// float32 (shared tiles of widened values), one rounding at each store (rep and ghost channels alike).
    /// </summary>
    [Theory]
    [MemberData(nameof(FusedCases))]
    public void FusedSwLayerIsOneRoundingFromTheReference(string type, string c, int lowering)
    {
        TestKernels.RequireEmulator();
        var dt = Type(type);
        var (ch, h, w, big, batch) = Fused(c);
        var (g32, w32) = SwLayers.Layer(ch, h, w, big, 3, 4, batch, ch + big);
        var g16 = Retype(g32, dt);
        var o = OneNodeEmu.Tunables(g16, new() { ["lowering"] = lowering });
        // the weights rounded to 16 bits; the reference reads them widened
        var p16 = w32.ToDictionary(kv => kv.Key, kv => kv.Value.ToDoubles().Select(v => Float16Bits.Round((float)v, dt))
            .ToArray());
        var p32 = p16.ToDictionary(kv => kv.Key, kv => Tensor.Wrap(w32[kv.Key].Type,
            kv.Value.Select(x => Float16Bits.Widen(x, dt)).ToArray()));
        double err = Check(g16, g32, dt, o, lowering == 0 ? "sw_cross_" : "sw_fact_", c, p16, p32,
            w % 2 == 0 ? "swc_ld2(plane" : null);
        double bound = (lowering == 0 ? 2 : 1) * Unit(dt) + Slack;
        Assert.True(err <= bound, $"{type} fused SW {c} lowering {lowering}: relative L2 {err:E2}");
    }

    // the graph with every value and parameter of type t
    private static Graph Retype(Graph g, DType t) => g with
    {
        Inputs = Vec.Of(g.Inputs.Select(d => d with { Type = new TensorType(t, d.Type.Shape) }).ToArray()),
        Params = Vec.Of(g.Params.Select(d => d with { Type = new TensorType(t, d.Type.Shape) }).ToArray()),
        Nodes = Vec.Of(g.Nodes.Select(n => n with
        {
            Types = Vec.Of(n.Types.Select(x => new TensorType(t, x.Shape)).ToArray()),
        }).ToArray()),
    };

    /// <summary>
    /// Lowers <paramref name="g16"/> (one kernel, named <paramref name="prefix"/>…_bf16 / _fp16, with 16-bit stores),
    /// runs it on random 16-bit inputs and returns the worst relative L2 error of its outputs against the reference of
    /// <paramref name="g32"/> on the widened inputs; compiles it for compute_80/90 and sm_80/90.
    /// </summary>
    private static double Check(Graph g16, Graph g32, DType dt, CudaOptions? o, string prefix, string c,
        Dictionary<string, ushort[]>? p16 = null, Dictionary<string, Tensor>? p32 = null, string? mustUse = null)
    {
        var plan = CudaCodegen.Lower(g16, o);
        var launch = Assert.Single(plan.Steps.OfType<KernelLaunch>());
        var source = plan.Kernel(launch.Kernel);
        // paired 16-bit loads on even widths, both lowerings (the emulator's buffers are aligned, so the paired path
        // is the one that runs)
        if (mustUse is not null) Assert.Contains(mustUse, source.Source, StringComparison.Ordinal);
        string t = Types16.Name(dt);
        Assert.StartsWith(prefix, source.Name, StringComparison.Ordinal);
        Assert.Contains("_" + t + "_", source.Name, StringComparison.Ordinal);
        Assert.Contains("swc_round_" + t, source.Source, StringComparison.Ordinal);
        // nothing is read as float32 (the cross's bands are 16-bit too)
        Assert.DoesNotMatch(@"const float\* __restrict__", source.Source);

        var rng = new Random(c.GetHashCode(StringComparison.Ordinal) ^ prefix.Length ^ (int)dt);
        var in16 = new Dictionary<string, ushort[]>(p16 ?? []);
        var in32 = new Dictionary<string, Tensor>();
        foreach (var (d16, d32) in g16.Inputs.Zip(g32.Inputs))
        {
            var bits = Emu16.Random(rng, d16.Type.Shape.Elements, dt);
            in16[d16.Name] = bits;
            in32[d32.Name] = Tensor.Wrap(d32.Type, bits.Select(x => Float16Bits.Widen(x, dt)).ToArray());
        }
        var types = g16.ValueTypes();
        var derived = p32 is null ? null : Derived.ComputeAll(plan, g16, p32);
        var got = Emu16.Run(source, launch, in16, g16.Outputs.ToDictionary(n => n, n => types[n].Shape.Elements),
            derived);
        var want = ReferenceExecutor.Run(g32, p32 ?? [], in32);
        double worst = 0;
        foreach (var (n16, n32) in g16.Outputs.Zip(g32.Outputs))
        {
            var gotF = got[n16].Select(x => (double)Float16Bits.Widen(x, dt)).ToArray();
            double err = Error.RelL2(gotF, want[n32].ToDoubles());
            Assert.True(err > 0, $"{n16}: no rounding, the kernel is not 16-bit");
            worst = Math.Max(worst, double.IsNaN(err) ? double.PositiveInfinity : err);
            TestContext.Current.TestOutputHelper?.WriteLine($"{Types16.Name(dt)} {source.Name} {n16}: relative L2 {err:E2}");
        }
        foreach (var arch in new[] { "compute_80", "compute_90", "sm_80", "sm_90" })
        {
            var compiled = CudaKernelCompiler.Compile(source, arch);
            if (!compiled.Output.IsCubin) Assert.False(CudaKernelCompiler.UsesLocalMemory(compiled.Output.Ptx));
        }
        return worst;
    }
}
