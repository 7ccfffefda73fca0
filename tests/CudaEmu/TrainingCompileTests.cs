using ShiftWise.CodegenCuda;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Runtime.Train;

namespace ShiftWise.CudaEmu;

/// <summary>
/// The training graphs of ShiftWise_v2 on the CUDA target: every preset, sw-fmnist and sw-v2 options lower with no
/// node refused (forward with batch statistics, loss, every grad, the optimizer kernels); sw-tiny's training plan
/// compiles with the real NVRTC for compute_80 and compute_90 without local memory or atomics, and to CUBIN for sm_90,
/// and
/// <c>swc compile sw-tiny --pipeline training --target cuda</c> writes it.
/// </summary>
public sealed class TrainingCompileTests
{
    public static TheoryData<string, string> Models() => new()
    {
        { "sw-tiny", "" },
        { "sw-small", "" },
        { "sw-base", "" },
        { "sw-fmnist", "" },
        { "sw-tiny", "no-bn,drop-path" },
        { "sw-fmnist", "ghost0,no-layer-scale,drop-path" },
        { "sw-v2", "kernels" },
    };

    private static LoadedModel Load(string model, string options)
    {
        var o = options.Split(',', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
        var args = new ModelArgs
        {
            Batch = 2,
            ImageSize = model == "sw-fmnist" ? null : 64,
            NoBn = o.Contains("no-bn"),
            DropPath = o.Contains("drop-path") ? 0.1 : null,
            GhostRatio = o.Contains("ghost0") ? 0 : null,
            LayerScaleInit = o.Contains("no-layer-scale") ? 0 : null,
            Depths = o.Contains("kernels") ? [1, 2, 1, 1] : null,
            Dims = o.Contains("kernels") ? [20, 28, 36, 44] : null,
            KernelSize = o.Contains("kernels") ? [13, 11, 9, 7, 5] : null,
            Training = new Frontend.Zoo.TrainingForm(0.1),
        };
        // zero weights: the training pipeline (dce, autodiff) and the lowering read only the graph (drawing sw-base's
        // 89M random parameters would take most of the test's time)
        var m = ModelSource.Load(model, args, withWeights: false);
        return m with
        {
            Weights = m.Graph.Params.ToDictionary(p => p.Name,
                p => Tensor.Wrap(p.Type, new float[p.Type.Shape.Elements]), StringComparer.Ordinal),
        };
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void EveryNodeOfTheTrainingGraphLowers(string model, string options)
    {
        var m = Load(model, options);
        var plan = CudaTrainingPlan.Build(m, new OptimizerSettings("adamw", 1e-3, 0.05, Accumulate: 2), "sm_90");
        Assert.Contains(plan.Graph.Nodes, n => n.Op is Grad { Of: ShiftAdd });
        Assert.Contains(plan.Graph.Nodes, n => n.Op is Grad { Of: ChannelSelect });
        var lowered = plan.Plan.Steps.Select(s => s.Node).ToHashSet(StringComparer.Ordinal);
        var views = plan.Plan.Views.Keys.ToHashSet(StringComparer.Ordinal);
        foreach (var n in plan.Graph.Nodes)
        {
            Assert.True(lowered.Contains(n.Name) || n.Outputs.All(views.Contains) || n.Outputs.All(o =>
                    plan.Graph.ValueTypes()[o].Shape.Elements == 0),
                $"{n.Describe()} has no step and is not a view");
        }
        Assert.Contains(plan.Update, plan.Plan.Kernels);
        Assert.Contains(plan.Accumulate!, plan.Plan.Kernels);
        Assert.Equal(plan.Gradients.Count, plan.Flat.Segments.Count);
    }

    [Fact]
    public void SwcCompileWritesSwTinysTrainingKernelsCompiledForCompute80And90()
    {
        if (!NvrtcCompiler.Available) Assert.Skip(NvrtcCompiler.MissingReason);
        foreach (var arch in new[] { "sm_80", "sm_90" })
        {
            var dir = Directory.CreateTempSubdirectory("swc-train-cuda-").FullName;
            var r = CompileDriver.Run(new CompileRequest("sw-tiny", new ModelArgs(), "training", dir)
            {
                Target = "cuda",
                Arch = arch,
            });
            Assert.Contains(r.Optimized.Nodes, n => n.Op is Grad { Of: ShiftAdd });
            var cuda = r.Cuda!;
            Assert.NotNull(cuda.Compiled);
            Assert.Equal(cuda.Plan.Kernels.Count, cuda.Compiled!.Count);
            Assert.Equal(cuda.Plan.Kernels.Count, Directory.GetFiles(Path.Combine(dir, "ptx")).Length);
            foreach (var c in cuda.Compiled)
            {
                Assert.False(CudaKernelCompiler.UsesLocalMemory(c.Output.Ptx), $"{c.Kernel.Name} uses local memory");
                // determinism: no atomic or reduction instructions anywhere in the training step
                Assert.DoesNotMatch(@"\b(atom|red)\.", c.Output.Ptx);
            }
            // to CUBIN too (for one arch: the constant bank is 64 KiB on both): ptxas places the constant tables, and
            // PTX compiles even when they overflow the bank
            if (arch == "sm_90")
            {
                var bins = CudaKernelCompiler.CompileAll(cuda.Plan.Kernels, arch);
                Assert.All(bins, b => Assert.True(b.Output.IsCubin, $"{b.Kernel.Name} did not compile to CUBIN"));
            }
            Directory.Delete(dir, recursive: true);
        }
    }
}
