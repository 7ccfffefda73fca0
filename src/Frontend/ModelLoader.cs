using ShiftWise.Frontend.IO;
using ShiftWise.IR;
using ShiftWise.IR.Text;

namespace ShiftWise.Frontend;

/// <summary>Turns a MODEL argument of the command line into a graph, and finds its weights.</summary>
public static class ModelLoader
{
    /// <summary>Loads a graph from a .swir file.</summary>
    public static Graph LoadGraph(string model)
    {
        if (model.EndsWith(".swir", StringComparison.OrdinalIgnoreCase))
        {
            if (!File.Exists(model)) throw new IrException($"{model}: no such file");
            return SwirParser.ParseFile(model);
        }
        throw new IrException($"unknown model '{model}': expected a .swir file");
    }

    /// <summary>
    /// Loads the weights named by a .swir file's <c>weights</c> statement (relative to the .swir file) and checks
    /// them against the graph's parameters.
    /// </summary>
    public static IReadOnlyDictionary<string, Tensor> LoadWeights(Graph g, string swirPath)
    {
        if (g.WeightsFile is null)
        {
            if (g.Params.Count == 0) return new Dictionary<string, Tensor>();
            throw new IrException($"{swirPath}: the graph has {g.Params.Count} parameters but no 'weights' file");
        }
        var file = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(swirPath))!, g.WeightsFile);
        var w = SafeTensors.Read(file);
        CheckWeights(g, w, file);
        return w;
    }

    /// <summary>
    /// Reports every missing, unexpected and mis-shaped tensor by name in one message; converts element types
    /// to the declared ones.
    /// </summary>
    public static void CheckWeights(Graph g, IReadOnlyDictionary<string, Tensor> w, string file)
    {
        var problems = new List<string>();
        var declared = g.Params.ToDictionary(p => p.Name, StringComparer.Ordinal);
        foreach (var p in g.Params)
        {
            if (!w.TryGetValue(p.Name, out var t)) problems.Add($"missing '{p.Name}' ({p.Type})");
            else if (!t.Shape.Equals(p.Type.Shape)) problems.Add($"'{p.Name}' has shape {t.Shape}, expected "
                + $"{p.Type.Shape}");
        }
        foreach (var name in w.Keys.Where(k => !declared.ContainsKey(k)).Order(StringComparer.Ordinal))
        {
            problems.Add($"unexpected '{name}'");
        }
        if (problems.Count > 0)
        {
            throw new IrException($"{file}: weights do not match graph '{g.Name}': " + string.Join("; ", problems));
        }
    }
}
