using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes.Lowering;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// The CUDA tuning search space of an SW layer: pruned against the limits before compiling, the default first, and
/// every candidate computing the same layer (a sample of them run in the emulator against the reference).
/// </summary>
public sealed class SwCudaCandidatesTests
{
    private static SwLayerSpec Spec(Graph g)
    {
        var n = g.Nodes.First(n => n.Op is FusedShiftWise);
        return SwLayerSpec.Of(n, g.ValueTypes()[n.Inputs[0]].Shape);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(9)]
    public void CandidatesArePrunedToTheLimitsAndStartWithTheDefault(int seed)
    {
        var spec = Spec(SwLayers.Layer(seed, maxSize: 40).Graph);
        var all = SwCudaTunables.Candidates(spec);
        Assert.Equal(SwCudaTunables.Defaults(spec).OrderBy(kv => kv.Key), all[0].OrderBy(kv => kv.Key));
        Assert.Contains(all, c => c["lowering"] == 0);
        Assert.Contains(all, c => c["lowering"] == 1);
        Assert.Contains(all, c => c["lowering"] == 2);
        Assert.True(all.Count > 10, $"{all.Count} candidates");
        var def = all[0];
        var distance = all.Select(c => c.Count(kv => def[kv.Key] != kv.Value)).ToList();
        Assert.Equal(distance.Order(), distance); // the default's neighbourhood first
        foreach (var c in all)
        {
            Assert.All(c, kv => Assert.Contains(kv.Value, SwCudaTunables.Values[kv.Key]));
            int threads, shared, outputs;
            if (c["lowering"] == 0)
            {
                var m = new SwCrossCudaModel(spec, c, "k");
                (threads, shared, outputs) = (m.Threads, m.SharedBytes, c["rows_per_thread"]);
            }
            else if (c["lowering"] == 2)
            {
                // its registers are estimated directly (RegisterEstimate), at most 255 per thread
                var m = new SwCrossRbCudaModel(spec, c, "k");
                Assert.InRange(m.Threads, 32, 1024);
                Assert.True(m.SharedBytes <= SwCrossCudaModel.MaxShared);
                Assert.True(m.Registers <= 255 && (long)m.Threads * m.Registers <= SwCudaTunables.RegisterFile);
                continue;
            }
            else
            {
                var m = new SwFactorisedCudaModel(spec, c, "k");
                (threads, shared, outputs) = (m.Threads, m.SharedBytes, m.PerThread);
            }
            Assert.InRange(threads, 32, 1024);
            Assert.True(shared <= SwCrossCudaModel.MaxShared);
            Assert.True((long)threads * (32 + 4 * outputs) <= SwCudaTunables.RegisterFile);
        }
        // a device with less shared memory per block gets fewer candidates, every one within its limit
        var small = SwCudaTunables.Candidates(spec, maxShared: 8 * 1024);
        Assert.True(small.Count < all.Count);
        Assert.All(small.Skip(1).Where(c => c["lowering"] == 0), c => Assert.True(new SwCrossCudaModel(spec, c, "k").SharedBytes <= 8 * 1024));
    }

    [Fact]
    public void SampledCandidatesComputeTheSameLayer()
    {
        if (!CudaEmulator.Available) Assert.Skip(CudaEmulator.MissingReason);
        var (g, w) = SwLayers.Layer(5, maxSize: 20);
        var all = SwCudaTunables.Candidates(Spec(g));
        var rng = new Random(2);
        foreach (var c in all.Take(1).Concat(all.Skip(1).OrderBy(_ => rng.Next()).Take(5)))
        {
            var opts = new CudaOptions { Tunables = new Dictionary<string, IReadOnlyDictionary<string, int>> { [g.Nodes[0].Name] = c } };
            double err = EmuCheck.ErrorVsReference(g, w, SwLayers.Input(g, 5), opts);
            Assert.True(err <= 1e-5, $"relative L2 {err:E2} with {string.Join(", ", c.Select(kv => $"{kv.Key}={kv.Value}"))}");
        }
    }
}
