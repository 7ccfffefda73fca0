using ShiftWise.Frontend;
using ShiftWise.Frontend.IO;
using ShiftWise.IR;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// swc emit of a backbone (issue 23, --features 1,3; H ≠ W): the library returns both stage features back to back in
/// one buffer (SWC_OUTPUT_COUNT, swc_output_shape_at, swc_output_offset), and the example program, built with g++
/// against the mock CUDA runtime and run through the emulator, writes one .npy per feature that matches the float64
/// reference (relative L2 1e-5, as the classifier's emit test).
/// </summary>
public sealed class StandaloneBackboneEmitTests
{
    private static readonly ModelArgs Args = new()
    {
        Depths = [1, 1, 1, 1], Dims = [8, 16, 16, 32], KernelSize = [7, 5, 5, 3, 3], ImageSize = 24, ImageWidth = 40,
        Features = [1, 3], Batch = 2, Seed = 3,
    };

    [Fact]
    public void TheEmittedBackboneWritesEachFeatureAndMatchesTheReference()
    {
        if (!CudaEmulator.Available) Assert.Skip(CudaEmulator.MissingReason);
        using var project = new EmittedProject(Precision.Fp32, Args);
        var header = File.ReadAllText(Path.Combine(project.Tree, "include", "swc_model.h"));
        Assert.Contains("#define SWC_OUTPUT_COUNT 2", header, StringComparison.Ordinal);
        Assert.Contains("int64_t swc_output_offset(int index);", header, StringComparison.Ordinal);
        var src = ModelSource.Load("sw-v2", Args, withWeights: true);
        var inputs = SwLayers.Input(src.Graph, 11);
        var inPath = Path.Combine(project.Root, "input.npy");
        var outPath = Path.Combine(project.Root, "features.npy");
        Npy.Write(inPath, inputs[src.Graph.Inputs[0].Name].Cast(DType.F32));
        var (code, output) = Tools.Run(project.MockExample, [Path.Combine(project.Tree, "weights.bin"), inPath, outPath],
            TimeSpan.FromMinutes(5), new Dictionary<string, string> { ["SWC_MOCK_KERNELS"] = project.KernelList });
        Assert.True(code == 0, $"the example failed (exit {code}):\n{output}");
        var want = IR.Reference.ReferenceExecutor.Run(src.Graph, src.Weights, inputs);
        var types = src.Graph.ValueTypes();
        for (int i = 0; i < 2; i++)
        {
            var file = Path.Combine(project.Root, $"features_{i}.npy");
            Assert.Contains("wrote " + file, output, StringComparison.Ordinal);
            var got = Npy.Read(file);
            var name = src.Graph.Outputs[i];
            Assert.Equal(types[name].Shape, got.Shape);
            double err = IR.Analysis.Error.RelL2(got.ToDoubles(), want[name].ToDoubles());
            TestContext.Current.TestOutputHelper?.WriteLine($"{name} {got.Shape}: relative L2 {err:E2}");
            Assert.True(err <= 1e-5, $"{name}: relative L2 {err:E2} against the float64 reference");
        }
    }
}
