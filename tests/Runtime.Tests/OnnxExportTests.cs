using Microsoft.ML.OnnxRuntime;
using DenseTensor = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>;
using ShiftWise.Frontend;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Reference;
using Tensor = ShiftWise.IR.Tensor;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Export;

namespace ShiftWise.Runtime.Tests;

/// <summary>
/// swc's ONNX export (issue 23) run by ONNX Runtime (its .NET package, CPU) against the float64 reference executor of
/// the model as built (before any pass): the logits within relative L2 1e-4 (the bound; the export's float32
/// weights and ORT's float32 arithmetic, with reordered sums in the band convolutions, stay near 1e-6 on these
/// networks), at fixed and dynamic batch; and ONNX's own checker on the file.
/// </summary>
public sealed class OnnxExportTests
{
    private const double Bound = 1e-4;

    private static Tensor Input(TensorType t, int seed)
    {
        var rng = new Random(seed);
        return Tensor.FromDoubles(t, Enumerable.Range(0, checked((int)t.Shape.Elements))
            .Select(_ => rng.NextDouble() * 2 - 1).ToArray());
    }

    // the layer scales (".gamma") divided by 10, as CpuExecutorTests does: lively weights otherwise make the deep
    // networks chaotic, so float32 rounding alone moves the logits by more than the bound being tested
    private static LoadedModel Calm(LoadedModel m) => m with
    {
        Weights = m.Weights.ToDictionary(kv => kv.Key, kv => kv.Key.EndsWith(".gamma", StringComparison.Ordinal)
            ? Tensor.FromDoubles(kv.Value.Type, kv.Value.ToDoubles().Select(v => v / 10).ToArray())
            : kv.Value),
    };

    private static double[] Reference(string preset, LoadedModel m, Tensor x, int batch)
    {
        var o = ShiftWiseV2Options.Preset(preset)!;
        var m64 = ShiftWiseV2.Build(o with { Batch = batch }, dtype: DType.F64);
        return ReferenceExecutor.Run(m64.Graph, m.Weights, new Dictionary<string, Tensor> { ["x"] = x })
            [m64.Graph.Outputs[0]].ToDoubles();
    }

    private static double[] Ort(string path, Tensor x)
    {
        using var session = new InferenceSession(path);
        var input = new DenseTensor(x.ToDoubles().Select(v => (float)v).ToArray(),
            x.Shape.ToArray());
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(session.InputMetadata.Keys.Single(), input)]);
        return results.Single().AsEnumerable<float>().Select(v => (double)v).ToArray();
    }

    private static string Export(LoadedModel m, OnnxExportOptions o)
    {
        var path = Path.Combine(Path.GetTempPath(), $"swc-onnx-{Guid.NewGuid():N}.onnx");
        Driver.ExportOnnx(m, path, o, "test");
        return path;
    }

    [Fact]
    public void SwTinyRunsInOnnxRuntimeWithinTheBound()
    {
        var m = Calm(ModelSource.Load("sw-tiny", new ModelArgs { Seed = 21 }, withWeights: true));
        var path = Export(m, new OnnxExportOptions());
        try
        {
            var x = Input(m.Graph.Inputs[0].Type, 3);
            double err = Error.RelL2(Ort(path, x), Reference("sw-tiny", m, x, 1));
            TestContext.Current.TestOutputHelper?.WriteLine($"sw-tiny ONNX vs float64: relative L2 {err:E2}");
            Assert.True(err <= Bound, $"sw-tiny ONNX logits: relative L2 {err:E2}");
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>With --dynamic-batch one file serves batches 1, 3 and 8 (sw-fmnist: the nano-sized network).</summary>
    [Fact]
    public void DynamicBatchServesBatchesOneThreeAndEight()
    {
        var m = Calm(ModelSource.Load("sw-fmnist", new ModelArgs { Seed = 5 }, withWeights: true));
        var path = Export(m, new OnnxExportOptions(DynamicBatch: true));
        try
        {
            foreach (int batch in new[] { 1, 3, 8 })
            {
                var t = m.Graph.Inputs[0].Type;
                var x = Input(new TensorType(t.DType, t.Shape.With(0, batch)), batch);
                double err = Error.RelL2(Ort(path, x), Reference("sw-fmnist", m, x, batch));
                TestContext.Current.TestOutputHelper?.WriteLine($"sw-fmnist batch {batch}: relative L2 {err:E2}");
                Assert.True(err <= Bound, $"sw-fmnist ONNX batch {batch}: relative L2 {err:E2}");
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>ONNX's checker (python3-onnx; full check with shape inference) accepts the export.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void OnnxCheckerAcceptsTheExport(bool dynamic)
    {
        var python = PythonWithOnnx();
        Assert.SkipWhen(python is null, "no python3 with the onnx package (Debian's python3-onnx)");
        var m = ModelSource.Load("sw-fmnist", new ModelArgs(), withWeights: true);
        var path = Export(m, new OnnxExportOptions(DynamicBatch: dynamic));
        try
        {
            var (rc, output) = RunPython(python!, "import onnx, sys; m = onnx.load(sys.argv[1]); "
                + "onnx.checker.check_model(m, full_check=True); "
                + "print('checked', len(m.graph.node), 'nodes, opset', m.opset_import[0].version)", path);
            Assert.True(rc == 0, $"onnx.checker failed:\n{output}");
            Assert.Contains("checked", output, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void UnsupportedOpsetIsRefusedAndNothingIsWritten()
    {
        var m = ModelSource.Load("sw-fmnist", new ModelArgs(), withWeights: true);
        var path = Path.Combine(Path.GetTempPath(), $"swc-onnx-{Guid.NewGuid():N}.onnx");
        var e = Assert.Throws<IrException>(() => Driver.ExportOnnx(m, path, new OnnxExportOptions(Opset: 16), "t"));
        Assert.Contains("opset 16", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void TrainingOpsAreRefusedNamingTheNode()
    {
        var o = ShiftWiseV2Options.Preset("sw-fmnist")!;
        var m = ShiftWiseV2.Build(o with { Batch = 2 }, dtype: DType.F32, training: new TrainingForm());
        var weights = m.Graph.Params.ToDictionary(p => p.Name, p => Tensor.Zeros(p.Type), StringComparer.Ordinal);
        var e = Assert.Throws<IrException>(() => OnnxExporter.Export(m.Graph, weights, new OnnxExportOptions(), "t"));
        Assert.Contains("ONNX export", e.Message, StringComparison.Ordinal);
    }

    private static string? PythonWithOnnx()
    {
        foreach (var p in new[] { "/usr/bin/python3", "python3" })
        {
            try
            {
                if (RunPython(p, "import onnx").Rc == 0) return p;
            }
            catch (System.ComponentModel.Win32Exception)
            {
                // not there
            }
        }
        return null;
    }

    private static (int Rc, string Output) RunPython(string python, string code, params string[] args) =>
        ShiftWise.Tests.ChildProcess.Run(python, ["-c", code, .. args]);
}
