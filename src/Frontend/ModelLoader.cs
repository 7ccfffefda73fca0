using ShiftWise.IR;
using ShiftWise.IR.Text;

namespace ShiftWise.Frontend;

/// <summary>Turns a MODEL argument of the command line into a graph.</summary>
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
}
