using ShiftWise.Passes.Lowering;

namespace ShiftWise.CodegenCpu;

/// <summary>
/// All index arithmetic of the CPU cross kernel, so that the template only lays out code. The input plane is copied
/// into a zero-bordered scratch P with μ columns and rows of padding before it and enough after it for the band and
/// for whole vectors and whole row tiles; an output tile of <see cref="RowBlock"/> rows × <see cref="ColVectors"/>
/// vectors of <see cref="VectorWidth"/> floats (8: Vector256, AVX2; 16: Vector512, AVX-512F) stays in registers
/// while both bands are applied. The horizontal band slides a window of vectors along the row, so each tap loads one
/// vector; the vertical band's weights are padded with RowBlock − 1 zero rows on both sides (see
/// <see cref="VerticalRows"/>) so that its inner loop has no branches.
/// </summary>
public sealed class SwCrossCpuModel
{
    /// <summary>
    /// Builds the model of a spec with the given tunables (defaults when null) for vectors of
    /// <paramref name="vectorWidth"/> floats (8 or 16).
    /// </summary>
    public SwCrossCpuModel(SwLayerSpec spec, IReadOnlyDictionary<string, int>? tunables = null, int vectorWidth = 8)
    {
        if (vectorWidth is not (8 or 16))
        {
            throw new ArgumentException($"vector width {vectorWidth}: the CPU kernels use 8 (AVX2) or 16 (AVX-512)");
        }
        var t = tunables ?? SwCpuTunables.Defaults(spec, vectorWidth);
        var s = spec.Op.Shift;
        Name = spec.NameAtBatch1;
        ClassName = "K_" + Name;
        VectorWidth = vectorWidth;
        Height = spec.Input[2];
        Width = spec.Input[3];
        Small = s.Small;
        Half = (s.Small - 1) / 2;
        BandWidth = s.N * s.Small;
        Mu = s.Big / 2;
        VectorsPerRow = (Width + vectorWidth - 1) / vectorWidth;
        RowBlock = Math.Clamp(t["row_block"], 1, 8);
        ColVectors = Math.Clamp(t["col_vectors"], 1, VectorsPerRow);
        if (RowBlock * ColVectors > MaxAccumulators(vectorWidth))
        {
            throw new ArgumentException(
                $"a {RowBlock}x{ColVectors} tile needs more than {MaxAccumulators(vectorWidth)} accumulators");
        }
        RowTiles = (Height + RowBlock - 1) / RowBlock;
        OutPitch = VectorsPerRow * vectorWidth;
        RowPitch = OutPitch + BandWidth - 1;
        PaddedRows = RowTiles * RowBlock + BandWidth - 1;
        for (int j = 0; j < VectorsPerRow; j += ColVectors)
        {
            ColTiles.Add(new ColTile(j * vectorWidth, Math.Min(ColVectors, VectorsPerRow - j)));
        }
        foreach (var cv in ColTiles.Select(c => c.Vectors).Distinct().Order())
        {
            Variants.Add(new TileVariant(cv, Enumerable.Range(0, cv).ToArray(), Enumerable.Range(0, cv - 1).ToArray()));
        }
        for (int r = 0; r < RowBlock + Small - 1; r++)
        {
            var pairs = Enumerable.Range(0, RowBlock).Where(i => r - i >= 0 && r - i < Small)
                .Select(i => new RowTap(i, r - i)).ToArray();
            HorizontalRows.Add(new HRow(r - Half + Mu, pairs));
        }
    }

    /// <summary>
    /// The vector width for a plane on a CPU whose widest vectors hold <paramref name="maxWidth"/> floats: 16 only
    /// where a row is wider than 8 (a row of 8 or fewer would leave most of a 16-wide vector idle).
    /// </summary>
    public static int WidthFor(SwLayerSpec spec, int maxWidth) => maxWidth == 16 && spec.Input[3] > 8 ? 16 : 8;

    /// <summary>Accumulators a tile may hold: 12 of AVX2's 16 registers, 24 of AVX-512's 32.</summary>
    public static int MaxAccumulators(int vectorWidth) => vectorWidth == 16 ? 24 : 12;

    /// <summary>Kernel name (also the cache key's readable part).</summary>
    public string Name { get; }

    /// <summary>Generated class name.</summary>
    public string ClassName { get; }

    /// <summary>Floats per vector: 8 or 16.</summary>
    public int VectorWidth { get; }

    /// <summary>The vector type: Vector256 or Vector512.</summary>
    public string Vec => VectorWidth == 16 ? "Vector512" : "Vector256";

    /// <summary>The unaligned load intrinsic.</summary>
    public string Load => VectorWidth == 16 ? "Avx512F.LoadVector512" : "Avx.LoadVector256";

    /// <summary>The store intrinsic.</summary>
    public string Store => VectorWidth == 16 ? "Avx512F.Store" : "Avx.Store";

    /// <summary>The fused multiply-add a·b + c.</summary>
    public string Fma => VectorWidth == 16 ? "Avx512F.FusedMultiplyAdd" : "Fma.MultiplyAdd";

    /// <summary>The ISA the kernel needs, for its comment.</summary>
    public string Isa => VectorWidth == 16 ? "AVX-512F" : "AVX2 + FMA";

    /// <summary>Plane height.</summary>
    public int Height { get; }

    /// <summary>Plane width.</summary>
    public int Width { get; }

    /// <summary>k.</summary>
    public int Small { get; }

    /// <summary>r = (k−1)/2.</summary>
    public int Half { get; }

    /// <summary>n·k.</summary>
    public int BandWidth { get; }

    /// <summary>⌊B/2⌋: left and top padding of P.</summary>
    public int Mu { get; }

    /// <summary>Vectors per output row.</summary>
    public int VectorsPerRow { get; }

    /// <summary>Output rows per register tile (1..8).</summary>
    public int RowBlock { get; }

    /// <summary>Vectors per register tile.</summary>
    public int ColVectors { get; }

    /// <summary>Row tiles per plane (the last may compute rows past the plane, discarded).</summary>
    public int RowTiles { get; }

    /// <summary>Floats per row of the output tile buffer.</summary>
    public int OutPitch { get; }

    /// <summary>Floats per row of P.</summary>
    public int RowPitch { get; }

    /// <summary>Rows of P.</summary>
    public int PaddedRows { get; }

    /// <summary>Rows of the padded vertical band per rep channel: BandWidth + 2·(RowBlock − 1).</summary>
    public int VerticalRows => BandWidth + 2 * (RowBlock - 1);

    /// <summary>Column tiles of a row.</summary>
    public List<ColTile> ColTiles { get; } = [];

    /// <summary>Distinct tile widths (one generated method each).</summary>
    public List<TileVariant> Variants { get; } = [];

    /// <summary>The horizontal band's input rows relative to a tile.</summary>
    public List<HRow> HorizontalRows { get; } = [];

    /// <summary>Rows of the tile as 0..RowBlock−1.</summary>
    public int[] Rows => Enumerable.Range(0, RowBlock).ToArray();

    /// <summary>Taps of the small kernel as 0..k−1.</summary>
    public int[] Taps => Enumerable.Range(0, Small).ToArray();

    /// <summary>Scratch floats per worker: P plus the output tile rows.</summary>
    public int ScratchFloats => PaddedRows * RowPitch + RowBlock * OutPitch;

    /// <summary>
    /// The vertical band (R × BandWidth × k, centre rows zero) laid out as the kernel reads it: RowBlock − 1 zero rows
    /// before and after each channel's band, so that every tile row reads a weight (zero outside the band).
    /// </summary>
    public float[] PadVertical(float[] vb)
    {
        int per = BandWidth * Small, reps = vb.Length / per, pad = (RowBlock - 1) * Small;
        var o = new float[reps * VerticalRows * Small];
        for (int r = 0; r < reps; r++)
        {
            Array.Copy(vb, r * per, o, r * VerticalRows * Small + pad, per);
        }
        return o;
    }
}

/// <summary>A column tile: first column and number of vectors.</summary>
public sealed record ColTile(int Column, int Vectors);

/// <summary>A tile width, its vector indices, and the indices the sliding window preloads (all but the last).</summary>
public sealed record TileVariant(int Vectors, int[] Lanes, int[] Window);

/// <summary>Output row <paramref name="Row"/> of the tile takes horizontal-band row <paramref name="Tap"/>.</summary>
public sealed record RowTap(int Row, int Tap);

/// <summary>A P row (relative to the tile's first row) and the tile rows it feeds in the horizontal band.</summary>
public sealed record HRow(int Offset, RowTap[] Pairs);
