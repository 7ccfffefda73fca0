using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Reference;

namespace ShiftWise.CudaEmu;

/// <summary>Checks CUDA plans in emulation against the float64 reference executor.</summary>
public static class EmuCheck
{
    /// <summary>
    /// Lowers <paramref name="g"/> with <see cref="CudaCodegen.Lower"/>, runs the plan in emulation and the reference
    /// executor on the same inputs and weights, and returns the worst relative L2 error over the graph outputs.
    /// </summary>
    public static double ErrorVsReference(Graph g, IReadOnlyDictionary<string, Tensor> weights,
        IReadOnlyDictionary<string, Tensor> inputs, CudaOptions? options = null) =>
        ErrorVsReference(CudaCodegen.Lower(g, options), g, weights, inputs);

    /// <summary>The same for a plan already lowered from <paramref name="g"/> (or built by hand).</summary>
    public static double ErrorVsReference(CudaPlan plan, Graph g, IReadOnlyDictionary<string, Tensor> weights,
        IReadOnlyDictionary<string, Tensor> inputs, Action<string>? log = null)
    {
        var emu = EmuPlanRunner.Run(plan, g, weights, inputs, log);
        var reference = ReferenceExecutor.Run(g, weights, inputs);
        double worst = 0;
        foreach (var o in g.Outputs)
        {
            var e = Error.RelL2(emu[o], reference[o]);
            log?.Invoke($"output %{o}: relative L2 error {e:E3} vs the reference executor");
            worst = Math.Max(worst, double.IsNaN(e) ? double.PositiveInfinity : e);
        }
        return worst;
    }
}
