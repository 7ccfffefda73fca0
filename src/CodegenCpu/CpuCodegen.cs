using ShiftWise.Codegen;
using ShiftWise.Passes.Lowering;

namespace ShiftWise.CodegenCpu;

/// <summary>A rendered C# kernel: its name, the class and method to call, the source, and its scratch size.</summary>
public sealed record CpuKernelSource(string Name, string ClassName, string Source, int ScratchFloats);

/// <summary>Renders kernel specs as C# for the CPU target.</summary>
public static class CpuCodegen
{
    /// <summary>The factorised lowering of an SW layer.</summary>
    public static CpuKernelSource SwFactorised(SwLayerSpec spec)
    {
        var m = new SwFactorisedCpuModel(spec);
        return new CpuKernelSource(m.Name, "ShiftWise.Generated." + m.ClassName,
            TemplateRenderer.Render("sw_factorised.cs.sbn", m), m.ScratchFloats);
    }

    /// <summary>
    /// The cross lowering of an SW layer with vectors of <paramref name="vectorWidth"/> floats (8 or 16).
    /// </summary>
    public static CpuKernelSource SwCross(SwLayerSpec spec, IReadOnlyDictionary<string, int>? tunables = null,
        int vectorWidth = 8)
    {
        var m = new SwCrossCpuModel(spec, tunables, vectorWidth);
        return new CpuKernelSource(m.Name, "ShiftWise.Generated." + m.ClassName,
            TemplateRenderer.Render("sw_cross.cs.sbn", m), m.ScratchFloats);
    }
}
