using System.Globalization;
using ShiftWise.Codegen;
using ShiftWise.IR;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// One thread per element of an input gradient that reads the output gradient element by element: the backward of
/// gelu (Φ(x) + x·φ(x)), relu (x &gt; 0), sigmoid (y·(1 − y)), mean over trailing axes (gy[i / count] / count) and
/// the identity (reshape, add to an operand of the output's size, eval-mode drop_path).
/// </summary>
public sealed class GradPointwiseModel : CudaKernelModel
{
    /// <summary>The rules the template knows.</summary>
    public static IReadOnlyList<string> Rules { get; } = ["gelu", "relu", "sigmoid", "mean", "copy"];

    /// <summary>
    /// Builds the model; <paramref name="count"/> is the values averaged into each output (mean only, else 1);
    /// <paramref name="signature"/> declares dx, then x (gelu, relu) or y (sigmoid), then gy.
    /// </summary>
    public GradPointwiseModel(string name, int threads, long total, string rule, long count,
        KernelSignature signature)
        : base(name, "grad_elem_pointwise", threads, total)
    {
        if (total < 1) throw new ArgumentOutOfRangeException(nameof(total));
        if (!Rules.Contains(rule)) throw new ArgumentException($"no pointwise gradient rule '{rule}'");
        if (count < 1 || total % count != 0) throw new ArgumentException($"count {count} does not divide {total}");
        Total = total;
        Rule = rule;
        Count = count;
        InvCount = Literal.F(1.0 / count);
        Params = signature.Declarations;
    }

    /// <summary>Elements of dx.</summary>
    public long Total { get; }

    /// <summary>gelu, relu, sigmoid, mean or copy.</summary>
    public string Rule { get; }

    /// <summary>Inputs averaged into each output of the mean.</summary>
    public long Count { get; }

    /// <summary>1/count as a float literal.</summary>
    public string InvCount { get; }

    /// <summary>1/√2 (the GELU argument scale).</summary>
    public string InvSqrt2 => Activation.InvSqrt2;

    /// <summary>1/√(2π) (the normal density's scale).</summary>
    public string InvSqrt2Pi => Literal.F(1 / Math.Sqrt(2 * Math.PI));

    /// <summary>The entry's parameter list.</summary>
    public string Params { get; }
}

/// <summary>
/// One axis of a broadcast reduction, after size-1 axes are dropped and contiguous neighbours merged: coordinate c =
/// (index / Div) % Extent moves the output-gradient offset by c·OutStride and the other operand's by c·OtherStride.
/// </summary>
public sealed record ReduceAxis(long Div, long Extent, long OutStride, long OtherStride);

/// <summary>
/// The gradient of a broadcast operand of add or mul: each of its elements sums, over the R output positions that
/// read it, gy (times the other operand at that position for mul). One warp per element (lane-strided partial sums,
/// a __shfl_xor_sync tree) or, for few elements with long sums, one block per element (warp trees, then one warp over
/// the warps' partials). The order of every sum is fixed by the block size: deterministic, no atomics. Every index
/// is split here into the operand's kept axes (which element) and its broadcast axes (which position of the sum).
/// </summary>
public sealed class GradReduceModel : CudaKernelModel
{
    /// <summary>
    /// Builds the model for the operand <paramref name="operand"/> of an op with output <paramref name="outShape"/>;
    /// <paramref name="other"/> is the other operand of a mul (null for add).
    /// </summary>
    public GradReduceModel(string name, int threads, Shape operand, Shape? other, Shape outShape)
        : base(name, "grad_elem_reduce", threads, outShape.Elements)
    {
        var so = operand.BroadcastStrides(outShape);
        var sp = other?.BroadcastStrides(outShape) ?? new long[outShape.Rank];
        var os = outShape.Strides();
        var kept = new List<(long Ext, long Out, long Other)>();
        var bcast = new List<(long Ext, long Out, long Other)>();
        for (int d = 0; d < outShape.Rank; d++)
        {
            if (outShape[d] == 1) continue;
            (so[d] != 0 ? kept : bcast).Add((outShape[d], os[d], sp[d]));
        }
        Elements = operand.Elements;
        Sum = bcast.Aggregate(1L, (a, x) => a * x.Ext);
        if (Elements < 1 || Sum < 1) throw new ArgumentException($"empty reduction of {operand} from {outShape}");
        Kept = Axes(Merge(kept));
        Broadcast = Axes(Merge(bcast));
        HasOther = other is not null;
        PerBlock = Sum <= MeanModel.WarpRowLimit || Elements >= MeanModel.WarpRowsEnough ? "warp" : "block";
    }

    /// <summary>Elements of the operand (sums to compute).</summary>
    public long Elements { get; }

    /// <summary>Terms of each sum (R).</summary>
    public long Sum { get; }

    /// <summary>The axes that pick the element (from its own index j), outermost first.</summary>
    public IReadOnlyList<ReduceAxis> Kept { get; }

    /// <summary>The axes summed over (from the position r of the sum), outermost first.</summary>
    public IReadOnlyList<ReduceAxis> Broadcast { get; }

    /// <summary>A mul: each term is multiplied by the other operand.</summary>
    public bool HasOther { get; }

    /// <summary>"warp": one warp per element; "block": one block per element.</summary>
    public string PerBlock { get; }

    /// <summary>Blocks to launch.</summary>
    public long Blocks => PerBlock == "warp" ? (Elements + Warps - 1) / Warps : Elements;

    // Neighbours (outer, inner) merge when the outer one steps both tensors by the inner one's whole extent.
    private static List<(long Ext, long Out, long Other)> Merge(List<(long Ext, long Out, long Other)> axes)
    {
        var m = new List<(long Ext, long Out, long Other)>();
        foreach (var a in axes)
        {
            if (m.Count > 0 && m[^1].Out == a.Out * a.Ext && m[^1].Other == a.Other * a.Ext)
            {
                m[^1] = (m[^1].Ext * a.Ext, a.Out, a.Other);
            }
            else
            {
                m.Add(a);
            }
        }
        return m;
    }

    private static ReduceAxis[] Axes(List<(long Ext, long Out, long Other)> axes)
    {
        var r = new ReduceAxis[axes.Count];
        long div = 1;
        for (int k = axes.Count - 1; k >= 0; k--)
        {
            r[k] = new ReduceAxis(div, axes[k].Ext, axes[k].Out, axes[k].Other);
            div *= axes[k].Ext;
        }
        return r;
    }
}

/// <summary>
/// Label-smoothed cross-entropy over logits (N, K) and labels (N, uploaded as floats like every input): the forward
/// (the mean loss, one block: each warp takes rows w, w + warps, ...; lane-strided max and sums with __shfl_xor_sync
/// trees; the warps' sums added by one warp in a fixed order) and the backward (one warp per row: dz_i = g·(p_i −
/// (1−ε)·[i = label] − ε/K)/N, g the loss gradient or 1 for the dy=[] seed). Deterministic, no atomics.
/// </summary>
public sealed class CrossEntropyModel : CudaKernelModel
{
    /// <summary>Builds the model; <paramref name="hasGy"/>: the backward reads the loss gradient.</summary>
    public CrossEntropyModel(string name, string kind, int threads, int rows, int classes, double smoothing,
        bool hasGy, KernelSignature signature)
        : base(name, kind, threads, (long)rows * classes)
    {
        if (kind is not ("cross_entropy" or "cross_entropy_grad")) throw new ArgumentException(kind);
        if (rows < 1 || classes < 1) throw new ArgumentException($"logits of {rows}x{classes}");
        Rows = rows;
        Classes = classes;
        KeepLabel = Literal.F(1 - smoothing);
        Smoothing = Literal.F(smoothing);
        SmoothOverK = Literal.F(smoothing / classes);
        InvClasses = Literal.F(1.0 / classes);
        InvRows = Literal.F(1.0 / rows);
        HasGy = hasGy;
        Params = signature.Declarations;
    }

    /// <summary>N.</summary>
    public int Rows { get; }

    /// <summary>K.</summary>
    public int Classes { get; }

    /// <summary>1 − ε.</summary>
    public string KeepLabel { get; }

    /// <summary>ε.</summary>
    public string Smoothing { get; }

    /// <summary>ε/K.</summary>
    public string SmoothOverK { get; }

    /// <summary>1/K.</summary>
    public string InvClasses { get; }

    /// <summary>1/N.</summary>
    public string InvRows { get; }

    /// <summary>The backward reads gl[0] (else the seed: the loss's gradient is one).</summary>
    public bool HasGy { get; }

    /// <summary>Blocks of the backward (one warp per row).</summary>
    public long Blocks => (Rows + Warps - 1) / Warps;

    /// <summary>The entry's parameter list.</summary>
    public string Params { get; }
}

/// <summary>
/// Train-mode drop_path, forward (src = x) and backward (src = gy): dst[i] = src[i]·1/(1−p) where sample b = i / per
/// is kept, else 0. The kernel draws the keep of b as <c>DropPath.Keeps</c> does (SplitMix64 of seed, step, b + 1);
/// the test u = (z &gt;&gt; 11)·2⁻⁵³ ≥ p is done here as the exact integer test z &gt;&gt; 11 ≥ ⌈p·2⁵³⌉.
/// </summary>
public sealed class DropPathModel : CudaKernelModel
{
    /// <summary>Builds the model; <paramref name="hasStep"/>: the node reads the step input (as a float).</summary>
    public DropPathModel(string name, int threads, long total, long perSample, double prob, long seed, bool hasStep,
        KernelSignature signature)
        : base(name, "drop_path_train", threads, total)
    {
        if (total < 1 || perSample < 1 || total % perSample != 0)
        {
            throw new ArgumentException($"{total} elements are not whole samples of {perSample}");
        }
        if (prob is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(prob));
        Total = total;
        PerSample = perSample;
        var inv = CultureInfo.InvariantCulture;
        Seed = "0x" + unchecked((ulong)seed).ToString("X16", inv) + "ull";
        Threshold = ((ulong)Math.Ceiling(prob * 9007199254740992.0)).ToString(inv) + "ull";
        Scale = Literal.F(1 / (1 - prob));
        HasStep = hasStep;
        Params = signature.Declarations;
    }

    /// <summary>Elements.</summary>
    public long Total { get; }

    /// <summary>Elements per sample.</summary>
    public long PerSample { get; }

    /// <summary>The op's seed as an unsigned 64-bit literal.</summary>
    public string Seed { get; }

    /// <summary>⌈p·2⁵³⌉: a sample is kept when the top 53 bits of its draw reach it.</summary>
    public string Threshold { get; }

    /// <summary>1/(1 − p).</summary>
    public string Scale { get; }

    /// <summary>The step comes from the step input (else 0).</summary>
    public bool HasStep { get; }

    /// <summary>The entry's parameter list.</summary>
    public string Params { get; }
}
