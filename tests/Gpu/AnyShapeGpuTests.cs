using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Reference;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Cuda;

namespace ShiftWise.Gpu.Tests;

/// <summary>
/// The input shape chosen at run time on the GPU (issue 23): one <see cref="AnyShapeModel"/> on the CUDA target runs a
/// small ShiftWise_v2 at 193 × 257, 32 × 32 and 64 × 96, and at batches 1, 2 and 5, each within relative L2 1e-5 of
/// the float64 reference (the CPU's measured 1.4e-7 to 4.7e-7, RunTimeShapeTests); a shape seen again reuses its
/// compiled model and compiles nothing, and every CUDA kernel of a shape planned again comes from memory.
/// </summary>
public sealed class AnyShapeGpuTests
{
    private static readonly ModelArgs Args = new()
    {
        Depths = [1, 1, 1, 1], Dims = [8, 16, 16, 32], KernelSize = [7, 5, 5, 3, 3], NumClasses = 5,
    };

    [Fact]
    public void SizesAndBatchesChosenAtRunTimeMatchTheReferenceOnTheGpu()
    {
        if (!CudaDevice.Available) Assert.Skip(CudaDevice.MissingReason!);
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
        var shapes = new[] { (1, 193, 257), (1, 32, 32), (2, 64, 96), (5, 64, 96), (1, 64, 96), (1, 32, 32) };
        using var any = new AnyShapeModel("sw-v2", Args, Driver.Target("cuda"), capacity: 8);
        var weights = ModelSource.Load("sw-v2", Args with { InputShape = new Shape(1, 3, 193, 257) }, true).Weights;
        for (int i = 0; i < shapes.Length; i++)
        {
            var (n, h, w) = shapes[i];
            var x = ModelSource.RandomInput(TensorType.Of(DType.F32, n, 3, h, w), (uint)i);
            var got = any.RunAll(x)[0].Value;
            var g = ModelSource.Load("sw-v2", Args with { InputShape = x.Shape }, withWeights: false).Graph;
            var want = ReferenceExecutor.Run(g, weights, new Dictionary<string, Tensor> { ["x"] = x })[g.Outputs[0]];
            double err = Error.RelL2(got.ToDoubles(), want.ToDoubles());
            TestContext.Current.SendDiagnosticMessage($"{x.Shape}: {any.History[^1]}; relative L2 {err:E2}");
            Assert.True(err <= 1e-5, $"{x.Shape}: relative L2 {err:E2}");
        }
        var last = any.History[^1];
        Assert.True(last.Reused, $"the second (1, 3, 32, 32) was planned again: {last}");
        Assert.Equal(5, any.History.Count(c => !c.Reused)); // 193x257, 32x32 and the three of 64x96
    }
}
