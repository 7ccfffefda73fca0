using System.Globalization;
using System.Text;
using ShiftWise.CodegenCuda;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;
using ShiftWise.Passes;
using ShiftWise.Runtime.Cuda;

namespace ShiftWise.Gpu.Tests;

/// <summary>
/// The CUDA grads of conv2d and linear (kernels and cuBLAS calls) on a real GPU, at sw-fmnist's training shapes
/// (batch 8): every distinct conv2d and linear grad node of the training graph, as a one-node graph with random
/// inputs, against the float64 reference (relative L2 ≤ 1e-5 per output, TF32 off) and bit-identical on a second
/// run. Skipped, with the reason, where there is no GPU. Errors go to $SWC_GPU_RESULTS/conv-grad-errors.md when set.
/// </summary>
public sealed class ConvGradGpuTests
{
    [Fact]
    public void TheConvAndLinearGradsOfSwFmnistMatchTheReferenceAndRepeatBitForBit()
    {
        if (!CudaDevice.Available) Assert.Skip(CudaDevice.MissingReason!);
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
        var o = ShiftWiseV2Options.FashionMnist with { Batch = 8 };
        var m = ShiftWiseV2.Build(o, "fmnist", DType.F32, new TrainingForm());
        var g = AutodiffBuilder.Build(m.Graph, ShiftWiseV2.Loss).Graph;
        var types = g.ValueTypes();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var rows = new StringBuilder("| node | grad of | wrt | inputs | relative L2 (worst output) |\n");
        rows.Append("|---|---|---|---|---|\n");
        double worst = 0;
        int n = 0, seed = 0;
        foreach (var node in g.Nodes.Where(x => x.Op is Grad { Of: Conv2d or Linear }))
        {
            var ins = node.Inputs.Distinct().Select(i => new ValueDecl(i, types[i])).ToArray();
            if (!seen.Add(node.Op + string.Join(",", ins.Select(i => i.Type.ToString())))) continue;
            var one = new Graph($"grad_gpu{n++}", ins, Array.Empty<ValueDecl>(), new[] { node },
                node.Outputs.ToArray());
            var plan = CudaCodegen.Lower(one, new CudaOptions(CudaDevice.Info.Arch));
            var inputs = ins.ToDictionary(i => i.Name, i => Random(i.Type, ++seed));
            var want = ReferenceExecutor.Run(one, new Dictionary<string, Tensor>(), inputs);
            using var ex = new CudaExecutor(plan, one, new Dictionary<string, Tensor>());
            var a = ex.Run(inputs);
            var b = ex.Run(inputs);
            double err = 0;
            foreach (var output in node.Outputs)
            {
                err = Math.Max(err, Error.RelL2(a[output], want[output]));
                Assert.Equal(a[output].ToDoubles(), b[output].ToDoubles());
            }
            worst = Math.Max(worst, double.IsNaN(err) ? double.PositiveInfinity : err);
            var op = (Grad)node.Op;
            rows.Append(CultureInfo.InvariantCulture, $"| {node.Name} | {op.Of.Name} | {op.Wrt} | " +
                $"{string.Join(", ", ins.Select(i => i.Type))} | {err:E2} |\n");
        }
        var text = $"# conv2d and linear grads of sw-fmnist (batch 8) on {CudaDevice.Info.Name}\n\n{n} nodes; worst " +
            $"relative L2 {worst:E2}\n\n" + rows;
        if (Environment.GetEnvironmentVariable("SWC_GPU_RESULTS") is { Length: > 0 } dir)
        {
            Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, "conv-grad-errors.md"), text);
        }
        TestContext.Current.SendDiagnosticMessage(text);
        Assert.True(n >= 10, $"only {n} grad nodes");
        Assert.True(worst <= 1e-5, $"worst relative L2 {worst:E2}");
    }

    private static Tensor Random(TensorType t, int seed)
    {
        var rng = new Random(seed);
        var v = new double[t.Shape.Elements];
        for (int i = 0; i < v.Length; i++) v[i] = rng.NextDouble() * 2 - 1;
        return Tensor.FromDoubles(t, v);
    }
}
