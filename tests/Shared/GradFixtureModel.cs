using ShiftWise.Frontend;
using ShiftWise.Frontend.IO;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;

namespace ShiftWise.Tests.Shared;

/// <summary>
/// The grad fixtures' model (tools/fixtures/gen_grad_fixtures.py; Cli.Tests/Fixtures/grad, copied beside each test
/// assembly that links this file): sw-v2 with 10 classes, depths 1,1,1,1, dims 16,24,32,48, kernels 11,9,7,5,3, its
/// float32 weights, and its batch of 4 images at 48² with their labels. Shared by GradFixture (Cli.Tests),
/// TrainStepEmuTests (CudaEmu) and TrainGpuTests (Gpu).
/// </summary>
internal static class GradFixtureModel
{
    /// <summary>The fixture folder beside the test assembly.</summary>
    public static readonly string Dir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "grad");

    /// <summary>The input batch (float32, (4, 3, 48, 48)).</summary>
    public static Tensor X() => Npy.Read(Path.Combine(Dir, "x.npy"));

    /// <summary>The labels (int64, (4)).</summary>
    public static Tensor Labels() => Npy.Read(Path.Combine(Dir, "labels.npy"));

    /// <summary>The labels as the trainers take them.</summary>
    public static int[] LabelInts() => Labels().ToDoubles().Select(v => (int)v).ToArray();

    /// <summary>
    /// The model options of the fixture with its weights and input shape; the training form has batch statistics, drop
    /// path off and label smoothing <paramref name="smoothing"/>.
    /// </summary>
    public static ModelArgs Args(double smoothing) => new()
    {
        NumClasses = 10,
        Depths = [1, 1, 1, 1],
        Dims = [16, 24, 32, 48],
        KernelSize = [11, 9, 7, 5, 3],
        Weights = Path.Combine(Dir, "weights.safetensors"),
        InputShape = X().Shape,
        Training = new TrainingForm(smoothing, DropPath: false),
    };

    /// <summary>The training graph and the fixture's weights (<see cref="Args"/>), as `swc grad` loads them.</summary>
    public static LoadedModel Load(double smoothing) => ModelSource.Load("sw-v2", Args(smoothing), withWeights: true);
}
