using ShiftWise.Codegen;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// Mean over trailing contiguous axes: <see cref="Rows"/> outputs, each the mean of <see cref="Count"/> contiguous
/// inputs. Short rows, or many of them, take one warp per output (lane-strided sums, __shfl_xor_sync tree); long
/// rows that are few take one block per output (warp trees, then one warp over the warps' partials). Either way the
/// order of additions is fixed, so results are deterministic.
/// </summary>
public sealed class MeanModel : CudaKernelModel
{
    /// <summary>Rows at most this long always take a warp each.</summary>
    public const long WarpRowLimit = 1024;

    /// <summary>At least this many rows take a warp each whatever their length.</summary>
    public const long WarpRowsEnough = 1024;

    /// <summary>Builds the model.</summary>
    public MeanModel(string name, int threads, long rows, long count)
        : base(name, "mean", threads, rows * count)
    {
        if (rows < 1 || count < 1) throw new ArgumentException($"mean over {count} of {rows} rows");
        Rows = rows;
        Count = count;
        InvCount = Literal.F(1.0 / count);
        PerBlock = count <= WarpRowLimit || rows >= WarpRowsEnough ? "warp" : "block";
    }

    /// <summary>Outputs.</summary>
    public long Rows { get; }

    /// <summary>Inputs per output.</summary>
    public long Count { get; }

    /// <summary>1/count as a float literal.</summary>
    public string InvCount { get; }

    /// <summary>"warp": one warp per output; "block": one block per output.</summary>
    public string PerBlock { get; }

    /// <summary>Blocks to launch.</summary>
    public long Blocks => PerBlock == "warp" ? (Rows + Warps - 1) / Warps : Rows;
}
