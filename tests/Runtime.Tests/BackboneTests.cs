using Microsoft.ML.OnnxRuntime;
using ShiftWise.Frontend;
using ShiftWise.Frontend.IO;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Reference;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Cpu;
using ShiftWise.Runtime.Export;
using Tensor = ShiftWise.IR.Tensor;

namespace ShiftWise.Runtime.Tests;

/// <summary>
/// Backbone mode (issue 23, --features): a small ShiftWise_v2 backbone on a 512 × 640 input (H ≠ W, stages at
/// 128×160 … 16×20) against the spec network's features (tools/fixtures/gen_backbone_fixtures.py: sw_torch.py with
/// out_indices 0-3, float64, stored as float32): relative L2 per feature map at most 1e-6 on the float64 reference
/// executor (the fixture's float32 storage is ~6e-8) and 1e-4 on the CPU target and through ONNX Runtime (float32).
/// </summary>
public sealed class BackboneTests
{
    private static readonly string Dir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "backbone");

    private static readonly ModelArgs Args = new()
    {
        Depths = [1, 1, 1, 1], Dims = [4, 8, 12, 16], KernelSize = [13, 11, 7, 5, 3], ImageSize = 512,
        ImageWidth = 640, Features = [0, 1, 2, 3], Weights = Path.Combine(Dir, "weights.safetensors"),
    };

    // the fixture's input: float32(1.5·sin(0.05·(c+1)·h + 0.031·w − 0.7·c)), evaluated in float64 as numpy does
    private static Tensor Input(TensorType t)
    {
        int c = t.Shape[1], h = t.Shape[2], w = t.Shape[3];
        var v = new double[c * h * w];
        for (int ci = 0; ci < c; ci++)
        for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
        {
            v[(ci * h + y) * w + x] = (float)(1.5 * Math.Sin(0.05 * (ci + 1) * y + 0.031 * x - 0.7 * ci));
        }
        return Tensor.FromDoubles(t, v);
    }

    private static void Check(IReadOnlyList<double[]> got, IReadOnlyList<Shape> shapes, double bound, string what)
    {
        Assert.Equal(4, got.Count);
        for (int i = 0; i < 4; i++)
        {
            var want = Npy.Read(Path.Combine(Dir, $"feature{i}.npy"));
            Assert.Equal(want.Shape, shapes[i]);
            double err = Error.RelL2(got[i], want.ToDoubles());
            TestContext.Current.TestOutputHelper?.WriteLine($"{what} feature {i} {shapes[i]}: relative L2 {err:E2}");
            Assert.True(err <= bound, $"{what} feature {i}: relative L2 {err:E2} > {bound:E0}");
        }
    }

    [Fact]
    public void TheGraphReturnsFourNormalisedStageOutputsAndNoHead()
    {
        var m = ModelSource.Load("sw-v2", Args, withWeights: true);
        var types = m.Graph.ValueTypes();
        Assert.Equal(["norm0", "norm1", "norm2", "norm3"], m.Graph.Outputs);
        Assert.Equal([new Shape(1, 4, 128, 160), new Shape(1, 8, 64, 80), new Shape(1, 12, 32, 40),
            new Shape(1, 16, 16, 20)], m.Graph.Outputs.Select(o => types[o].Shape));
        Assert.DoesNotContain(m.Graph.Params, p => p.Name.StartsWith("head.", StringComparison.Ordinal));
        Assert.Contains(m.Graph.Params, p => p.Name == "norm2.weight");
    }

    [Fact]
    public void ReferenceExecutorMatchesTheSpecNetworkWithin1e6()
    {
        var m = ModelSource.Load("sw-v2", Args, withWeights: true);
        var o = new ShiftWiseV2Options
        {
            Depths = [1, 1, 1, 1], Dims = [4, 8, 12, 16], KernelSize = [13, 11, 7, 5, 3], Height = 512, Width = 640,
            OutIndices = [0, 1, 2, 3],
        };
        var m64 = ShiftWiseV2.Build(o, dtype: DType.F64);
        var x = Input(m.Graph.Inputs[0].Type);
        var all = ReferenceExecutor.Run(m64.Graph, m.Weights, new Dictionary<string, Tensor> { ["x"] = x });
        var types = m64.Graph.ValueTypes();
        Check(m64.Graph.Outputs.Select(n => all[n].ToDoubles()).ToList(),
            m64.Graph.Outputs.Select(n => types[n].Shape).ToList(), 1e-6, "reference");
    }

    [Fact]
    public void CpuTargetMatchesTheSpecNetworkWithin1e4()
    {
        var m = ModelSource.Load("sw-v2", Args, withWeights: true);
        using var cm = Driver.Compile(m, new CpuTarget());
        var ys = cm.RunAll(Input(m.Graph.Inputs[0].Type));
        Check(ys.Select(y => y.Value.ToDoubles()).ToList(), ys.Select(y => y.Value.Shape).ToList(), 1e-4, "cpu");
    }

    [Fact]
    public void OnnxExportOfTheBackboneMatchesInOnnxRuntime()
    {
        var m = ModelSource.Load("sw-v2", Args, withWeights: true);
        var path = Path.Combine(Path.GetTempPath(), $"swc-backbone-{Guid.NewGuid():N}.onnx");
        try
        {
            Driver.ExportOnnx(m, path, new OnnxExportOptions(DynamicBatch: true), "test");
            using var session = new InferenceSession(path);
            var x = Input(m.Graph.Inputs[0].Type);
            var input = new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>(
                x.ToDoubles().Select(v => (float)v).ToArray(), x.Shape.ToArray());
            using var results = session.Run([NamedOnnxValue.CreateFromTensor("x", input)]);
            var byName = results.ToDictionary(r => r.Name, r => r.AsTensor<float>());
            Assert.Equal(["norm0", "norm1", "norm2", "norm3"], session.OutputMetadata.Keys);
            Check(m.Graph.Outputs.Select(n => byName[n].Select(v => (double)v).ToArray()).ToList(),
                m.Graph.Outputs.Select(n => new Shape(byName[n].Dimensions.ToArray())).ToList(), 1e-4, "onnx");
        }
        finally
        {
            File.Delete(path);
        }
    }
}
