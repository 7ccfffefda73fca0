using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu;

/// <summary>
/// A <see cref="GemmGrnFold"/> node on the CPU: its two GEMMs as they were before the fold (two
/// <see cref="GemmKernel"/>s, GRN's β zero, the folded bias on the second), with the first GEMM's output in a
/// scratch of this instance. The CPU gains nothing from folding GRN's apply into the weights (it reads the
/// activation from cache either way), so it keeps the plain form. One <see cref="Run"/> at a time per instance.
/// </summary>
public sealed class GemmGrnFoldKernel : CpuKernel
{
    private readonly GemmGrnFold _op;
    private readonly GemmKernel _first, _second;
    private readonly float[] _u, _beta;

    /// <summary>Binds the kernel to a gemm_grn_fold node; throws <see cref="IrException"/> for anything else.</summary>
    public GemmGrnFoldKernel(KernelRequest request)
    {
        var node = request.Node;
        _op = node.Op as GemmGrnFold
            ?? throw new IrException($"{node.Describe()}: the folded GRN kernel runs gemm_grn_fold nodes only");
        var (a, b) = _op.Split(request.InputTypes);
        var (ca, cb) = _op.Split(request.Constants);
        ca[^1] = null;
        TensorType u;
        try
        {
            u = _op.First.Infer(a)[0];
        }
        catch (IrException e)
        {
            throw new IrException($"{node.Describe()}: {e.Message}", e);
        }
        var uName = node.Name + ".grn";
        var n1 = new Node(_op.First, a.Select((_, i) => $"{node.Name}.in{i}").ToArray(), new[] { uName }, new[] { u });
        var n2 = new Node(_op.Second, new[] { uName }.Concat(b.Select((_, i) => $"{node.Name}.in2_{i}")).ToArray(),
            node.Outputs, node.Types);
        _first = new GemmKernel(new KernelRequest(n1, a, ca));
        _second = new GemmKernel(new KernelRequest(n2, [u, .. b], [null, .. cb]));
        _u = new float[u.Shape.Elements];
        _beta = new float[a[^1].Shape.Elements];
        Label = "grn fold: " + _first.Label + " + " + _second.Label;
    }

    /// <inheritdoc/>
    public override string Label { get; }

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        var (a, b) = _op.Split(inputs);
        a[^1] = Buf.Of(_beta);
        var u = Buf.Of(_u);
        _first.Run(a, [u]);
        _second.Run([u, .. b], outputs);
    }
}
