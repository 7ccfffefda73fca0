using ShiftWise.Frontend.IO;
using ShiftWise.IR;
using static ShiftWise.Cli.Tests.SwcRun;

namespace ShiftWise.Cli.Tests;

/// <summary>--check-finite on run, grad and train: the first NaN or Inf is reported with the node that produced it.</summary>
public sealed class CheckFiniteTests
{
    // batch 2: grad keeps BN in batch-statistics mode, which needs more than one value per channel at stage 3 (1x1)
    private static string Input(float fill, int at = -1, float value = 0)
    {
        var data = Enumerable.Repeat(fill, 2 * 3 * 24 * 24).ToArray();
        if (at >= 0) data[at] = value;
        var path = Path.Combine(Directory.CreateTempSubdirectory("swc-finite-").FullName, "x.npy");
        Npy.Write(path, Tensor.F32(new Shape(2, 3, 24, 24), data));
        return path;
    }

    [Fact]
    public void Run_names_the_first_node_whose_output_overflows()
    {
        var huge = Input(3e38f);
        var (code, _, e) = Swc(["run", .. SwcRun.SmallSwV2, "--input", huge, "--check-finite"]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Matches(@"--check-finite: node %\S+ \(\w+\), output %\S+, holds (NaN|\+Inf|-Inf) at flat index \d+ of f32\[", e);
        Assert.Contains("every value before it was finite", e);
        // without the flag the run completes (the output is what it is)
        Assert.Equal(ExitCodes.Ok, Swc(["run", .. SwcRun.SmallSwV2, "--input", huge]).Code);
    }

    [Fact]
    public void Run_and_grad_name_a_nan_in_the_input()
    {
        var nan = Input(0.5f, at: 100, value: float.NaN);
        var (code, _, e) = Swc(["run", .. SwcRun.SmallSwV2, "--input", nan, "--check-finite"]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("--check-finite: the input %x holds NaN at flat index 100 of f32[2,3,24,24] (1 of 3456 values are not finite)", e);
        var labels = Path.Combine(Path.GetDirectoryName(nan)!, "y.npy");
        Npy.Write(labels, Tensor.FromDoubles(TensorType.Of(DType.I64, 2), [2, 0]));
        (code, _, e) = Swc(["grad", .. SwcRun.SmallSwV2, "--input", nan, "--labels", labels, "--output", Path.Combine(Path.GetDirectoryName(nan)!, "g.safetensors"), "--check-finite"]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("--check-finite: the input %x holds NaN at flat index 100", e);
        (code, _, e) = Swc(["run", .. SwcRun.SmallSwV2, "--input", nan, "--check-finite", "--device", "reference"]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("option --check-finite", e);
    }

    [Fact]
    public void Grad_names_the_first_node_of_the_forward_or_backward_pass_that_overflows()
    {
        var huge = Input(3e38f);
        var labels = Path.Combine(Path.GetDirectoryName(huge)!, "y.npy");
        Npy.Write(labels, Tensor.FromDoubles(TensorType.Of(DType.I64, 2), [1, 4]));
        var (code, _, e) = Swc(["grad", .. SwcRun.SmallSwV2, "--input", huge, "--labels", labels, "--output", Path.Combine(Path.GetDirectoryName(huge)!, "g.safetensors"), "--check-finite"]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Matches(@"--check-finite: node %\S+ \(\w+\), output %\S+, holds (NaN|\+Inf|-Inf)", e);
        Assert.False(File.Exists(Path.Combine(Path.GetDirectoryName(huge)!, "g.safetensors")));
    }

    [Fact]
    public void Train_stops_at_the_first_non_finite_value_of_a_diverging_run()
    {
        Assert.SkipUnless(FashionMnist.Installed(), "Fashion-MNIST is not installed (Debian's dataset-fashion-mnist)");
        var dir = Directory.CreateTempSubdirectory("swc-finite-train-").FullName;
        var cfg = Path.Combine(dir, "diverge.json");
        // a learning rate of 1e30 with SGD: the first update makes the weights overflow
        File.WriteAllText(cfg, $$"""
            {
              "model": { "preset": "sw-fmnist", "dims": [8, 16, 16, 16] },
              "data": { "limit_train": 64, "limit_test": 20 },
              "train": { "epochs": 1, "batch": 16, "seed": 3, "eval_batch": 20, "optimizer": "sgd", "lr": 1e30, "min_lr": 1e30,
                         "warmup_epochs": 0 },
              "out": "{{Path.Combine(dir, "run").Replace("\\", "/")}}"
            }
            """);
        var (code, _, e) = Swc(["train", cfg, "--check-finite"]);
        Assert.True(code == ExitCodes.BadInput, $"exit {code}:\n{e}");
        Assert.Matches(@"--check-finite: (the parameter %\S+|node %\S+ \(\w+\), output %\S+,) holds (NaN|\+Inf|-Inf)", e);
    }
}
