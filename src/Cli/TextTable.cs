namespace ShiftWise.Cli;

/// <summary>A plain aligned text table: stable bytes for tests and pipes, readable in a terminal.</summary>
public static class TextTable
{
    /// <summary>Writes rows (the first is the header) with a rule under the header and before the last row.</summary>
    public static void Write(TextWriter o, IReadOnlyList<string[]> rows, int[] rightAligned, bool totalRow = true)
    {
        int cols = rows[0].Length;
        var width = new int[cols];
        foreach (var r in rows)
        {
            for (int c = 0; c < cols; c++) width[c] = Math.Max(width[c], r[c].Length);
        }
        string Line(string[] r) => string.Join("  ", r.Select((s, c) =>
            rightAligned.Contains(c) ? s.PadLeft(width[c]) : s.PadRight(width[c]))).TrimEnd();
        string rule = string.Join("  ", width.Select(w => new string('-', w)));
        for (int i = 0; i < rows.Count; i++)
        {
            if (i == 1 || (totalRow && i == rows.Count - 1 && rows.Count > 2)) o.WriteLine(rule);
            o.WriteLine(Line(rows[i]));
        }
    }
}
