using ShiftWise.IR;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// One axis of a broadcast after collapsing: its extent and each operand's stride (0 where broadcast).
/// </summary>
/// <param name="Size">Extent.</param>
/// <param name="StrideA">Stride of a along it.</param>
/// <param name="StrideB">Stride of b along it.</param>
/// <param name="IsOuter">The outermost axis: its index is what is left of i, no modulo needed.</param>
/// <param name="UseA">a's index needs this axis (a is not direct and its stride is not 0).</param>
/// <param name="UseB">b's index needs this axis.</param>
/// <param name="Divides">An axis further out is used, so what is left of i must be divided by this axis' size.</param>
public sealed record BroadcastAxis(long Size, long StrideA, long StrideB, bool IsOuter, bool UseA, bool UseB,
    bool Divides = false)
{
    /// <summary>Either operand needs the axis' index.</summary>
    public bool Used => UseA || UseB;
}

/// <summary>
/// y[i] = a[ia] op b[ib] with numpy broadcasting. The output's axes are collapsed in C# (size-1 axes dropped,
/// neighbours merged where both operands are contiguous across them), so x[N,C,H,W]·s[N,C,1,1] indexes over
/// two axes (N·C, H·W); an operand of the output's own shape indexes with i itself.
/// </summary>
public sealed class BinaryModel : CudaKernelModel
{
    /// <summary>Builds the model for output shape <paramref name="outShape"/>.</summary>
    public BinaryModel(string name, int threads, string op, Shape a, Shape b, Shape outShape)
        : base(name, "binary", threads, outShape.Elements)
    {
        if (op is not ("+" or "*")) throw new ArgumentException($"operator '{op}' is not + or *", nameof(op));
        Op = op;
        Total = outShape.Elements;
        DirectA = a.Equals(outShape);
        DirectB = b.Equals(outShape);
        bool da = DirectA, db = DirectB;
        var axes = Collapse(a.BroadcastStrides(outShape), b.BroadcastStrides(outShape), outShape)
            .Select(x => x with { UseA = !da && x.StrideA != 0, UseB = !db && x.StrideB != 0 }).ToArray();
        for (int k = 0; k < axes.Length; k++)
        {
            axes[k] = axes[k] with { Divides = axes.Skip(k + 1).Any(x => x.Used) };
        }
        Axes = axes;
    }

    /// <summary>The C++ operator.</summary>
    public string Op { get; }

    /// <summary>Output elements.</summary>
    public long Total { get; }

    /// <summary>The index of a's element: i, or ia when a is broadcast.</summary>
    public string IndexA => DirectA ? "i" : "ia";

    /// <summary>The index of b's element: i, or ib when b is broadcast.</summary>
    public string IndexB => DirectB ? "i" : "ib";

    /// <summary>a has the output's shape: ia = i.</summary>
    public bool DirectA { get; }

    /// <summary>b has the output's shape: ib = i.</summary>
    public bool DirectB { get; }

    /// <summary>Collapsed axes, innermost first (empty when both operands are direct).</summary>
    public IReadOnlyList<BroadcastAxis> Axes { get; }

    /// <summary>Some axis feeds an index (otherwise broadcast operands read element 0).</summary>
    public bool AnyUsed => Axes.Any(a => a.Used);


    /// <summary>
    /// Drops size-1 axes and merges axis d into d+1 when every operand's stride satisfies
    /// stride[d] = stride[d+1]·size[d+1]. Returns the axes innermost first.
    /// </summary>
    public static IReadOnlyList<BroadcastAxis> Collapse(long[] sa, long[] sb, Shape outShape)
    {
        var axes = new List<(long Size, long A, long B)>();
        for (int d = 0; d < outShape.Rank; d++)
        {
            if (outShape[d] == 1) continue;
            if (axes.Count > 0)
            {
                var last = axes[^1];
                if (last.A == sa[d] * outShape[d] && last.B == sb[d] * outShape[d])
                {
                    axes[^1] = (last.Size * outShape[d], sa[d], sb[d]);
                    continue;
                }
            }
            axes.Add((outShape[d], sa[d], sb[d]));
        }
        if (axes.Count == 0) axes.Add((1, 0, 0));
        axes.Reverse();
        return axes.Select((x, k) => new BroadcastAxis(x.Size, x.A, x.B, k == axes.Count - 1, x.A != 0, x.B != 0))
            .ToArray();
    }
}
