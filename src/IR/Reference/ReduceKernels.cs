using ShiftWise.IR.Ops;

namespace ShiftWise.IR.Reference;

/// <summary>Mean, Softmax and CrossEntropy, as plain loops.</summary>
internal static class ReduceKernels
{
    public static double[] Mean(Mean m, Arr x)
    {
        var axes = m.Axes.Select(x.Shape.Axis).ToHashSet();
        var keptDims = Enumerable.Range(0, x.Shape.Rank).Select(d => axes.Contains(d) ? 1 : x[d]).ToArray();
        var kept = new Shape(keptDims);
        var ks = kept.Strides();
        var y = new double[kept.Elements];
        long count = axes.Aggregate(1L, (acc, a) => acc * x[a]);
        var idx = new int[x.Shape.Rank];
        for (long k = 0; k < x.Data.LongLength; k++)
        {
            long o = 0;
            for (int d = 0; d < idx.Length; d++) o += axes.Contains(d) ? 0 : idx[d] * ks[d];
            y[o] += x.Data[k];
            for (int d = idx.Length - 1; d >= 0; d--)
            {
                if (++idx[d] < x[d]) break;
                idx[d] = 0;
            }
        }
        for (long k = 0; k < y.LongLength; k++) y[k] /= count;
        return y;
    }

    public static double[] Softmax(Softmax s, Arr x)
    {
        int a = x.Shape.Axis(s.Axis);
        int c = x[a];
        long inner = x.Shape.Strides()[a];
        long outer = x.Shape.Elements / Math.Max(1, c * inner);
        var y = new double[x.Data.Length];
        for (long o = 0; o < outer; o++)
        for (long k = 0; k < inner; k++)
        {
            long Idx(int i) => (o * c + i) * inner + k;
            double mx = double.NegativeInfinity;
            for (int i = 0; i < c; i++) mx = Math.Max(mx, x.Data[Idx(i)]);
            double sum = 0;
            for (int i = 0; i < c; i++) sum += Math.Exp(x.Data[Idx(i)] - mx);
            for (int i = 0; i < c; i++) y[Idx(i)] = Math.Exp(x.Data[Idx(i)] - mx) / sum;
        }
        return y;
    }

    public static double[] CrossEntropy(CrossEntropy ce, Arr logits, Arr labels)
    {
        int n = logits[0], k = logits[1];
        double total = 0;
        for (int b = 0; b < n; b++)
        {
            double label = labels.Data[b];
            if (label < 0 || label >= k || label != Math.Floor(label))
            {
                throw new IrException($"label {label} of sample {b} is not a class index in [0, {k})");
            }
            double mx = double.NegativeInfinity;
            for (int i = 0; i < k; i++) mx = Math.Max(mx, logits.Data[(long)b * k + i]);
            double sum = 0;
            for (int i = 0; i < k; i++) sum += Math.Exp(logits.Data[(long)b * k + i] - mx);
            double lse = mx + Math.Log(sum);
            double nll = lse - logits.Data[(long)b * k + (int)label];
            double uniform = 0;
            for (int i = 0; i < k; i++) uniform += lse - logits.Data[(long)b * k + i];
            total += (1 - ce.LabelSmoothing) * nll + ce.LabelSmoothing * uniform / k;
        }
        return [total / n];
    }
}
