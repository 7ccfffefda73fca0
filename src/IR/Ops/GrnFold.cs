namespace ShiftWise.IR.Ops;

/// <summary>
/// A GEMM with GRN followed by the GEMM that consumes it, fused so that GRN's apply pass folds into the second
/// GEMM's weights (inference only). With u = act(x·W1ᵀ + b1) (NHWC rows, channels K) and f[n, k] = γ[k]·N[n, k] + 1
/// GRN's per-sample factor, GRN gives y = u·f + β, and the consumer y·W2ᵀ + b2 is u·(W2·diag f_n)ᵀ + (b2 + W2·β):
/// so the node takes the folded bias b2' = b2 + W2·β as its second bias and no β. Semantics: the first
/// <see cref="Gemm"/> (<see cref="First"/>, GRN with β = 0) then the second (<see cref="Second"/>: rows in, its
/// activation, optional NCHW out and residual). Inputs in order: x, W1, [b1], γ, W2, b2', [residual].
/// </summary>
public sealed record GemmGrnFold(bool InNchw, GemmAct Act, bool HasBias, double GrnEps, GemmAct Act2, bool OutNchw,
    bool HasResidual) : Op
{
    /// <inheritdoc/>
    public override string Name => "gemm_grn_fold";

    /// <summary>The first GEMM with its GRN epilogue (its β input is zero here).</summary>
    public Gemm First => new(InNchw, false, Act, HasBias, true, GrnEps, false);

    /// <summary>The consumer GEMM with its folded bias.</summary>
    public Gemm Second => new(false, OutNchw, Act2, true, false, 1e-6, HasResidual);

    /// <summary>Input position of each operand after x and W1 (−1 when absent).</summary>
    public (int Bias, int Gamma, int W2, int Bias2, int Residual) Slots
    {
        get
        {
            int g = HasBias ? 3 : 2;
            return (HasBias ? 2 : -1, g, g + 1, g + 2, HasResidual ? g + 3 : -1);
        }
    }

    /// <summary>
    /// The inputs of <see cref="First"/> (with γ standing in for the absent β, which callers replace by zeros) and
    /// those of <see cref="Second"/> after its activation input.
    /// </summary>
    public (T[] First, T[] Second) Split<T>(IReadOnlyList<T> inputs)
    {
        var s = Slots;
        var first = inputs.Take(s.Gamma + 1).Append(inputs[s.Gamma]).ToArray();
        return (first, inputs.Skip(s.W2).ToArray());
    }

    /// <inheritdoc/>
    public override TensorType[] Infer(IReadOnlyList<TensorType> inputs)
    {
        int n = (HasBias ? 6 : 5) + (HasResidual ? 1 : 0);
        Arity(inputs, n, n);
        SameFloat(inputs);
        var (a, b) = Split(inputs);
        var u = First.Infer(a)[0];
        return Second.Infer([u, .. b]);
    }

    /// <inheritdoc/>
    public override void WriteAttrs(AttrWriter w)
    {
        w.Bool("in_nchw", InNchw);
        w.Enum("act", Act);
        w.Bool("bias", HasBias);
        w.Float("grn_eps", GrnEps);
        w.Enum("act2", Act2);
        w.Bool("out_nchw", OutNchw);
        w.Bool("residual", HasResidual);
    }

    /// <summary>Reads the attributes.</summary>
    public static GemmGrnFold Read(AttrReader r) => new(r.Bool("in_nchw"), r.Enum<GemmAct>("act"), r.Bool("bias"),
        r.Float("grn_eps"), r.Enum<GemmAct>("act2"), r.Bool("out_nchw"), r.Bool("residual"));
}
