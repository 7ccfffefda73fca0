using ShiftWise.Codegen;

namespace ShiftWise.CodegenCuda;

/// <summary>A 32-wide slot of a row held in registers by a channels-last LayerNorm: lane + Offset.</summary>
/// <param name="Index">Register number.</param>
/// <param name="Offset">First channel of the slot.</param>
/// <param name="Full">Every lane's channel is inside the row (no guard needed).</param>
public sealed record RowSlot(int Index, int Offset, bool Full);

/// <summary>
/// LayerNorm over the last axis: one warp per row, sums reduced with __shfl_xor_sync (every lane ends with the
/// total, in the same order). Rows of up to <see cref="MaxCachedSlots"/>·32 channels stay in registers (one read of
/// x); longer rows are read three times (sum, squared deviations, output), the later reads mostly from cache.
/// </summary>
public sealed class LayerNormLastModel : CudaKernelModel
{
    /// <summary>Most 32-wide slots of a row kept in registers.</summary>
    public const int MaxCachedSlots = 16;

    /// <summary>Builds the model for <paramref name="rows"/> rows of <paramref name="channels"/>.</summary>
    public LayerNormLastModel(string name, int threads, long rows, int channels, double eps)
        : base(name, "layer_norm", threads, rows * channels)
    {
        Rows = rows;
        Channels = channels;
        Eps = Literal.F(eps);
        InvChannels = Literal.F(1.0 / channels);
        int slots = (channels + 31) / 32;
        if (slots <= MaxCachedSlots)
        {
            Slots = Enumerable.Range(0, slots).Select(k => new RowSlot(k, 32 * k, 32 * k + 32 <= channels)).ToArray();
        }
    }

    /// <summary>Rows (one warp each).</summary>
    public long Rows { get; }

    /// <summary>Row length.</summary>
    public int Channels { get; }

    /// <summary>eps as a float literal.</summary>
    public string Eps { get; }

    /// <summary>1/C as a float literal.</summary>
    public string InvChannels { get; }

    /// <summary>The register slots, empty when the row is too long to cache.</summary>
    public IReadOnlyList<RowSlot> Slots { get; } = [];

    /// <summary>Whether the row stays in registers.</summary>
    public bool Cached => Slots.Count > 0;

    /// <summary>Blocks: rows over warps per block.</summary>
    public long Blocks => (Rows + Warps - 1) / Warps;
}

/// <summary>
/// LayerNorm over axis 1 of NCHW at each (n, h, w). Threads run along positions (32 per block, coalesced across the
/// warp) and the warps of a block split the channels; the partial sums meet in shared memory and one warp adds them
/// in a fixed order.
/// </summary>
public sealed class LayerNormFirstModel : CudaKernelModel
{
    /// <summary>
    /// Builds the model for an input of <paramref name="batch"/> images of <paramref name="channels"/> planes.
    /// </summary>
    public LayerNormFirstModel(string name, int threads, long batch, int channels, long plane, double eps)
        : base(name, "layer_norm", threads, batch * channels * plane)
    {
        Channels = channels;
        Plane = plane;
        Positions = batch * plane;
        ImageSize = channels * plane;
        Eps = Literal.F(eps);
        InvChannels = Literal.F(1.0 / channels);
    }

    /// <summary>Channels (normalised axis).</summary>
    public int Channels { get; }

    /// <summary>H·W.</summary>
    public long Plane { get; }

    /// <summary>N·H·W positions.</summary>
    public long Positions { get; }

    /// <summary>C·H·W.</summary>
    public long ImageSize { get; }

    /// <summary>eps as a float literal.</summary>
    public string Eps { get; }

    /// <summary>1/C as a float literal.</summary>
    public string InvChannels { get; }

    /// <summary>Blocks of 32 positions.</summary>
    public long Blocks => (Positions + 31) / 32;
}
