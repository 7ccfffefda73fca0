using ShiftWise.Frontend;
using ShiftWise.Frontend.IO;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.Tests.Shared;

namespace ShiftWise.Cli.Tests;

/// <summary>
/// Fixtures/grad (tools/fixtures/gen_grad_fixtures.py) loaded the way `swc grad` loads it: the training form of the sw-v2 the
/// fixture describes (batch statistics, drop path off, no label smoothing), its float32 weights, input and labels,
/// and PyTorch's float64 results. Used where `swc grad` prints nothing to compare (the running statistics) and for
/// the reference executor run wholly in float64.
/// </summary>
internal static class GradFixture
{
    public static readonly string Dir = GradFixtureModel.Dir;

    /// <summary>The model options as `swc grad` takes them (the fixture README's, less the defaults).</summary>
    public static readonly string[] CliArgs =
        ["sw-v2", "--num-classes", "10", "--depths", "1,1,1,1", "--dims", "16,24,32,48", "--kernel-size", "11,9,7,5,3"];

    /// <summary>The input batch (float32, (4, 3, 48, 48)).</summary>
    public static Tensor X() => GradFixtureModel.X();

    /// <summary>The labels (int64, (4)).</summary>
    public static Tensor Labels() => GradFixtureModel.Labels();

    /// <summary>PyTorch's float64 gradients (state_dict keys) and loss.</summary>
    public static IReadOnlyDictionary<string, Tensor> Grads() =>
        SafeTensors.Read(Path.Combine(Dir, "grads.safetensors"));

    /// <summary>PyTorch's float64 BN running_mean / running_var after the one train-mode forward.</summary>
    public static IReadOnlyDictionary<string, Tensor> Running() =>
        SafeTensors.Read(Path.Combine(Dir, "running.safetensors"));

    /// <summary>The training graph and the fixture's weights, as GradCommand builds them.</summary>
    public static LoadedModel Load() => GradFixtureModel.Load(0);

    /// <summary>The reference executor's inputs: x and the labels.</summary>
    public static Dictionary<string, Tensor> Inputs() => new()
    {
        ["x"] = X(),
        [ShiftWiseV2.Labels] = Labels(),
    };

    /// <summary>
    /// <paramref name="g"/> with every float32 input, parameter and node result declared float64. The reference
    /// executor rounds each node's result to its declared type, so a float32 graph carries float32 round-off in every
    /// forward value; declared float64 the whole forward and backward pass is float64, comparable with PyTorch's
    /// float64 autograd to summation order.
    /// </summary>
    public static Graph InFloat64(Graph g)
    {
        static TensorType T(TensorType t) => t.DType == DType.F32 ? t with { DType = DType.F64 } : t;
        return g with
        {
            Inputs = new(g.Inputs.Select(d => d with { Type = T(d.Type) })),
            Params = new(g.Params.Select(d => d with { Type = T(d.Type) })),
            Nodes = new(g.Nodes.Select(n => n with { Types = new(n.Types.Select(T)) })),
        };
    }

    /// <summary>The L2 norm.</summary>
    public static double Norm(double[] a) => Math.Sqrt(a.Sum(v => v * v));

    /// <summary>‖a − b‖ / ‖b‖.</summary>
    public static double RelL2(double[] a, double[] b) => Norm(a.Zip(b, (p, q) => p - q).ToArray()) / Norm(b);
}
