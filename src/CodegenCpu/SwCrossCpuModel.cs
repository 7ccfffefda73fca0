using ShiftWise.Passes.Lowering;

namespace ShiftWise.CodegenCpu;

/// <summary>
/// All index arithmetic of the CPU cross kernel, so that the template only lays out code. The input plane is copied
/// into a zero-bordered scratch P with μ columns and rows of padding before it and enough after it for the band and
/// for whole 8-wide vectors and whole row tiles; an output tile of <see cref="RowBlock"/> rows ×
/// <see cref="ColVectors"/> vectors stays in registers while both bands are applied.
/// </summary>
public sealed class SwCrossCpuModel
{
    /// <summary>Builds the model of a spec with the given tunables (defaults when null).</summary>
    public SwCrossCpuModel(SwLayerSpec spec, IReadOnlyDictionary<string, int>? tunables = null)
    {
        var t = tunables ?? SwCpuTunables.Defaults(spec);
        var s = spec.Op.Shift;
        Name = spec.NameAtBatch1;
        ClassName = "K_" + Name;
        Height = spec.Input[2];
        Width = spec.Input[3];
        Small = s.Small;
        Half = (s.Small - 1) / 2;
        BandWidth = s.N * s.Small;
        Mu = s.Big / 2;
        VectorsPerRow = (Width + 7) / 8;
        RowBlock = Math.Clamp(t["row_block"], 1, 4);
        ColVectors = Math.Clamp(t["col_vectors"], 1, VectorsPerRow);
        if (RowBlock * ColVectors > 12)
        {
            throw new ArgumentException($"a {RowBlock}x{ColVectors} tile needs more than 12 accumulators");
        }
        RowTiles = (Height + RowBlock - 1) / RowBlock;
        OutPitch = VectorsPerRow * 8;
        RowPitch = OutPitch + BandWidth - 1;
        PaddedRows = RowTiles * RowBlock + BandWidth - 1;
        CenterLo = Mu - Half;
        for (int j = 0; j < VectorsPerRow; j += ColVectors)
        {
            ColTiles.Add(new ColTile(j * 8, Math.Min(ColVectors, VectorsPerRow - j)));
        }
        foreach (var cv in ColTiles.Select(c => c.Vectors).Distinct().Order())
        {
            Variants.Add(new TileVariant(cv, Enumerable.Range(0, cv).ToArray()));
        }
        for (int r = 0; r < RowBlock + Small - 1; r++)
        {
            var pairs = Enumerable.Range(0, RowBlock).Where(i => r - i >= 0 && r - i < Small)
                .Select(i => new RowTap(i, r - i)).ToArray();
            HorizontalRows.Add(new HRow(r - Half + Mu, pairs));
        }
    }

    /// <summary>Kernel name (also the cache key's readable part).</summary>
    public string Name { get; }

    /// <summary>Generated class name.</summary>
    public string ClassName { get; }

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

    /// <summary>8-wide vectors per output row.</summary>
    public int VectorsPerRow { get; }

    /// <summary>Output rows per register tile.</summary>
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

    /// <summary>First row of the vertical band that lies in the centre (merged into the horizontal band).</summary>
    public int CenterLo { get; }

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
}

/// <summary>A column tile: first column and number of 8-wide vectors.</summary>
public sealed record ColTile(int Column, int Vectors);

/// <summary>A tile width and its vector indices.</summary>
public sealed record TileVariant(int Vectors, int[] Lanes);

/// <summary>Output row <paramref name="Row"/> of the tile takes horizontal-band row <paramref name="Tap"/>.</summary>
public sealed record RowTap(int Row, int Tap);

/// <summary>A P row (relative to the tile's first row) and the tile rows it feeds in the horizontal band.</summary>
public sealed record HRow(int Offset, RowTap[] Pairs);
