using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes.Lowering;
using ShiftWise.Runtime;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Cpu;
using ShiftWise.Runtime.Cpu.Kernels;

namespace ShiftWise.Bench;

/// <summary>A node of the problem's fused graph run by one of our CPU kernels.</summary>
internal abstract class FusedNodeCandidate : ISwLayerCandidate
{
    private CpuKernel _k = null!;
    private Buf[] _in = [];
    private float[] _y = [];

    public abstract string Name { get; }

    public abstract string Notes { get; }

    public float[] Output => _y;

    protected abstract CpuKernel Create(KernelRequest r);

    public void Prepare(SwLayerProblem problem)
    {
        var g = problem.Fused.Graph;
        var n = g.Nodes.Single();
        var types = g.ValueTypes();
        var req = new KernelRequest(n, n.Inputs.Select(i => types[i]).ToArray(),
            n.Inputs.Select(i => problem.Fused.Weights.GetValueOrDefault(i)).ToArray());
        _k = Create(req);
        // parameters are inputs too, bound once as the executor does
        _in = [Buf.Of((float[])problem.Input.Clone()), .. req.Constants.Skip(1)
            .Select(c => Buf.Of(c!.ToDoubles().Select(v => (float)v).ToArray()))];
        _y = new float[problem.OutputLength];
    }

    public void Run() => _k.Run(_in, [Buf.Of(_y)]);

    public void Dispose()
    {
    }
}

/// <summary>
/// The generated, specialised cross kernel (Scriban → Roslyn), default tiles, for the ISA in force or a forced one.
/// </summary>
internal sealed class CompiledCrossCandidate(IReadOnlyDictionary<string, int>? tunables = null, string? label = null,
    CpuIsaKind? isa = null) : FusedNodeCandidate
{
    public override string Name => label ?? "swc cross";

    public override string Notes => $"generated C#, NCHW, {IsaName(isa ?? CpuIsa.Current)} FMA register tiles, "
        + "Parallel over planes and row chunks";

    /// <summary>Short name of an ISA for labels.</summary>
    public static string IsaName(CpuIsaKind k) => k == CpuIsaKind.Avx512 ? "Vector512" : "Vector256";

    protected override CpuKernel Create(KernelRequest r)
    {
        using var _ = isa is { } k ? CpuIsa.Force(k) : null;
        return new SwLayerKernel(r, SwLayerSpec.Of(r.Node, r.InputTypes[0].Shape), tunables);
    }
}

/// <summary>The factorised form, generated: kept k×k sub-kernels, then shifted accumulation, tables baked in.</summary>
internal sealed class FactorisedCandidate : FusedNodeCandidate
{
    public override string Name => "swc factorised";

    public override string Notes => "generated C#: per plane, each kept sub-kernel's conv added at its 2·N_rep shifts";

    protected override CpuKernel Create(KernelRequest r) =>
        new SwLayerKernel(r, SwLayerSpec.Of(r.Node, r.InputTypes[0].Shape),
            new Dictionary<string, int> { ["lowering"] = 1, ["row_block"] = 1, ["col_vectors"] = 1 });
}

/// <summary>The generic managed fused kernel (what the unoptimised executor falls back to).</summary>
internal sealed class ManagedFusedCandidate : FusedNodeCandidate
{
    public override string Name => "swc managed fused";

    public override string Notes => "managed, not specialised: small conv of kept sub-kernels, then gather";

    protected override CpuKernel Create(KernelRequest r) => KernelTable.Create(r);
}

/// <summary>Our unoptimised graph of the layer (convs, shift_add, BNs, adds) on the CPU executor.</summary>
internal sealed class UnoptimisedGraphCandidate : ISwLayerCandidate
{
    private CompiledModel _m = null!;
    private Tensor _x = null!;
    private float[] _y = [];

    public string Name => "swc unoptimised graph";

    public string Notes => "pipeline none, managed kernel per op";

    public float[] Output => _y;

    public void Prepare(SwLayerProblem problem)
    {
        var loaded = new ShiftWise.Frontend.LoadedModel(problem.Layer.Graph, problem.Weights, "sw layer");
        _m = Driver.Compile(loaded, new CpuTarget(Generated: false), new CompileOptions { Pipeline = "none" });
        _x = Tensor.Wrap(problem.Layer.Graph.Inputs[0].Type, (float[])problem.Input.Clone());
        Run();
    }

    public void Run() => _y = (float[])_m.Run(_x).Data;

    public void Dispose()
    {
    }
}
