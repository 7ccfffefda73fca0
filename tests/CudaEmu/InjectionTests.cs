using System.Text;
using ShiftWise.CodegenCpu;
using ShiftWise.CodegenCuda;
using ShiftWise.CodegenCuda.Standalone;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes;
using ShiftWise.Passes.Lowering;

namespace ShiftWise.CudaEmu;

/// <summary>
/// Names read from a model file (values, parameters, nodes, the graph) never reach generated code as text: a model
/// whose every name holds quotes, newlines, comment markers, preprocessor lines, template markers and C++ or C# code
/// yields kernels (CUDA and C#), plans' kernel lists and standalone host code byte-identical to the same model with
/// plain names.
/// </summary>
public sealed class InjectionTests
{
    private static readonly string[] Hostile =
    [
        "\"); system(\"rm -rf ~\"); //",
        "*/ int evil = 1; /*",
        "// line comment\n#include <stdio.h>\n",
        "}; __global__ void pwn() { }",
        "\\\" + System.IO.File.Delete(\"x\") + \"",
        "{{ name }}{{ for x in 1..9 }}x{{ end }}",
        "#define float double\n",
        "'\r\n\t\u2028é\uFEFF",
        "${env:HOME} `rm` $(id)",
        "<script>",
    ];

    private static (Graph G, Dictionary<string, Tensor> W) Renamed(Graph g, IReadOnlyDictionary<string, Tensor> w, Func<string, string> f)
    {
        ValueDecl D(ValueDecl d) => d with { Name = f(d.Name) };
        var nodes = g.Nodes.Select(n => n with
        {
            Inputs = new Vec<string>(n.Inputs.Select(f)),
            Outputs = new Vec<string>(n.Outputs.Select(f)),
        });
        var g2 = new Graph(f(g.Name), new Vec<ValueDecl>(g.Inputs.Select(D)), new Vec<ValueDecl>(g.Params.Select(D)),
            new Vec<Node>(nodes), new Vec<string>(g.Outputs.Select(f)));
        return (g2, w.ToDictionary(kv => f(kv.Key), kv => kv.Value, StringComparer.Ordinal));
    }

    private static (Graph G, IReadOnlyDictionary<string, Tensor> W) Optimised(Graph g, IReadOnlyDictionary<string, Tensor> w)
    {
        var ctx = new PassContext(g, w);
        new PassManager(Pipelines.Get("inference")).Run(ctx);
        return (ctx.Graph, ctx.Weights);
    }

    [Fact]
    public void Hostile_names_yield_byte_identical_kernels_and_host_code()
    {
        var args = new ModelArgs
        {
            Depths = [1, 1, 1, 1], Dims = [8, 16, 16, 32], KernelSize = [7, 5, 5, 3, 3], ImageSize = 24, NumClasses = 5, Batch = 2, Seed = 1,
        };
        var src = ModelSource.Load("sw-v2", args, withWeights: true);
        int i = 0;
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        string Evil(string n) => map.TryGetValue(n, out var e) ? e : map[n] = Hostile[i++ % Hostile.Length] + "#" + i + n;
        var (hg, hw) = Renamed(src.Graph, src.Weights, Evil);
        Assert.Contains(hg.Params, p => p.Name.Contains('\n', StringComparison.Ordinal));

        var (pg, pw) = Optimised(src.Graph, src.Weights);
        var (eg, ew) = Optimised(hg, hw);
        Assert.Equal(pg.Nodes.Count, eg.Nodes.Count);

        // CUDA: every kernel, by name and source, and the steps' kernels and launch shapes
        var plain = CudaCodegen.Lower(pg);
        var evil = CudaCodegen.Lower(eg);
        Assert.Equal(plain.Kernels.Select(k => (k.Name, k.Source)), evil.Kernels.Select(k => (k.Name, k.Source)));
        Assert.Equal(plain.Steps.Select(Shape), evil.Steps.Select(Shape));
        foreach (var k in evil.Kernels) Assert.DoesNotContain("#", k.Source.Replace("#define", "", StringComparison.Ordinal)
            .Replace("#ifndef", "", StringComparison.Ordinal).Replace("#endif", "", StringComparison.Ordinal).Replace("#pragma", "", StringComparison.Ordinal));

        // the CPU target's generated C#: both SW lowerings of every SW layer
        var pn = pg.Nodes.Where(n => n.Op is FusedShiftWise).ToArray();
        var en = eg.Nodes.Where(n => n.Op is FusedShiftWise).ToArray();
        Assert.Equal(4, pn.Length);
        var pt = pg.ValueTypes();
        var et = eg.ValueTypes();
        for (int k = 0; k < pn.Length; k++)
        {
            var a = SwLayerSpec.Of(pn[k], pt[pn[k].Inputs[0]].Shape);
            var b = SwLayerSpec.Of(en[k], et[en[k].Inputs[0]].Shape);
            Assert.Equal(CpuCodegen.SwCross(a).Source, CpuCodegen.SwCross(b).Source);
            Assert.Equal(CpuCodegen.SwFactorised(a).Source, CpuCodegen.SwFactorised(b).Source);
        }

        // the standalone project: every file but plan.json and weights.bin (which hold the names as data)
        var pd = Derived.ComputeAll(plain, pg, pw);
        var ed = Derived.ComputeAll(evil, eg, ew);
        var pf = StandaloneEmitter.Emit(plain, pg, pw, pd, "plain", "0.1.0");
        var ef = StandaloneEmitter.Emit(evil, eg, ew, ed, "plain", "0.1.0");
        Assert.Equal(pf.Select(f => f.Path), ef.Select(f => f.Path));
        foreach (var (a, b) in pf.Zip(ef).Where(t => t.First.Path is not ("plan.json" or "weights.bin")))
        {
            Assert.True(a.Bytes.AsSpan().SequenceEqual(b.Bytes), $"{a.Path} differs between plain and hostile names");
        }
        // and a hostile description reaches the README only as plain characters
        var readme = Encoding.UTF8.GetString(StandaloneEmitter.Emit(evil, eg, ew, ed, Hostile[2] + Hostile[0], "0.1.0")
            .Single(f => f.Path == "README.md").Bytes);
        Assert.DoesNotContain("#include", readme.Split('\n').First(l => l.StartsWith("Generated by", StringComparison.Ordinal)));
        Assert.DoesNotContain("\"", readme.Split('\n').First(l => l.StartsWith("Generated by", StringComparison.Ordinal)));
    }

    private static string Shape(PlanStep s) => s switch
    {
        KernelLaunch l => $"{l.Kernel} {l.Entry} {l.Grid} {l.Block} {l.SharedBytes} {l.Args.Count}",
        GemmCall g => $"gemm {g.TransA} {g.TransB} {g.M} {g.N} {g.K} {g.Batch} {g.Alpha} {g.Beta}",
        _ => "?",
    };
}
