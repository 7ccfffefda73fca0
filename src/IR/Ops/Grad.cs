namespace ShiftWise.IR.Ops;

/// <summary>
/// The vector-Jacobian product of a forward op, the one op of a backward graph (SPEC: what the autodiff pass emits).
/// Inputs: the forward op's inputs, then all of its outputs, then the gradients of the outputs listed in
/// <see cref="OutGrads"/> (in that order). Outputs: the gradients of the forward inputs listed in <see cref="Wrt"/>,
/// each with its input's type. Its meaning is <see cref="Reference.Backward.Vjp"/>: the outputs not in
/// <see cref="OutGrads"/> count as not reaching the loss. An empty <see cref="OutGrads"/> seeds the backward pass:
/// output 0 is the loss itself (one element) and its gradient is one.
/// </summary>
public sealed record Grad(Op Of, Vec<int> Wrt, Vec<int> OutGrads) : Op
{
    /// <inheritdoc/>
    public override string Name => "grad";

    /// <summary>The number of forward outputs (fixed by the forward op's attributes).</summary>
    public int ForwardOutputs => Of.OutputSuffixes.Count;

    /// <summary>The number of forward inputs, given the grad node's input count.</summary>
    public int ForwardInputs(int gradInputs) => gradInputs - ForwardOutputs - OutGrads.Count;

    /// <inheritdoc/>
    public override IReadOnlyList<string> OutputSuffixes => Wrt.Select(i => $".d{i}").ToArray();

    /// <inheritdoc/>
    public override TensorType[] Infer(IReadOnlyList<TensorType> inputs)
    {
        Check(Of is not Grad, "a grad of a grad is not supported");
        Check(Wrt.Count >= 1, "wrt must name at least one input");
        int m = ForwardOutputs, n = ForwardInputs(inputs.Count);
        Check(n >= 1,
            $"expects the forward inputs, {m} forward outputs and {OutGrads.Count} output gradients, got "
            + $"{inputs.Count} inputs");
        Check(Wrt.Distinct().Count() == Wrt.Count && Wrt.All(i => i >= 0 && i < n),
            $"wrt {Wrt} must be distinct input indices below {n}");
        Check(OutGrads.Distinct().Count() == OutGrads.Count && OutGrads.All(i => i >= 0 && i < m),
            $"dy {OutGrads} must be distinct output indices below {m}");
        TensorType[] fwd;
        try
        {
            fwd = Of.Infer(inputs.Take(n).ToArray());
        }
        catch (IrException e)
        {
            throw new IrException($"forward {Of.Name}: {e.Message}", e);
        }
        for (int j = 0; j < m; j++)
        {
            Check(inputs[n + j].Equals(fwd[j]), $"forward output {j} must be {fwd[j]}, got {inputs[n + j]}");
        }
        Check(OutGrads.Count > 0 || fwd[0].Shape.Elements == 1,
            $"dy=[] seeds the backward pass from output 0, which must hold one value, got {fwd[0]}");
        for (int j = 0; j < OutGrads.Count; j++)
        {
            var want = fwd[OutGrads[j]];
            Check(inputs[n + m + j].Equals(want),
                $"the gradient of output {OutGrads[j]} must be {want}, got {inputs[n + m + j]}");
        }
        foreach (var i in Wrt)
        {
            Check(inputs[i].DType.IsFloat(), $"input {i} ({inputs[i]}) is not floating point: it has no gradient");
        }
        return Wrt.Select(i => inputs[i]).ToArray();
    }

    /// <inheritdoc/>
    public override void WriteAttrs(AttrWriter w)
    {
        w.Word("of", Of.Name);
        Of.WriteAttrs(w);
        w.Ints("wrt", Wrt);
        w.Ints("dy", OutGrads);
    }

    /// <summary>Reads the attributes: the forward op's name and its own attributes, then wrt and dy.</summary>
    public static Grad Read(AttrReader r)
    {
        string of = r.Word("of");
        if (of == "grad" || !OpTable.TryGet(of, out var reader)) throw r.ErrorAt("of", $"'{of}' is not a forward op");
        return new Grad(reader(r), r.Ints("wrt"), r.Ints("dy"));
    }
}
