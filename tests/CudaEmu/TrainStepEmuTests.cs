using ShiftWise.CodegenCuda;
using ShiftWise.Frontend;
using ShiftWise.Frontend.IO;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Cuda;
using ShiftWise.Runtime.Train;

namespace ShiftWise.CudaEmu;

/// <summary>
/// A whole training step of the GPU trainer in emulation against the CPU trainer's: the grad fixtures' model
/// (sw-v2, depths 1,1,1,1, dims 16,24,32,48, kernels 11,9,7,5,3; its weights and batch of 4 at 48², label smoothing
/// 0.1) as <see cref="CudaTrainingPlan"/> lowers it: every kernel of the forward and backward plan in the emulator,
/// GEMMs by the emulator's reference GEMM, then the flat gradients and the fused AdamW (SGD) kernel over the flat
/// parameters with the plan's scalars. Gradients, running statistics, loss and updated weights match the CPU trainer's
/// within relative L2 1e-5 (float32 both sides, different summation orders).
/// </summary>
public sealed class TrainStepEmuTests
{
    private const double Tol = 1e-5;
    private static readonly string Dir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "grad");

    private static LoadedModel Model() => ModelSource.Load("sw-v2", new ModelArgs
    {
        NumClasses = 10,
        Depths = [1, 1, 1, 1],
        Dims = [16, 24, 32, 48],
        KernelSize = [11, 9, 7, 5, 3],
        Weights = Path.Combine(Dir, "weights.safetensors"),
        InputShape = Npy.Read(Path.Combine(Dir, "x.npy")).Shape,
        Training = new TrainingForm(0.1, DropPath: false),
    }, withWeights: true);

    [Theory]
    [InlineData("adamw")]
    [InlineData("sgd")]
    public void AStepInTheEmulatorMatchesTheCpuTrainer(string optimizer)
    {
        TestKernels.RequireEmulator();
        var m = Model();
        var x = Npy.Read(Path.Combine(Dir, "x.npy"));
        var labels = Npy.Read(Path.Combine(Dir, "labels.npy")).ToDoubles().Select(v => (int)v).ToArray();
        const double lr = 3e-3;
        var settings = new OptimizerSettings(optimizer, lr, 0.05);

        // the CPU trainer: one step and one update
        using var cpu = Driver.CompileTraining(m, settings, "cpu");
        var xf = x.ToDoubles().Select(v => (float)v).ToArray();
        double cpuLoss = cpu.Step(xf, labels, 0);
        var cpuGrads = cpu.Gradients();
        Assert.True(cpu.Update(lr));
        var cpuAfter = cpu.Weights();

        // the GPU trainer's plan in the emulator: forward and backward, then the update over the flat buffers
        var plan = CudaTrainingPlan.Build(m, settings, "sm_90");
        var types = plan.Graph.ValueTypes();
        var inputs = new Dictionary<string, Tensor>
        {
            [plan.Roles.Input] = x,
            [plan.Roles.Labels] = Tensor.FromDoubles(types[plan.Roles.Labels], labels.Select(v => (double)v).ToArray()),
        };
        if (plan.Roles.Step is { } s) inputs[s] = Tensor.FromDoubles(types[s], [0]);
        var outputs = EmuPlanRunner.Run(plan.Plan, plan.Graph, plan.Weights, inputs);

        double lossErr = Math.Abs(outputs[plan.Roles.Loss].ToDoubles()[0] - cpuLoss) / Math.Abs(cpuLoss);
        Assert.True(lossErr <= Tol, $"loss: emulator {outputs[plan.Roles.Loss].ToDoubles()[0]:R}, cpu {cpuLoss:R}");
        var worst = new List<(double Err, string What)>();
        foreach (var (param, grad) in plan.Gradients)
        {
            worst.Add((Error.RelL2(outputs[grad].ToDoubles(), cpuGrads[param].Select(v => (double)v).ToArray()),
                "gradient of " + param));
        }
        var running = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (param, value) in plan.Running)
        {
            running[param] = outputs[value];
            worst.Add((Error.RelL2(outputs[value], cpuAfter[param]), "running statistic " + param));
        }

        // the update: the flat parameters, the emulated gradients copied into their segments, zero state
        var f = plan.Flat;
        var p = new float[f.Total];
        var g = new float[f.Total];
        foreach (var (name, offset, _) in f.Segments)
        {
            ((float[])plan.Weights[name].Cast(DType.F32).Data).CopyTo(p, offset);
            ((float[])outputs[plan.Gradients.First(t => t.Param == name).Grad].Cast(DType.F32).Data).CopyTo(g, offset);
        }
        using var pb = EmuBuffer.From(p);
        using var gb = EmuBuffer.From(g);
        var state = plan.StateBuffers.Select(_ => EmuBuffer.From(new float[f.Total])).ToArray();
        using var hyper = EmuBuffer.From(plan.Hyper(lr, 1));
        using var module = CudaEmulator.Compile(plan.Update);
        module.Launch(plan.Update.Entries[0], OptimizerKernels.Grid(f), new(OptimizerKernels.Threads), 0,
            [pb.Ptr, gb.Ptr, .. state.Select(b => b.Ptr), hyper.Ptr]);
        var updated = pb.ToArray();
        foreach (var (name, offset, size) in f.Segments)
        {
            worst.Add((Error.RelL2(updated.AsSpan((int)offset, size).ToArray().Select(v => (double)v).ToArray(),
                cpuAfter[name].ToDoubles()), "updated " + name));
        }
        foreach (var b in state) b.Dispose();
        worst.Sort((a, b) => b.Err.CompareTo(a.Err));
        var report = string.Join("; ", worst.Take(5).Select(w => $"{w.What} {w.Err:E2}"));
        Assert.True(worst[0].Err <= Tol, $"worst: {report}");
        Assert.True(plan.Gradients.Count > 40 && plan.Running.Count > 20, "the step covers the whole model");
    }
}
