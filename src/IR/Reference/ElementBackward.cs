using ShiftWise.IR.Ops;

namespace ShiftWise.IR.Reference;

/// <summary>Backward rules (see <see cref="Backward"/>) of the norms, element-wise, reduction and layout ops.</summary>
internal static partial class ElementBackward
{
    /// <summary>
    /// One gradient per input (null: not differentiable); <paramref name="gys"/> null where an output does not reach
    /// the loss.
    /// </summary>
    public static double[]?[] Vjp(Op op, Arr[] xs, Arr[] ys, double[]?[] gys)
    {
        // An output that does not reach the loss contributes nothing: its gradient is zero.
        var gy = gys[0] ?? new double[ys[0].Data.Length];
        return op switch
        {
            BatchNorm bn => BatchNorm(bn, xs, gy, gys),
            LayerNorm ln => LayerNorm(ln, xs, gy),
            Grn grn => Grn(grn, xs, gy),
            Unary u => [Unary(u.Kind, xs[0], ys[0], gy)],
            Binary b => Binary(b.Kind, xs[0], xs[1], ys[0].Shape, gy),
            Mean m => [Mean(m, xs[0], gy)],
            Softmax s => [Softmax(s, ys[0], gy)],
            CrossEntropy ce => [CrossEntropy(ce, xs[0], xs[1], gy[0]), null],
            DropPath d => xs.Length == 1 // linear in x; the step input has no gradient
                ? [(double[])ElementKernels.DropPath(d, new Arr(xs[0].Shape, gy)).Clone()]
                : [(double[])ElementKernels.DropPath(d, new Arr(xs[0].Shape, gy), Step(xs[1])).Clone(), null],
            ChannelSelect c => [ChannelSelect(c, xs[0], gy)],
            Concat c => Concat(c, xs, ys[0].Shape, gy),
            Permute p => [Permute(p, xs[0], gy)],
            Reshape => [(double[])gy.Clone()],
            Cast => [(double[])gy.Clone()],
            ScaleBias sb => ScaleBias(sb, xs, gy),
            _ => throw new IrException($"no backward rule for op '{op.Name}'"),
        };
    }

    /// <summary>The value of an i64 scalar step input.</summary>
    internal static long Step(Arr s) => checked((long)s.Data[0]);

    /// <summary>gelu: Φ(x) + x·φ(x); relu: 1 where x &gt; 0; sigmoid: y·(1 − y).</summary>
    private static double[] Unary(UnaryKind kind, Arr x, Arr y, double[] gy)
    {
        var gx = new double[x.Data.Length];
        for (long i = 0; i < gx.LongLength; i++)
        {
            double v = x.Data[i];
            double d = kind switch
            {
                UnaryKind.Gelu => 0.5 * (1 + ElementKernels.Erf(v / Math.Sqrt(2))) + v * Math.Exp(-0.5 * v * v)
                    / Math.Sqrt(2 * Math.PI),
                UnaryKind.Relu => v > 0 ? 1 : 0,
                UnaryKind.Sigmoid => y.Data[i] * (1 - y.Data[i]),
                _ => throw new ArgumentOutOfRangeException(nameof(kind)),
            };
            gx[i] = gy[i] * d;
        }
        return gx;
    }

    /// <summary>numpy broadcasting: each operand's gradient is summed over the output positions that read it.</summary>
    private static double[]?[] Binary(BinaryKind kind, Arr a, Arr b, Shape outShape, double[] gy)
    {
        var sa = a.Shape.BroadcastStrides(outShape);
        var sb = b.Shape.BroadcastStrides(outShape);
        var ga = new double[a.Data.Length];
        var gb = new double[b.Data.Length];
        var idx = new int[outShape.Rank];
        for (long k = 0; k < gy.LongLength; k++)
        {
            long ia = 0, ib = 0;
            for (int d = 0; d < idx.Length; d++)
            {
                ia += idx[d] * sa[d];
                ib += idx[d] * sb[d];
            }
            if (kind == BinaryKind.Add)
            {
                ga[ia] += gy[k];
                gb[ib] += gy[k];
            }
            else
            {
                ga[ia] += gy[k] * b.Data[ib];
                gb[ib] += gy[k] * a.Data[ia];
            }
            for (int d = idx.Length - 1; d >= 0; d--)
            {
                if (++idx[d] < outShape[d]) break;
                idx[d] = 0;
            }
        }
        return [ga, gb];
    }


    /// <summary>
    /// Each input element gets its output's gradient over the count; keepdim does not change the layout.
    /// </summary>
    private static double[] Mean(Mean m, Arr x, double[] gy)
    {
        var axes = m.Axes.Select(x.Shape.Axis).ToHashSet();
        var ks = new Shape(Enumerable.Range(0, x.Shape.Rank).Select(d => axes.Contains(d) ? 1 : x[d]).ToArray())
            .Strides();
        long count = axes.Aggregate(1L, (acc, ax) => acc * x[ax]);
        var gx = new double[x.Data.Length];
        var idx = new int[x.Shape.Rank];
        for (long k = 0; k < gx.LongLength; k++)
        {
            long o = 0;
            for (int d = 0; d < idx.Length; d++) o += axes.Contains(d) ? 0 : idx[d] * ks[d];
            gx[k] = gy[o] / count;
            for (int d = idx.Length - 1; d >= 0; d--)
            {
                if (++idx[d] < x[d]) break;
                idx[d] = 0;
            }
        }
        return gx;
    }

    /// <summary>dx_i = y_i·(g_i − Σ_j g_j·y_j) along the axis.</summary>
    private static double[] Softmax(Softmax s, Arr y, double[] gy)
    {
        int a = y.Shape.Axis(s.Axis);
        int c = y[a];
        long inner = y.Shape.Strides()[a];
        long outer = y.Shape.Elements / Math.Max(1, c * inner);
        var gx = new double[y.Data.Length];
        for (long o = 0; o < outer; o++)
        for (long k = 0; k < inner; k++)
        {
            long Idx(int i) => (o * c + i) * inner + k;
            double dot = 0;
            for (int i = 0; i < c; i++) dot += gy[Idx(i)] * y.Data[Idx(i)];
            for (int i = 0; i < c; i++) gx[Idx(i)] = y.Data[Idx(i)] * (gy[Idx(i)] - dot);
        }
        return gx;
    }

    /// <summary>
    /// Mean over samples of (1−ε)·nll + ε·mean_i(lse − z_i): ∂/∂z_i = (p_i − (1−ε)·[i = label] −
    /// ε/k) / n.
    /// </summary>
    private static double[] CrossEntropy(CrossEntropy ce, Arr logits, Arr labels, double gLoss)
    {
        int n = logits[0], k = logits[1];
        double eps = ce.LabelSmoothing;
        var gx = new double[logits.Data.Length];
        for (int b = 0; b < n; b++)
        {
            long row = (long)b * k;
            double mx = double.NegativeInfinity;
            for (int i = 0; i < k; i++) mx = Math.Max(mx, logits.Data[row + i]);
            double sum = 0;
            for (int i = 0; i < k; i++) sum += Math.Exp(logits.Data[row + i] - mx);
            int label = (int)labels.Data[b];
            for (int i = 0; i < k; i++)
            {
                double p = Math.Exp(logits.Data[row + i] - mx) / sum;
                gx[row + i] = gLoss * (p - (i == label ? 1 - eps : 0) - eps / k) / n;
            }
        }
        return gx;
    }

    /// <summary>Gathered channels scatter back, summing where an index repeats; unselected channels get zero.</summary>
    private static double[] ChannelSelect(ChannelSelect c, Arr x, double[] gy)
    {
        int a = x.Shape.Axis(c.Axis);
        long inner = x.Shape.Strides()[a];
        long outer = x.Shape.Elements / Math.Max(1, x[a] * inner);
        var gx = new double[x.Data.Length];
        for (long o = 0; o < outer; o++)
        for (int i = 0; i < c.Indices.Count; i++)
        for (long k = 0; k < inner; k++)
        {
            gx[(o * x[a] + c.Indices[i]) * inner + k] += gy[(o * c.Indices.Count + i) * inner + k];
        }
        return gx;
    }

    /// <summary>Each input gets its slice of the output gradient.</summary>
    private static double[]?[] Concat(Concat c, Arr[] xs, Shape outShape, double[] gy)
    {
        int a = outShape.Axis(c.Axis);
        long inner = outShape.Strides()[a];
        long outer = outShape.Elements / Math.Max(1, outShape[a] * inner);
        var result = new double[]?[xs.Length];
        int offset = 0;
        for (int j = 0; j < xs.Length; j++)
        {
            var x = xs[j];
            var gx = new double[x.Data.Length];
            for (long o = 0; o < outer; o++)
            for (int i = 0; i < x[a]; i++)
            for (long k = 0; k < inner; k++)
            {
                gx[(o * x[a] + i) * inner + k] = gy[(o * outShape[a] + offset + i) * inner + k];
            }
            offset += x[a];
            result[j] = gx;
        }
        return result;
    }

    /// <summary>The inverse permutation of the output gradient.</summary>
    private static double[] Permute(Permute p, Arr x, double[] gy)
    {
        var src = x.Shape.Strides();
        var outDims = p.Perm.Select(d => x[d]).ToArray();
        var gx = new double[x.Data.Length];
        var idx = new int[outDims.Length];
        for (long k = 0; k < gy.LongLength; k++)
        {
            long s = 0;
            for (int d = 0; d < idx.Length; d++) s += idx[d] * src[p.Perm[d]];
            gx[s] = gy[k];
            for (int d = idx.Length - 1; d >= 0; d--)
            {
                if (++idx[d] < outDims[d]) break;
                idx[d] = 0;
            }
        }
        return gx;
    }

    /// <summary>y = x·s[c] + b[c]: gx = g·s[c], gs[c] = Σ g·x, gb[c] = Σ g.</summary>
    private static double[]?[] ScaleBias(ScaleBias sb, Arr[] xs, double[] gy)
    {
        var x = xs[0];
        int a = x.Shape.Axis(sb.Axis), c = x[a];
        long inner = x.Shape.Strides()[a];
        var gx = new double[x.Data.Length];
        var gs = new double[c];
        var gb = new double[c];
        for (long i = 0; i < gx.LongLength; i++)
        {
            int ch = (int)(i / inner % c);
            gx[i] = gy[i] * xs[1].Data[ch];
            gs[ch] += gy[i] * x.Data[i];
            gb[ch] += gy[i];
        }
        return [gx, gs, gb];
    }
}
