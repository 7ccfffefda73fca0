namespace ShiftWise.IR.Ops;

/// <summary>
/// Converts a floating-point tensor to another floating-point type, element by element, rounding to nearest with
/// ties to even (exact when widening). The precision pass (issue 22) puts one at each graph input (float32 to the
/// 16-bit storage type) and each graph output (back to float32).
/// </summary>
/// <param name="To">The element type of the output: f32, f64, bf16 or f16.</param>
public sealed record Cast(DType To) : Op
{
    /// <inheritdoc/>
    public override string Name => "cast";

    /// <inheritdoc/>
    public override TensorType[] Infer(IReadOnlyList<TensorType> inputs)
    {
        Arity(inputs, 1, 1);
        Check(inputs[0].DType.IsFloat(), $"input 0 must be floating point, got {inputs[0].DType.Name()}");
        Check(To.IsFloat(), $"cannot cast to {To.Name()}: the target must be a float type (f32, f64, bf16, f16)");
        return [new TensorType(To, inputs[0].Shape)];
    }

    /// <inheritdoc/>
    public override void WriteAttrs(AttrWriter w) => w.Word("to", To.Name());

    /// <summary>Reads the attributes.</summary>
    public static Cast Read(AttrReader r)
    {
        var word = r.Word("to");
        if (!DTypes.TryParse(word, out var t) || !t.IsFloat())
        {
            throw r.ErrorAt("to", $"attribute 'to' of cast must be a float type (f32, f64, bf16, f16), got '{word}'");
        }
        return new Cast(t);
    }
}
