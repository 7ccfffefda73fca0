using ShiftWise.IR.Ops;

namespace ShiftWise.IR.Reference;

/// <summary>
/// The oracle: runs a graph with naive loops, every value held and accumulated in float64, each node's result
/// rounded to its declared element type. Slow and obviously correct on purpose; every optimisation is tested
/// against it.
/// </summary>
public static class ReferenceExecutor
{
    /// <summary>
    /// Runs the graph. <paramref name="weights"/> must hold every parameter and <paramref name="inputs"/> every
    /// input, with the declared shapes. Returns the graph outputs by name (all values when
    /// <paramref name="keepAll"/>).
    /// </summary>
    public static Dictionary<string, Tensor> Run(Graph g, IReadOnlyDictionary<string, Tensor> weights,
        IReadOnlyDictionary<string, Tensor> inputs, bool keepAll = false)
    {
        var env = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        void Bind(ValueDecl d, IReadOnlyDictionary<string, Tensor> from, string kind)
        {
            if (!from.TryGetValue(d.Name, out var t))
            {
                throw new IrException($"graph '{g.Name}': no value given for {kind} '{d.Name}' ({d.Type})");
            }
            if (!t.Shape.Equals(d.Type.Shape))
            {
                throw new IrException($"graph '{g.Name}': {kind} '{d.Name}' has shape {t.Shape}, expected "
                    + $"{d.Type.Shape}");
            }
            env[d.Name] = t.Cast(d.Type.DType);
        }
        foreach (var d in g.Inputs) Bind(d, inputs, "input");
        foreach (var d in g.Params) Bind(d, weights, "param");
        foreach (var n in g.Nodes)
        {
            Tensor[] outs;
            try
            {
                outs = Evaluate(n.Op, n.Inputs.Select(i => env[i]).ToArray());
            }
            catch (IrException e)
            {
                throw new IrException($"{n.Describe()}: {e.Message}", e);
            }
            for (int k = 0; k < outs.Length; k++) env[n.Outputs[k]] = outs[k];
        }
        return keepAll ? env : g.Outputs.ToDictionary(o => o, o => env[o], StringComparer.Ordinal);
    }

    /// <summary>Applies one op to tensors; output types come from the op's inference.</summary>
    public static Tensor[] Evaluate(Op op, IReadOnlyList<Tensor> inputs)
    {
        if (op is Grad grad) return EvaluateGrad(grad, inputs);
        var types = op.Infer(inputs.Select(t => t.Type).ToArray());
        var xs = inputs.Select(t => new Arr(t.Shape, t.ToDoubles())).ToArray();
        double[][] outs = op switch
        {
            Conv2d c => [ConvKernels.Conv2d(c, xs)],
            ShiftAdd s => ConvKernels.ShiftAdd(s, xs[0]),
            BatchNorm b => NormKernels.BatchNorm(b, xs),
            LayerNorm l => [NormKernels.LayerNorm(l, xs)],
            Grn r => [NormKernels.Grn(r, xs)],
            Linear => [ElementKernels.Linear(xs)],
            Unary u => [ElementKernels.Unary(u.Kind, xs[0])],
            Binary b => [ElementKernels.Binary(b.Kind, xs[0], xs[1], types[0].Shape)],
            Mean m => [ReduceKernels.Mean(m, xs[0])],
            Softmax s => [ReduceKernels.Softmax(s, xs[0])],
            CrossEntropy c => [ReduceKernels.CrossEntropy(c, xs[0], xs[1])],
            DropPath d => [ElementKernels.DropPath(d, xs[0], xs.Length > 1 ? ElementBackward.Step(xs[1]) : 0)],
            ChannelSelect c => [LayoutKernels.ChannelSelect(c, xs[0])],
            Concat c => [LayoutKernels.Concat(c, xs, types[0].Shape)],
            Permute p => [LayoutKernels.Permute(p, xs[0])],
            Reshape => [xs[0].Data],
            Cast => [xs[0].Data],
            ScaleBias sb => [FusedKernels.ScaleBias(sb, xs)],
            SwCross c => [FusedKernels.SwCross(c.Shift, c.Subs, xs[0], xs[1], xs[2], xs[3].Data)],
            FusedShiftWise f => [FusedKernels.FusedShiftWise(f, xs)],
            Gemm g => [FusedKernels.Gemm(g, xs)],
            GemmGrnFold f => [FusedKernels.GemmGrnFold(f, xs)],
            _ => throw new IrException($"the reference executor has no rule for op '{op.Name}'"),
        };
        return types.Select((t, i) => Tensor.FromDoubles(t, outs[i])).ToArray();
    }

    /// <summary>A grad node: the forward op's backward rule; an input gradient the rule leaves out is zero.</summary>
    private static Tensor[] EvaluateGrad(Grad g, IReadOnlyList<Tensor> inputs)
    {
        var types = g.Infer(inputs.Select(t => t.Type).ToArray());
        int m = g.ForwardOutputs, n = g.ForwardInputs(inputs.Count);
        var gys = new Tensor?[m];
        for (int j = 0; j < g.OutGrads.Count; j++) gys[g.OutGrads[j]] = inputs[n + m + j];
        if (g.OutGrads.Count == 0) gys[0] = Tensor.FromDoubles(inputs[n].Type, [1.0]);
        var gx = Backward.Vjp(g.Of, inputs.Take(n).ToArray(), inputs.Skip(n).Take(m).ToArray(), gys);
        return g.Wrt.Select((i, k) => gx[i] is { } t ? t.Cast(types[k].DType) : Tensor.Zeros(types[k])).ToArray();
    }
}

/// <summary>A float64 array with its shape, the reference executor's working form.</summary>
internal readonly record struct Arr(Shape Shape, double[] Data)
{
    public int this[int axis] => Shape[axis];
}
