using System.Security.Cryptography;
using System.Text;
using ShiftWise.CodegenCpu;
using ShiftWise.CodegenCuda;
using ShiftWise.CodegenCuda.Standalone;
using ShiftWise.Frontend;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes;
using ShiftWise.Passes.Lowering;
using ShiftWise.Tests.Shared;

namespace ShiftWise.Runtime.Tests;

/// <summary>
/// Process replay: every piece of generated code the compiler renders for the sample models — the CUDA kernels of
/// sw-tiny and sw-fmnist (both SW lowerings), the CPU target's generated C# SW kernels (both lowerings; the cross at
/// 8 and 16 floats a vector), the standalone project's host files (everything swc emit writes but weights.bin, which
/// is data), and the CUDA grad kernels of a small model's training graph — hashed (SHA-256) and compared with the committed list tests/replay/kernels.sha256.
/// A refactor must leave it unchanged; a change to generated code is made on purpose by rewriting the list with
/// scripts/replay-update.sh, so it shows in review.
/// </summary>
public sealed class ProcessReplayTests
{
    /// <summary>The environment variable that makes the test rewrite the list instead of comparing.</summary>
    public const string WriteVariable = "SWC_REPLAY_WRITE";

    /// <summary>The environment variable naming a folder to write every rendered file to (for a diff).</summary>
    public const string DumpVariable = "SWC_REPLAY_DUMP";

    private const string Arch = "sm_90";

    private static string ListFile()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "ShiftWise.Compiler.sln")))
            {
                return Path.Combine(d.FullName, "tests", "replay", "kernels.sha256");
            }
        }
        throw new InvalidOperationException($"no ShiftWise.Compiler.sln above {AppContext.BaseDirectory}");
    }

    private static PassContext Optimised(LoadedModel m)
    {
        var ctx = new PassContext(m.Graph, m.Weights);
        new PassManager(Pipelines.Get("inference")).Run(ctx);
        return ctx;
    }

    /// <summary>Everything rendered for one inference model, by "model/kind/file".</summary>
    private static IEnumerable<(string Name, byte[] Bytes)> Inference(string model)
    {
        var ctx = Optimised(ModelSource.Load(model, new ModelArgs(), withWeights: true));
        var g = ctx.Graph;
        var types = g.ValueTypes();
        var sw = g.Nodes.Where(n => n.Op is FusedShiftWise).ToArray();
        Assert.NotEmpty(sw);

        var plan = CudaCodegen.Lower(g, new CudaOptions(Arch));
        foreach (var k in plan.Kernels) yield return ($"{model}/cuda/{k.FileName}", Utf8(k.Source));
        // the other SW lowering (factorised) at its defaults, for every SW layer
        var fact = CudaCodegen.Lower(g, new CudaOptions(Arch)
        {
            Tunables = sw.ToDictionary(n => n.Name, n => FirstFactorised(SwLayerSpec.Of(n, types[n.Inputs[0]].Shape)),
                StringComparer.Ordinal),
        });
        foreach (var k in fact.Kernels.Where(k => plan.Kernels.All(p => p.FileName != k.FileName)))
        {
            yield return ($"{model}/cuda-factorised/{k.FileName}", Utf8(k.Source));
        }

        foreach (var spec in sw.Select(n => SwLayerSpec.Of(n, types[n.Inputs[0]].Shape)).DistinctBy(s => s.Name))
        {
            yield return ($"{model}/cpu/{spec.Name}_cross.cs", Utf8(CpuCodegen.SwCross(spec).Source));
            if (SwCrossCpuModel.WidthFor(spec, 16) == 16)
            {
                // the Vector512 kernel AVX-512 CPUs run (planes wider than 8 columns)
                yield return ($"{model}/cpu/{spec.Name}_cross512.cs", Utf8(CpuCodegen.SwCross(spec, null, 16).Source));
            }
            yield return ($"{model}/cpu/{spec.Name}_factorised.cs", Utf8(CpuCodegen.SwFactorised(spec).Source));
        }

        var weights = g.Params.ToDictionary(p => p.Name, p => ctx.Weights[p.Name], StringComparer.Ordinal);
        var derived = Derived.ComputeAll(plan, g, weights);
        foreach (var f in StandaloneEmitter.Emit(plan, g, weights, derived, model, "0.0.0").Where(f => f.Path != "weights.bin"))
        {
            yield return ($"{model}/standalone/{f.Path}", f.Bytes);
        }
    }

    /// <summary>The factorised lowering's first legal configuration (the candidates are ordered nearest-default first).</summary>
    private static IReadOnlyDictionary<string, int> FirstFactorised(SwLayerSpec spec) =>
        SwCudaTunables.Candidates(spec, 48 * 1024).First(c => c["lowering"] == 1);

    /// <summary>
    /// The CUDA kernels of the shift-add and conv2d grad nodes of a small ShiftWise_v2 training graph (the SW layer's
    /// depthwise convs, the stem, downsampling and SE convs), each lowered as a one-node graph.
    /// </summary>
    private static IEnumerable<(string Name, byte[] Bytes)> Training()
    {
        var o = new ShiftWiseV2Options
        {
            InChans = 2, NumClasses = 5, Depths = [1, 1, 1, 1], Dims = [8, 12, 16, 16], KernelSize = [7, 5, 5, 3, 3],
            Batch = 2, Height = 24, Width = 24, DropPathRate = 0,
        };
        var m = ShiftWiseV2.Build(o, "small", DType.F32, new TrainingForm());
        var g = AutodiffBuilder.Build(m.Graph, ShiftWiseV2.Loss).Graph;
        var types = g.ValueTypes();
        int lowered = 0;
        foreach (var n in g.Nodes.Where(n => n.Op is Grad { Of: ShiftAdd or Conv2d }))
        {
            var one = OpCatalog.OneNode("grad_node", n.Op, n.Inputs.Select(v => types[v]).ToArray());
            var plan = CudaCodegen.Lower(one, new CudaOptions(Arch));
            lowered++;
            foreach (var k in plan.Kernels) yield return ($"train-small/cuda/{k.FileName}", Utf8(k.Source));
        }
        Assert.True(lowered >= 8, $"only {lowered} grad nodes lowered");
    }

    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    private static SortedDictionary<string, string> Hashes()
    {
        var all = new SortedDictionary<string, string>(StringComparer.Ordinal);
        // SWC_REPLAY_DUMP=folder also writes every rendered file there, to diff two versions of the generator
        var dump = Environment.GetEnvironmentVariable(DumpVariable);
        foreach (var (name, bytes) in Inference("sw-tiny").Concat(Inference("sw-fmnist")).Concat(Training()))
        {
            var h = Convert.ToHexStringLower(SHA256.HashData(bytes));
            if (!string.IsNullOrEmpty(dump))
            {
                var path = Path.Combine(dump, name);
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                File.WriteAllBytes(path, bytes);
            }
            // the same file rendered twice (a kernel shared by layers) must be the same bytes
            if (all.TryGetValue(name, out var seen)) Assert.True(seen == h, $"{name} rendered twice with different bytes");
            all[name] = h;
        }
        return all;
    }

    [Fact]
    public void GeneratedCodeMatchesTheCommittedHashes()
    {
        var now = Hashes();
        var text = string.Concat(now.Select(kv => $"{kv.Value}  {kv.Key}\n"));
        var file = ListFile();
        if (Environment.GetEnvironmentVariable(WriteVariable) == "1")
        {
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            File.WriteAllText(file, text);
            return;
        }
        Assert.True(File.Exists(file), $"{file} is missing; write it with scripts/replay-update.sh");
        var committed = File.ReadAllLines(file).Where(l => l.Length > 0).Select(l => l.Split("  ", 2))
            .ToDictionary(p => p[1], p => p[0], StringComparer.Ordinal);
        var changed = now.Where(kv => committed.TryGetValue(kv.Key, out var h) && h != kv.Value).Select(kv => "changed: " + kv.Key);
        var added = now.Keys.Where(k => !committed.ContainsKey(k)).Select(k => "new: " + k);
        var gone = committed.Keys.Where(k => !now.ContainsKey(k)).Select(k => "gone: " + k);
        var diff = changed.Concat(added).Concat(gone).ToList();
        Assert.True(diff.Count == 0,
            $"{diff.Count} generated files differ from {file} (if the change is intended, run scripts/replay-update.sh " +
            $"and commit the list):\n{string.Join("\n", diff.Take(40))}");
    }
}
