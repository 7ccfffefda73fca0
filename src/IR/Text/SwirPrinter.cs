using System.Globalization;
using System.Text;
using ShiftWise.IR.Ops;

namespace ShiftWise.IR.Text;

/// <summary>
/// Prints a graph as .swir text. The output is canonical: the same graph always prints the same bytes, and
/// <see cref="SwirParser"/> reads it back to an equal graph.
/// </summary>
public static class SwirPrinter
{
    /// <summary>The format version written on the first line.</summary>
    public const int FormatVersion = 1;

    /// <summary>The .swir text of a graph.</summary>
    public static string Print(Graph g)
    {
        var paramNames = g.Params.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        string Ref(string name) => (paramNames.Contains(name) ? "@" : "%") + Name(name);
        var sb = new StringBuilder();
        sb.Append("swir ").Append(FormatVersion).Append('\n');
        sb.Append("graph ").Append(Name(g.Name)).Append(" {\n");
        if (g.WeightsFile is not null)
        {
            sb.Append("  weights ").Append(Quote(g.WeightsFile)).Append('\n');
        }
        foreach (var v in g.Inputs)
        {
            sb.Append("  input %").Append(Name(v.Name)).Append(": ").Append(v.Type).Append('\n');
        }
        foreach (var v in g.Params)
        {
            sb.Append(v.Buffer ? "  buffer @" : "  param @").Append(Name(v.Name)).Append(": ").Append(v.Type)
                .Append('\n');
        }
        foreach (var n in g.Nodes)
        {
            sb.Append("  ");
            for (int i = 0; i < n.Outputs.Count; i++)
            {
                if (i > 0) sb.Append(", ");
                sb.Append('%').Append(Name(n.Outputs[i])).Append(": ").Append(n.Types[i]);
            }
            sb.Append(" = ").Append(n.Op.Name).Append('(');
            sb.Append(string.Join(", ", n.Inputs.Select(Ref))).Append(')');
            var w = new AttrWriter();
            n.Op.WriteAttrs(w);
            if (w.Items.Count > 0)
            {
                sb.Append(" {").Append(string.Join(", ", w.Items.Select(a => a.Name + "=" + a.Text))).Append('}');
            }
            sb.Append('\n');
        }
        sb.Append("  output ").Append(string.Join(", ", g.Outputs.Select(Ref))).Append('\n');
        sb.Append("}\n");
        return sb.ToString();
    }

    /// <summary>A name as written: bare when it is made of letters, digits, '_' and '.', quoted otherwise.</summary>
    public static string Name(string name) => IsBare(name) ? name : Quote(name);

    /// <summary>True when a name needs no quotes.</summary>
    public static bool IsBare(string name) =>
        name.Length > 0 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.');

    /// <summary>A double-quoted string with \" \\ \n \t and \uXXXX escapes for every other control character.</summary>
    public static string Quote(string s)
    {
        var sb = new StringBuilder("\"");
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (char.IsControl(c) || char.IsSurrogate(c))
                    {
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        sb.Append(c);
                    }
                    break;
            }
        }
        return sb.Append('"').ToString();
    }
}
