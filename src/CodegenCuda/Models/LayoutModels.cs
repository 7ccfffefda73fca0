using System.Globalization;
using ShiftWise.IR;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// channel_select on a tensor seen as [outer, channels, inner] (the selected axis in the middle), one thread per
/// element written. Forward: y[o, k, e] = x[o, indices[k], e]. Backward: dx[o, c, e] is the sum, over the positions
/// k that picked channel c in increasing order, of gy[o, k, e] (zero where no position picked it); the positions of
/// each channel are a table in constant memory (<see cref="Starts"/>, <see cref="Picks"/>), so a repeated index adds
/// up in a fixed order and no atomics are needed.
/// </summary>
public sealed class ChannelSelectModel : CudaKernelModel
{
    /// <summary>The most ints a kernel keeps in constant memory (32 KiB of the 64).</summary>
    public const int MaxTableInts = 8192;

    /// <summary>
    /// Builds the model for picking <paramref name="indices"/> out of <paramref name="channels"/> channels;
    /// <paramref name="grad"/> selects the backward (dx from gy).
    /// </summary>
    public ChannelSelectModel(string name, int threads, long outer, int channels, IReadOnlyList<int> indices,
        long inner, bool grad)
        : base(name, grad ? "grad_channel_select" : "channel_select", threads,
            outer * Math.Max(channels, indices.Count) * inner)
    {
        if (outer < 1 || inner < 1 || channels < 1) throw new ArgumentException("an empty channel_select");
        if (indices.Any(i => i < 0 || i >= channels))
        {
            throw new ArgumentException($"an index of [{string.Join(",", indices)}] is outside {channels} channels");
        }
        Outer = outer;
        Channels = channels;
        Picked = indices.Count;
        Inner = inner;
        Grad = grad;
        Total = outer * (grad ? channels : indices.Count) * inner;
        if (Total < 1) throw new ArgumentException("a channel_select that writes nothing needs no kernel");
        Indices = List(indices);
        // positions k grouped by the channel they picked, each group in increasing k
        var picks = Enumerable.Range(0, indices.Count).OrderBy(k => indices[k]).ThenBy(k => k).ToArray();
        var starts = new int[channels + 1];
        foreach (int i in indices) starts[i + 1]++;
        for (int c = 0; c < channels; c++) starts[c + 1] += starts[c];
        Starts = List(starts);
        Picks = List(picks);
        MaxRepeat = Enumerable.Range(0, channels).Select(c => starts[c + 1] - starts[c]).DefaultIfEmpty(0).Max();
    }

    /// <summary>Product of the axes before the selected one.</summary>
    public long Outer { get; }

    /// <summary>Channels of the input (x, dx).</summary>
    public int Channels { get; }

    /// <summary>Channels of the output (y, gy): the number of indices.</summary>
    public int Picked { get; }

    /// <summary>Product of the axes after the selected one.</summary>
    public long Inner { get; }

    /// <summary>The backward kernel.</summary>
    public bool Grad { get; }

    /// <summary>Elements written (y forward, dx backward).</summary>
    public long Total { get; }

    /// <summary>The indices as a C initialiser list, wrapped.</summary>
    public string Indices { get; }

    /// <summary>For each input channel c, where its positions start in <see cref="Picks"/> (channels + 1).</summary>
    public string Starts { get; }

    /// <summary>The output positions grouped by the input channel they picked, each group increasing.</summary>
    public string Picks { get; }

    /// <summary>Length of the <see cref="Picks"/> array (at least 1, as a C array cannot be empty).</summary>
    public int PicksLength => Math.Max(1, Picked);

    /// <summary>Length of the <see cref="Indices"/> array (at least 1).</summary>
    public int IndicesLength => Math.Max(1, Picked);

    /// <summary>The most positions that picked one channel.</summary>
    public int MaxRepeat { get; }

    /// <summary>Ints as a C initialiser list, sixteen to a line ("0" for none).</summary>
    internal static string List(IReadOnlyList<int> values)
    {
        if (values.Count == 0) return "0";
        var lines = values.Chunk(16)
            .Select(c => string.Join(", ", c.Select(v => v.ToString(CultureInfo.InvariantCulture))));
        return string.Join(",\n    ", lines);
    }
}

/// <summary>
/// A copy between a tensor seen as [outer, part] and the block of the same shape at column
/// <see cref="Offset"/> of a tensor seen as [outer, whole]: concat's forward writes each input into its slice of the
/// output ("into"), its backward reads each input's gradient out of the output gradient ("from"). One thread per
/// element of the part, consecutive threads on consecutive addresses of both tensors.
/// </summary>
public sealed class SliceCopyModel : CudaKernelModel
{
    /// <summary>
    /// Builds the model: <paramref name="part"/> and <paramref name="whole"/> are the elements per outer index of the
    /// small and the big tensor (the concat axis's extent times the inner size), <paramref name="offset"/> the
    /// part's start in the big tensor's row.
    /// </summary>
    public SliceCopyModel(string name, int threads, long outer, long part, long whole, long offset, bool into)
        : base(name, into ? "concat" : "grad_concat", threads, outer * whole)
    {
        if (outer < 1 || part < 1 || offset < 0 || offset + part > whole)
        {
            throw new ArgumentException($"a slice of {part} at {offset} does not fit rows of {whole}");
        }
        Outer = outer;
        Part = part;
        Whole = whole;
        Offset = offset;
        Into = into;
        Total = outer * part;
    }

    /// <summary>Rows (product of the axes before the concat axis).</summary>
    public long Outer { get; }

    /// <summary>Elements per row of the small tensor.</summary>
    public long Part { get; }

    /// <summary>Elements per row of the big tensor.</summary>
    public long Whole { get; }

    /// <summary>Where the small tensor's row starts in the big tensor's row.</summary>
    public long Offset { get; }

    /// <summary>True: small into big (forward); false: big into small (backward).</summary>
    public bool Into { get; }

    /// <summary>Elements copied.</summary>
    public long Total { get; }
}

/// <summary>
/// One axis of a permute's generic kernel: the output coordinate along it runs over <see cref="Extent"/> and moves
/// the input offset by <see cref="InStride"/>.
/// </summary>
public sealed record PermuteAxis(long Extent, long InStride);

/// <summary>
/// An axis permutation, simplified first: size-1 axes are dropped and input axes that stay neighbours in the output
/// are merged. What is left is a copy, a batched transpose [B, P, Q] → [B, Q, P] ("tiled": a 32×32 tile through
/// shared memory per block, read and written along rows, so both sides are coalesced) or any other permutation
/// ("generic": one thread per output element, its coordinates turned into an input offset).
/// </summary>
public sealed class PermuteModel : CudaKernelModel
{
    /// <summary>Tile edge of the tiled transpose.</summary>
    public const int Tile = 32;

    /// <summary>
    /// Builds the model for permuting <paramref name="x"/> by <paramref name="perm"/> (output axis i is input axis
    /// perm[i]); <paramref name="kind"/> is permute, or grad_permute for a gradient.
    /// </summary>
    public PermuteModel(string name, string kind, int threads, Shape x, IReadOnlyList<int> perm)
        : base(name, kind, threads, x.Elements)
    {
        if (perm.Count != x.Rank || !perm.Order().SequenceEqual(Enumerable.Range(0, x.Rank)))
        {
            throw new ArgumentException($"[{string.Join(",", perm)}] is not a permutation of the axes of {x}");
        }
        Total = x.Elements;
        if (Total < 1) throw new ArgumentException("an empty permute needs no kernel");
        var (dims, p) = Simplify(x, perm);
        MergedDims = dims;
        MergedPerm = p;
        int r = dims.Length;
        bool transpose = r >= 2 && p[r - 1] == r - 2 && p[r - 2] == r - 1
            && Enumerable.Range(0, r - 2).All(i => p[i] == i);
        Mode = transpose ? "tiled" : "generic";
        Batch = transpose ? dims.Take(r - 2).Aggregate(1L, (a, d) => a * d) : 1;
        Rows = transpose ? dims[r - 2] : 0;
        Cols = transpose ? dims[r - 1] : 0;
        var strides = new long[r];
        long stride = 1;
        for (int d = r - 1; d >= 0; d--)
        {
            strides[d] = stride;
            stride *= dims[d];
        }
        // innermost output axis first, as the kernel peels coordinates off the flat output index
        Axes = Enumerable.Range(0, r).Reverse().Select(i => new PermuteAxis(dims[p[i]], strides[p[i]])).ToArray();
    }

    /// <summary>Elements of the tensor.</summary>
    public long Total { get; }

    /// <summary>The input's extents after dropping size-1 axes and merging.</summary>
    public IReadOnlyList<long> MergedDims { get; }

    /// <summary>The permutation of the merged axes.</summary>
    public IReadOnlyList<int> MergedPerm { get; }

    /// <summary>The merged extents as text (for the kernel's comment).</summary>
    public string MergedDimsText => string.Join(", ", MergedDims.Select(d => d.ToString(CultureInfo.InvariantCulture)));

    /// <summary>The merged permutation as text.</summary>
    public string MergedPermText => string.Join(", ", MergedPerm.Select(d => d.ToString(CultureInfo.InvariantCulture)));

    /// <summary>"tiled" (a batched transpose) or "generic".</summary>
    public string Mode { get; }

    /// <summary>Batched transposes: the batch B.</summary>
    public long Batch { get; }

    /// <summary>Batched transposes: the input's rows P (the output's columns).</summary>
    public long Rows { get; }

    /// <summary>Batched transposes: the input's columns Q (the output's rows).</summary>
    public long Cols { get; }

    /// <summary>Batched transposes: tiles along the rows.</summary>
    public long RowTiles => (Rows + Tile - 1) / Tile;

    /// <summary>Batched transposes: tiles along the columns.</summary>
    public long ColTiles => (Cols + Tile - 1) / Tile;

    /// <summary>The tile's edge.</summary>
    public int TileEdge => Tile;

    /// <summary>Batched transposes: rows of the tile each pass of the block covers.</summary>
    public int RowsPerPass => Threads / Tile;

    /// <summary>Generic: the output's axes, innermost first (a copy has one axis).</summary>
    public IReadOnlyList<PermuteAxis> Axes { get; }

    /// <summary>Blocks to launch with <see cref="CudaKernelModel.Threads"/> threads.</summary>
    public long Blocks => Mode == "tiled" ? Batch * RowTiles * ColTiles : (Total + Threads - 1) / Threads;

    /// <summary>Drops size-1 axes and merges input axes i, i+1 that are neighbours, in order, in the output.</summary>
    internal static (long[] Dims, int[] Perm) Simplify(Shape x, IReadOnlyList<int> perm)
    {
        var kept = Enumerable.Range(0, x.Rank).Where(d => x[d] != 1).ToArray();
        if (kept.Length == 0) return ([1], [0]);
        // renumber the kept axes 0..n-1 and drop the others from the permutation
        var rank = new Dictionary<int, int>();
        for (int i = 0; i < kept.Length; i++) rank[kept[i]] = i;
        var p = perm.Where(rank.ContainsKey).Select(d => rank[d]).ToList();
        var dims = kept.Select(d => (long)x[d]).ToList();
        // output runs of consecutive input axes become one axis
        var groups = new List<List<int>>();
        foreach (int d in p)
        {
            if (groups.Count > 0 && groups[^1][^1] + 1 == d) groups[^1].Add(d);
            else groups.Add([d]);
        }
        var byFirst = groups.OrderBy(g => g[0]).ToList();
        var mergedDims = byFirst.Select(g => g.Aggregate(1L, (a, d) => a * dims[d])).ToArray();
        var mergedPerm = groups.Select(g => byFirst.IndexOf(g)).ToArray();
        return (mergedDims, mergedPerm);
    }
}
