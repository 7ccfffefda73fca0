using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>
/// The CPU kernels of grad nodes (the backward graph the autodiff pass builds): one float32 kernel per forward op
/// kind, each checked against the float64 backward rule; an op without one runs <see cref="ReferenceGradKernel"/>.
/// </summary>
public static class GradKernels
{
    /// <summary>A kernel for the request's grad node.</summary>
    public static CpuKernel Create(KernelRequest r)
    {
        if (r.Node.Op is not Grad g) throw KernelCheck.Fail(r, $"a grad kernel cannot run op '{r.Node.Op.Name}'");
        return g.Of switch
        {
            Conv2d or ShiftAdd or Linear => ConvGradKernels.Create(r, g),
            _ => ElementGradKernels.Create(r, g),
        };
    }
}

/// <summary>
/// What every grad kernel needs to find its buffers: the grad node's inputs are the forward inputs, the forward
/// outputs, then the gradients of the outputs in <see cref="Grad.OutGrads"/>; its outputs are the gradients of the
/// inputs in <see cref="Grad.Wrt"/>. Construction re-checks the node's types (f32 except integer inputs).
/// </summary>
public abstract class GradKernel : CpuKernel
{
    private readonly int[] _gyAt;
    private readonly int[] _gxAt;

    /// <summary>Checks the node and records where each buffer is.</summary>
    protected GradKernel(KernelRequest r)
    {
        if (r.Node.Op is not Grad g) throw KernelCheck.Fail(r, $"a grad kernel cannot run op '{r.Node.Op.Name}'");
        Op = g;
        try
        {
            g.Infer(r.InputTypes);
        }
        catch (IrException e)
        {
            throw new IrException($"{r.Node.Describe()}: {e.Message}", e);
        }
        N = g.ForwardInputs(r.InputTypes.Count);
        M = g.ForwardOutputs;
        for (int i = 0; i < r.InputTypes.Count; i++)
        {
            var d = r.InputTypes[i].DType;
            if (d != DType.F32 && !(i < N && d is DType.I64 or DType.I32 && !g.Wrt.Contains(i)))
            {
                throw KernelCheck.Fail(r, $"input {i} is {r.InputTypes[i]}; the CPU target runs f32 only");
            }
        }
        InputTypes = r.InputTypes.Take(N).ToArray();
        OutputTypes = r.InputTypes.Skip(N).Take(M).ToArray();
        _gyAt = Enumerable.Repeat(-1, M).ToArray();
        for (int j = 0; j < g.OutGrads.Count; j++) _gyAt[g.OutGrads[j]] = N + M + j;
        _gxAt = Enumerable.Repeat(-1, N).ToArray();
        for (int k = 0; k < g.Wrt.Count; k++) _gxAt[g.Wrt[k]] = k;
    }

    /// <summary>The grad op.</summary>
    protected Grad Op { get; }

    /// <summary>Forward inputs.</summary>
    protected int N { get; }

    /// <summary>Forward outputs.</summary>
    protected int M { get; }

    /// <summary>The forward inputs' types.</summary>
    protected IReadOnlyList<TensorType> InputTypes { get; }

    /// <summary>The forward outputs' types.</summary>
    protected IReadOnlyList<TensorType> OutputTypes { get; }

    /// <summary>Whether the loss is this node's output 0 (dy=[]: its gradient is one).</summary>
    protected bool Seeds => Op.OutGrads.Count == 0;

    /// <summary>Whether the gradient of forward input <paramref name="i"/> is wanted.</summary>
    protected bool Wants(int i) => _gxAt[i] >= 0;

    /// <summary>Forward input <paramref name="i"/>.</summary>
    protected static Buf X(Buf[] inputs, int i) => inputs[i];

    /// <summary>Forward output <paramref name="j"/>.</summary>
    protected Buf Y(Buf[] inputs, int j) => inputs[N + j];

    /// <summary>The gradient of forward output <paramref name="j"/>, or null when it does not reach the loss.</summary>
    protected Buf? Gy(Buf[] inputs, int j) => _gyAt[j] >= 0 ? inputs[_gyAt[j]] : null;

    /// <summary>Where the gradient of forward input <paramref name="i"/> goes, or null when it is not wanted.</summary>
    protected Buf? Gx(Buf[] outputs, int i) => _gxAt[i] >= 0 ? outputs[_gxAt[i]] : null;
}

/// <summary>
/// Any grad node through the float64 backward rule (<see cref="Backward"/>): exact, single-threaded and slow — the
/// fallback for ops whose backward has no float32 kernel, so that every graph the autodiff pass builds runs.
/// </summary>
public sealed class ReferenceGradKernel : GradKernel
{
    private readonly TensorType[] _types;

    /// <summary>Binds the kernel to a node.</summary>
    public ReferenceGradKernel(KernelRequest r) : base(r) => _types = r.InputTypes.ToArray();

    /// <inheritdoc/>
    public override string Label => $"{nameof(ReferenceGradKernel)}[{Op.Of.Name}]";

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        var ts = new Tensor[inputs.Length];
        for (int i = 0; i < inputs.Length; i++)
        {
            var s = inputs[i].Span;
            var d = new double[s.Length];
            for (int k = 0; k < d.Length; k++) d[k] = s[k];
            ts[i] = Tensor.FromDoubles(_types[i], d);
        }
        var outs = ReferenceExecutor.Evaluate(Op, ts);
        for (int k = 0; k < outs.Length; k++)
        {
            var d = outs[k].ToDoubles();
            var o = outputs[k].Span;
            for (int i = 0; i < d.Length; i++) o[i] = (float)d[i];
        }
    }
}
