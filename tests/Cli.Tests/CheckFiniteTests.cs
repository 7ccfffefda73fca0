using ShiftWise.Runtime.Compile;
using ShiftWise.Frontend;
using ShiftWise.Frontend.IO;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;
using ShiftWise.IR.Text;
using ShiftWise.Runtime;
using ShiftWise.Runtime.Cpu;
using ShiftWise.Runtime.Train;
using static ShiftWise.Cli.Tests.SwcRun;

namespace ShiftWise.Cli.Tests;

/// <summary>
/// --check-finite on run, grad and train: the first NaN or Inf is reported with the node and output that produced
/// it and its first flat index. The expected report is found without the checker: the same graph run with every node
/// output kept (so none is overwritten) and scanned in node order, each node's outputs in order.
/// </summary>
public sealed class CheckFiniteTests
{
    // batch 2: grad keeps BN in batch-statistics mode, which needs more than one value per channel at stage 3 (1x1)
    private static readonly Shape X = new(2, 3, 24, 24);

    private static string Input(float fill, int at = -1, float value = 0)
    {
        var data = Enumerable.Repeat(fill, (int)X.Elements).ToArray();
        if (at >= 0) data[at] = value;
        var path = Path.Combine(Directory.CreateTempSubdirectory("swc-finite-").FullName, "x.npy");
        Npy.Write(path, Tensor.F32(X, data));
        return path;
    }

    /// <summary>The small sw-v2 as SmallSwV2 and the commands' defaults make it (seed 0, lively weights).</summary>
    private static ModelArgs SmallArgs() => new()
    {
        Depths = [1, 1, 1, 1], Dims = [8, 16, 16, 32], KernelSize = [7, 5, 5, 3, 3], ImageSize = 24, NumClasses = 5,
        InputShape = X,
    };

    /// <summary>What the checker must say for the first non-finite value, and how many nodes produce one.</summary>
    private sealed record Expected(string Message, int BadNodes);

    /// <summary>
    /// Runs <paramref name="g"/> on an executor without the checker, every node output made a graph output so that
    /// all values survive the run, and finds the first NaN or infinity: in the inputs and parameters, then node by
    /// node in execution order and, within a node, output by output (float32 values only, as the checker).
    /// </summary>
    private static Expected FirstNonFinite(Graph g, IReadOnlyDictionary<string, Tensor> weights, bool generated,
        IReadOnlyDictionary<string, float[]> inputs)
    {
        var all = g with { Outputs = new Vec<string>(g.Nodes.SelectMany(n => n.Outputs).Distinct()) };
        var exec = new CpuExecutor(CpuLowering.Lower(all, weights, generated));
        foreach (var (name, v) in inputs) v.CopyTo(exec.InputBuffer(name));
        exec.RunBound();
        var types = g.ValueTypes();
        string? Scan(ReadOnlySpan<float> v, string where, TensorType t, string? after)
        {
            if (t.DType != DType.F32) return null;
            int first = -1, count = 0;
            for (int i = 0; i < v.Length; i++)
            {
                if (float.IsFinite(v[i])) continue;
                if (first < 0) first = i;
                count++;
            }
            if (first < 0) return null;
            var what = float.IsNaN(v[first]) ? "NaN" : v[first] > 0 ? "+Inf" : "-Inf";
            return $"--check-finite: {where} holds {what} at flat index {first} of {t} "
                + $"({count} of {v.Length} values are not finite)" + (after is null ? "" : "; " + after);
        }
        foreach (var i in g.Inputs)
        {
            if (Scan(inputs[i.Name], $"the input %{i.Name}", i.Type, null) is { } m) return new Expected(m, 0);
        }
        foreach (var p in g.Params)
        {
            var w = weights[p.Name].ToDoubles().Select(d => (float)d).ToArray();
            if (Scan(w, $"the parameter %{p.Name}", p.Type, null) is { } m) return new Expected(m, 0);
        }
        string? message = null;
        int bad = 0;
        foreach (var n in g.Nodes)
        {
            var found = n.Outputs.Select(o => Scan(exec.OutputBuffer(o), $"{n.Describe()}, output %{o},", types[o],
                "every value before it was finite")).FirstOrDefault(m => m is not null);
            if (found is null) continue;
            message ??= found;
            bad++;
        }
        return new Expected(message ?? throw new InvalidOperationException("every value is finite"), bad);
    }

    private static float[] Floats(string npy) => Npy.Read(npy).ToDoubles().Select(v => (float)v).ToArray();

    [Fact]
    public void Run_names_the_first_node_whose_output_overflows()
    {
        var huge = Input(3e38f);
        var (code, _, e) = Swc(["run", .. SmallSwV2, "--input", huge, "--check-finite"]);
        Assert.Equal(ExitCodes.BadInput, code);
        // run binds the inference pipeline's graph with this CPU's tuning cache
        var m = ModelSource.Load("sw-v2", SmallArgs(), withWeights: true);
        var cm = Driver.Compile(m, new CpuTarget(), new CompileOptions { Tuning = Runtime.Tune.CpuTuning.FromCache() });
        var want = FirstNonFinite(cm.Graph, cm.Weights, generated: true,
            new Dictionary<string, float[]> { ["x"] = Floats(huge) });
        // later nodes overflow too: reporting any but the first would differ
        Assert.True(want.BadNodes >= 2, want.ToString());
        Assert.Contains(want.Message, e);
        // without the flag the run completes (the output is what it is)
        Assert.Equal(ExitCodes.Ok, Swc(["run", .. SmallSwV2, "--input", huge]).Code);
    }

    [Fact]
    public void Run_and_grad_name_a_nan_in_the_input()
    {
        var nan = Input(0.5f, at: 100, value: float.NaN);
        var (code, _, e) = Swc(["run", .. SmallSwV2, "--input", nan, "--check-finite"]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("--check-finite: the input %x holds NaN at flat index 100 of f32[2,3,24,24] "
            + "(1 of 3456 values are not finite)", e);
        var labels = Path.Combine(Path.GetDirectoryName(nan)!, "y.npy");
        Npy.Write(labels, Tensor.FromDoubles(TensorType.Of(DType.I64, 2), [2, 0]));
        var grads = Path.Combine(Path.GetDirectoryName(nan)!, "g.safetensors");
        (code, _, e) = Swc(["grad", .. SmallSwV2, "--input", nan, "--labels", labels, "--output", grads,
            "--check-finite"]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("--check-finite: the input %x holds NaN at flat index 100", e);
        (code, _, e) = Swc(["run", .. SmallSwV2, "--input", nan, "--check-finite", "--device", "reference"]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("option --check-finite", e);
    }

    [Fact]
    public void Grad_names_the_first_node_of_the_forward_or_backward_pass_that_overflows()
    {
        var huge = Input(3e38f);
        var labels = Path.Combine(Path.GetDirectoryName(huge)!, "y.npy");
        Npy.Write(labels, Tensor.FromDoubles(TensorType.Of(DType.I64, 2), [1, 4]));
        var grads = Path.Combine(Path.GetDirectoryName(huge)!, "g.safetensors");
        var (code, _, e) = Swc(["grad", .. SmallSwV2, "--input", huge, "--labels", labels, "--output", grads,
            "--check-finite"]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.False(File.Exists(grads));
        // grad binds the training form's forward and backward graph (batch statistics, no drop path), generic kernels
        var args = SmallArgs() with { Training = new TrainingForm(0, DropPath: false) };
        var m = ModelSource.Load("sw-v2", args, withWeights: true);
        var t = Driver.CompileTraining(m);
        var inputs = new Dictionary<string, float[]> { ["x"] = Floats(huge), [ShiftWiseV2.Labels] = [1, 4] };
        foreach (var i in t.Graph.Inputs.Where(i => !inputs.ContainsKey(i.Name)))
        {
            inputs[i.Name] = new float[i.Type.Shape.Elements]; // the step, 0 as grad runs it
        }
        var want = FirstNonFinite(t.Graph, m.Weights, generated: false, inputs);
        Assert.True(want.BadNodes >= 2, want.ToString());
        Assert.Contains(want.Message, e);
    }

    /// <summary>
    /// A graph whose first non-finite value is the second output of a two-output node: a = x·s; the gradient of that
    /// product with x as the incoming gradient has outputs x·s (finite) and x·x (+Inf where x = 1e30, nowhere else);
    /// two later nodes read the infinite output. Written as a .swir with its weights, for swc run.
    /// </summary>
    private static string TwoOutputModel(int at, float big)
    {
        var dir = Directory.CreateTempSubdirectory("swc-finite-graph-").FullName;
        var t = new TensorType(DType.F32, new Shape(1, 2, 4, 4));
        var b = new GraphBuilder("two_outputs");
        var x = b.Input("x", t);
        var s = b.Param("s", t);
        var a = b.Apply1(new Binary(BinaryKind.Mul), "a", x, s);
        var d = b.Apply(new Grad(new Binary(BinaryKind.Mul), Vec.Of(0, 1), Vec.Of(0)), "d", x, s, a, x);
        var e = b.Apply1(new Binary(BinaryKind.Add), "e", d[1], a);
        var f = b.Apply1(new Unary(UnaryKind.Relu), "f", e);
        b.Output(f, d[0]);
        var g = b.Build() with { WeightsFile = "w.safetensors" };
        SafeTensors.Write(Path.Combine(dir, "w.safetensors"), new Dictionary<string, Tensor>
        {
            ["s"] = Tensor.F32(t.Shape, Enumerable.Range(0, 32).Select(i => 0.25f + i / 64f).ToArray()),
        });
        var model = Path.Combine(dir, "two.swir");
        File.WriteAllText(model, SwirPrinter.Print(g));
        var xs = Enumerable.Repeat(0.5f, 32).ToArray();
        xs[at] = big;
        Npy.Write(Path.Combine(dir, "x.npy"), Tensor.F32(t.Shape, xs));
        return model;
    }

    [Fact]
    public void Run_names_the_second_output_of_a_node_when_it_holds_the_first_bad_value()
    {
        const int at = 21;
        var model = TwoOutputModel(at, 1e30f);
        var x = Path.Combine(Path.GetDirectoryName(model)!, "x.npy");
        var (code, _, e) = Swc(["run", model, "--input", x, "--check-finite"]);
        Assert.Equal(ExitCodes.BadInput, code);
        // by construction: output 1 (x·x) of node d (named by its first output, d.d0) is +Inf at x's huge element only
        const string want = "--check-finite: node %d.d0 (grad), output %d.d1, holds +Inf at flat index 21 of "
            + "f32[1,2,4,4] (1 of 32 values are not finite); every value before it was finite";
        Assert.Contains(want, e);

        // and as the graph computes it, independently of both the checker and the CPU kernels: the float64 reference,
        // each node rounded to float32, first non-finite value in node and output order
        var g = ModelLoader.LoadGraph(model);
        var xs = new Dictionary<string, Tensor> { ["x"] = Npy.Read(x) };
        var values = ReferenceExecutor.Run(g, ModelLoader.LoadWeights(g, model), xs, keepAll: true);
        var first = g.Nodes.SelectMany(n => n.Outputs.Select(o => (Node: n, Out: o)))
            .First(p => values[p.Out].ToDoubles().Any(v => !double.IsFinite((float)v)));
        Assert.Equal(("d.d0", "d.d1"), (first.Node.Name, first.Out));
        Assert.Equal(at, Array.FindIndex(values["d.d1"].ToDoubles(), v => !double.IsFinite((float)v)));
        // the executor's own values agree, and e and f after it are not finite either
        var cm = Driver.Compile(ModelSource.Load(model, new ModelArgs(), withWeights: true), new CpuTarget());
        var exec = FirstNonFinite(cm.Graph, cm.Weights, true, new Dictionary<string, float[]> { ["x"] = Floats(x) });
        Assert.Equal(new Expected(want, 3), exec);

        // an input whose square is finite: the run completes
        var fine = TwoOutputModel(at, 1e10f);
        var fineX = Path.Combine(Path.GetDirectoryName(fine)!, "x.npy");
        (code, _, e) = Swc(["run", fine, "--input", fineX, "--check-finite"]);
        Assert.True(code == ExitCodes.Ok, e);
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
        // the step that diverges depends on the data pipeline (order, augmentation) and the optimizer state; the
        // checker's choice of the first bad node and output is tested exactly on run and grad, which share it
        Assert.Matches(@"--check-finite: (the parameter %\S+|node %\S+ \(\w+\), output %\S+,) holds (NaN|\+Inf|-Inf)", e);
    }
}
