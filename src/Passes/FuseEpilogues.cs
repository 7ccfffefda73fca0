using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Passes;

/// <summary>
/// Linear layers become <see cref="Gemm"/> nodes with their prologue and epilogues: an NCHW→NHWC permute before
/// (read as strides), then after: per-channel affines and constant scales (folded into the weight rows and bias
/// while no activation has been applied), the activation, GRN, the NHWC→NCHW permute, eval drop-path (identity) and
/// a residual add. The SE path (pool, 1×1 conv, ReLU, 1×1 conv, sigmoid, scale) becomes pooling, two small GEMMs and
/// a scale.
/// </summary>
public sealed class FuseEpilogues : Pass
{
    /// <inheritdoc/>
    public override string Name => "fuse-epilogues";

    /// <inheritdoc/>
    public override bool Run(PassContext ctx)
    {
        var e = new GraphEditor(ctx);
        foreach (var n in ctx.Graph.Nodes.Where(n => n.Op is Mean)) ReduceSe(e, n);
        bool se = e.Commit();
        e = new GraphEditor(ctx);
        foreach (var n in ctx.Graph.Nodes.Where(n => n.Op is Linear
            or Gemm { HasGrn: false, HasResidual: false, OutNchw: false, Act: GemmAct.None }))
        {
            if (!e.Touched(n)) FuseLinear(e, n);
        }
        return e.Commit() | se;
    }

    private static void FuseLinear(GraphEditor e, Node lin)
    {
        var g0 = lin.Op as Gemm ?? Gemm.Plain(lin.Inputs.Count == 3);
        bool inNchw = g0.InNchw;
        string x = lin.Inputs[0];
        Node? prologue = null;
        if (!inNchw && e.Producer(x) is { Op: Permute p } perm && p.Perm == Vec.Of(0, 2, 3, 1) && e.SingleUse(x))
        {
            inNchw = true;
            prologue = perm;
            x = perm.Inputs[0];
        }
        // the weight is read once, at the end, if an affine was folded into its rows (no double copy before that)
        var scales = new List<double[]>();
        int nout = e.TypeOf(lin.Inputs[1]).Shape[0];
        double[]? b = g0.HasBias ? e.Const(lin.Inputs[2]) : new double[nout];
        bool foldable = e.IsParam(lin.Inputs[1]) && b is not null, folded = false;
        var act = GemmAct.None;
        (string Gamma, string Beta)? grn = null;
        bool outNchw = false;
        string? residual = null;
        var chain = new List<Node> { lin };
        string cur = lin.Outputs[0];
        while (e.OnlyConsumer(cur) is { } next && !e.Touched(next) && residual is null)
        {
            bool pristine = act == GemmAct.None && grn is null;
            if (next.Op is Unary u && pristine && !outNchw)
            {
                act = u.Kind switch { UnaryKind.Gelu => GemmAct.Gelu, UnaryKind.Relu => GemmAct.Relu,
                    _ => GemmAct.Sigmoid };
            }
            else if (next.Op is Grn gr && grn is null && !outNchw && next.Inputs.Count == 3 && next.Inputs[0] == cur
                && gr.Eps == 1e-6)
            {
                grn = (next.Inputs[1], next.Inputs[2]);
            }
            else if (next.Op is Permute pp && pp.Perm == Vec.Of(0, 3, 1, 2) && !outNchw)
            {
                outNchw = true;
            }
            else if (pristine && foldable && next.Inputs[0] == cur
                && ChannelAffine(e, next, outNchw, nout) is var (s, sh))
            {
                scales.Add(s);
                b = FoldBatchNorm.Shifted(b, s, sh);
                folded = true;
            }
            else if (next.Op is DropPath { Mode: Mode.Eval })
            {
            }
            else if (next.Op is Binary { Kind: BinaryKind.Add } && next.Inputs.Count(i => i == cur) == 1
                && e.TypeOf(next.Inputs[0]).Equals(e.TypeOf(next.Inputs[1])))
            {
                residual = next.Inputs[0] == cur ? next.Inputs[1] : next.Inputs[0];
            }
            else
            {
                break;
            }
            chain.Add(next);
            cur = next.Outputs[0];
        }
        if (chain.Count == 1 && prologue is null && lin.Op is Gemm) return;
        var dtype = e.TypeOf(lin.Inputs[1]).DType;
        string wName = lin.Inputs[1], bName = g0.HasBias ? lin.Inputs[2] : "";
        bool hasBias = g0.HasBias || folded;
        if (folded)
        {
            wName = e.AddParam(lin.Inputs[1] + ".epilogue", FoldBatchNorm.Scaled(e.Weight(lin.Inputs[1])!, dtype,
                scales));
            bName = e.AddParam(lin.Inputs[1] + ".epilogue_bias", dtype, new Shape(nout), b!);
        }
        var ins = new List<string> { x, wName };
        if (hasBias) ins.Add(bName);
        if (grn is { } gg) ins.AddRange([gg.Gamma, gg.Beta]);
        if (residual is not null) ins.Add(residual);
        var op = new Gemm(inNchw, outNchw, act, hasBias, grn is not null, 1e-6, residual is not null);
        var last = chain[^1];
        if (prologue is not null) e.Remove(prologue);
        foreach (var c in chain.Where(c => c != last)) e.Remove(c);
        e.Replace(last, e.Make(op, [last.Outputs[0]], ins.ToArray()));
    }

    /// <summary>
    /// A per-output-channel affine: eval BN or scale_bias on the channel axis, or a multiply by a constant.
    /// </summary>
    private static (double[] Scale, double[] Shift)? ChannelAffine(GraphEditor e, Node n, bool nchw, int nout)
    {
        if (nchw && Affine.Of(e, n) is { } a) return a;
        if (!nchw && n.Op is ScaleBias sb && sb.Axis == -1 && e.Const(n.Inputs[1]) is { } s
            && e.Const(n.Inputs[2]) is { } b)
        {
            return (s, b);
        }
        if (n.Op is Binary { Kind: BinaryKind.Mul } && e.Const(n.Inputs[1]) is { } m)
        {
            var shape = e.TypeOf(n.Inputs[1]).Shape;
            var want = nchw ? new Shape(1, nout, 1, 1) : new Shape(nout);
            if (shape.Equals(want) || (nchw && shape.Equals(new Shape(nout, 1, 1))) || m.Length == 1)
            {
                var scale = m.Length == 1 ? Enumerable.Repeat(m[0], nout).ToArray() : m;
                return (scale, new double[nout]);
            }
        }
        return null;
    }

    /// <summary>
    /// pool → 1×1 conv → ReLU → 1×1 conv → sigmoid → scale, as pooling, two small GEMMs and a scale.
    /// </summary>
    private static void ReduceSe(GraphEditor e, Node pool)
    {
        if (pool.Op is not Mean { KeepDim: true } m || m.Axes != Vec.Of(2, 3)
            || e.TypeOf(pool.Inputs[0]).Shape.Rank != 4)
        {
            return;
        }
        var c1 = e.OnlyConsumer(pool.Outputs[0]);
        var relu = c1 is null ? null : e.OnlyConsumer(c1.Outputs[0]);
        var c2 = relu is null ? null : e.OnlyConsumer(relu.Outputs[0]);
        var sig = c2 is null ? null : e.OnlyConsumer(c2.Outputs[0]);
        var mul = sig is null ? null : e.OnlyConsumer(sig.Outputs[0]);
        string v = pool.Inputs[0];
        if (!IsPointwise(e, c1) || relu?.Op is not Unary { Kind: UnaryKind.Relu } || !IsPointwise(e, c2)
            || sig?.Op is not Unary { Kind: UnaryKind.Sigmoid } || mul?.Op is not Binary { Kind: BinaryKind.Mul }
            || !mul.Inputs.Contains(v) || !mul.Inputs.Contains(sig.Outputs[0]))
        {
            return;
        }
        var shape = e.TypeOf(v).Shape;
        string pooled = e.Fresh(pool.Outputs[0]);
        string h = e.Fresh(c1!.Outputs[0]);
        string s = e.Fresh(c2!.Outputs[0]);
        string s4 = e.Fresh(sig.Outputs[0]);
        e.Replace(pool, e.Make(new Mean(Vec.Of(2, 3), false), [pooled], v));
        e.Remove(c1);
        e.Remove(relu);
        e.Remove(c2);
        e.Remove(sig);
        e.Replace(mul,
            e.Make(new Gemm(false, false, GemmAct.Relu, true, false, 1e-6, false), [h], pooled, Flat(e, c1.Inputs[1]),
                c1.Inputs[2]),
            e.Make(new Gemm(false, false, GemmAct.Sigmoid, true, false, 1e-6, false), [s], h, Flat(e, c2.Inputs[1]),
                c2.Inputs[2]),
            e.Make(new Reshape(Vec.Of(shape[0], shape[1], 1, 1)), [s4], s),
            e.Make(new Binary(BinaryKind.Mul), [mul.Outputs[0]], v, s4));
    }

    private static bool IsPointwise(GraphEditor e, Node? c) =>
        c is { Op: Conv2d conv } && c.Inputs.Count == 3 && conv == Conv2d.Simple(0) && e.IsParam(c.Inputs[1])
        && e.IsParam(c.Inputs[2]) && e.TypeOf(c.Inputs[1]).Shape is var w && w[2] == 1 && w[3] == 1
        && e.TypeOf(c.Inputs[0]).Shape is var x && x[2] == 1 && x[3] == 1;

    /// <summary>A (O, C, 1, 1) conv weight as a (O, C) GEMM weight: a view of the same storage, not a copy.</summary>
    private static string Flat(GraphEditor e, string w)
    {
        var t = e.TypeOf(w);
        return e.AddParam(w + ".gemm", e.Weight(w) is { } v
            ? v.Reshape(new Shape(t.Shape[0], t.Shape[1]))
            : throw new InvalidOperationException("checked by IsPointwise"));
    }
}
