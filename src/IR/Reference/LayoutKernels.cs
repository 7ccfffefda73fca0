using ShiftWise.IR.Ops;

namespace ShiftWise.IR.Reference;

/// <summary>Channel selection, concatenation and permutation, as plain loops.</summary>
internal static class LayoutKernels
{
    public static double[] ChannelSelect(ChannelSelect c, Arr x)
    {
        int a = x.Shape.Axis(c.Axis);
        long inner = x.Shape.Strides()[a];
        long outer = x.Shape.Elements / Math.Max(1, x[a] * inner);
        var y = new double[outer * c.Indices.Count * inner];
        for (long o = 0; o < outer; o++)
        for (int i = 0; i < c.Indices.Count; i++)
        for (long k = 0; k < inner; k++)
        {
            y[(o * c.Indices.Count + i) * inner + k] = x.Data[(o * x[a] + c.Indices[i]) * inner + k];
        }
        return y;
    }

    public static double[] Concat(Concat c, Arr[] xs, Shape outShape)
    {
        int a = outShape.Axis(c.Axis);
        long inner = outShape.Strides()[a];
        long outer = outShape.Elements / Math.Max(1, outShape[a] * inner);
        var y = new double[outShape.Elements];
        int offset = 0;
        foreach (var x in xs)
        {
            for (long o = 0; o < outer; o++)
            for (int i = 0; i < x[a]; i++)
            for (long k = 0; k < inner; k++)
            {
                y[(o * outShape[a] + offset + i) * inner + k] = x.Data[(o * x[a] + i) * inner + k];
            }
            offset += x[a];
        }
        return y;
    }

    public static double[] Permute(Permute p, Arr x)
    {
        var src = x.Shape.Strides();
        var outDims = p.Perm.Select(d => x[d]).ToArray();
        var y = new double[x.Data.Length];
        var idx = new int[outDims.Length];
        for (long k = 0; k < y.LongLength; k++)
        {
            long s = 0;
            for (int d = 0; d < idx.Length; d++) s += idx[d] * src[p.Perm[d]];
            y[k] = x.Data[s];
            for (int d = idx.Length - 1; d >= 0; d--)
            {
                if (++idx[d] < outDims[d]) break;
                idx[d] = 0;
            }
        }
        return y;
    }
}
