using System.Text.Json;
using ShiftWise.Frontend.IO;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Reference;

namespace ShiftWise.Frontend.Tests;

/// <summary>
/// A small ShiftWise_v2 through the reference executor against logits computed by PyTorch
/// (tools/fixtures/gen_sw_v2_golden.py with the pure-PyTorch SW layer of tools/fixtures/sw_torch.py): random float32-exact weights,
/// non-trivial BN statistics, about 30% of the 3×3 sub-kernels zero. Both sides compute in float64, so the bound
/// is relative L2 ≤ 1e-6 (the issue's; observed differences are at the 1e-14 level).
/// </summary>
public sealed class GoldenModelTests
{
    private static string Dir => Path.Combine(AppContext.BaseDirectory, "Fixtures", "sw_v2_golden");

    private static ShiftWiseV2Options Options(Shape input)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "options.json")));
        var j = doc.RootElement;
        int[] Ints(string n) => j.GetProperty(n).EnumerateArray().Select(e => e.GetInt32()).ToArray();
        return new ShiftWiseV2Options
        {
            InChans = j.GetProperty("in_chans").GetInt32(),
            NumClasses = j.GetProperty("num_classes").GetInt32(),
            Depths = Ints("depths"),
            Dims = Ints("dims"),
            KernelSize = Ints("kernel_size"),
            GhostRatio = j.GetProperty("ghost_ratio").GetDouble(),
            NPath = j.GetProperty("N_path").GetInt32(),
            NRep = j.GetProperty("N_rep").GetInt32(),
            Bn = j.GetProperty("bn").GetBoolean(),
            LayerScaleInit = j.GetProperty("layer_scale_init_value").GetDouble(),
            WidthFactor = j.GetProperty("width_factor").GetDouble(),
            Batch = input[0],
            Height = input[2],
            Width = input[3],
        };
    }

    [Fact]
    public void LogitsMatchPyTorch()
    {
        var x = Npy.Read(Path.Combine(Dir, "input.npy"));
        var model = ShiftWiseV2.Build(Options(x.Shape), dtype: DType.F64);
        var w = SafeTensors.Read(Path.Combine(Dir, "weights.safetensors"));
        ModelLoader.CheckWeights(model.Graph, w, "weights.safetensors");
        var zero = w.Where(kv => kv.Key.Contains(".LoRAs.", StringComparison.Ordinal))
            .Sum(kv => CountZeroFilters(kv.Value)) / (double)w.Where(kv => kv.Key.Contains(".LoRAs.", StringComparison.Ordinal))
            .Sum(kv => kv.Value.Shape[0]);
        Assert.InRange(zero, 0.25, 0.35); // the fixture really has ~30% zero sub-kernels

        var all = ReferenceExecutor.Run(model.Graph, w, new Dictionary<string, Tensor> { ["x"] = x }, keepAll: true);
        var stem = Npy.Read(Path.Combine(Dir, "stem.npy"));
        Assert.True(TestErr(all["downsample_layers.0.4"], stem) <= 1e-9, "stem differs");
        var stage0 = Npy.Read(Path.Combine(Dir, "stage0.npy"));
        Assert.True(TestErr(all["stages.0.0"], stage0) <= 1e-9, "stage 0 differs");
        var logits = Npy.Read(Path.Combine(Dir, "logits.npy"));
        double err = TestErr(all[model.Graph.Outputs[0]], logits);
        Assert.True(err <= 1e-6, $"logits: relative L2 {err:e3}");
    }

    private static int CountZeroFilters(Tensor t)
    {
        var v = t.ToDoubles();
        int per = (int)(t.Length / t.Shape[0]);
        return Enumerable.Range(0, t.Shape[0]).Count(i => v.AsSpan(i * per, per).ToArray().All(z => z == 0));
    }

    private static double TestErr(Tensor a, Tensor b)
    {
        Assert.Equal(b.Shape, a.Shape);
        return IR.Analysis.Error.RelL2(a, b);
    }
}
