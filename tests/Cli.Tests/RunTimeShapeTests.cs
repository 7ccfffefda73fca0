using ShiftWise.Frontend;
using ShiftWise.Frontend.IO;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Reference;
using static ShiftWise.Cli.Tests.SwcRun;

namespace ShiftWise.Cli.Tests;

/// <summary>
/// swc run and swc bench with the input shape chosen at run time (issue 23): one swc run runs a small ShiftWise_v2 on
/// seven image sizes (H ≠ W and sizes that are not multiples of 32, 32 × 32 to 224 × 224) and on batches 1, 2 and 5 of one size,
/// each output within relative L2 1e-5 of the float64 reference executor at that shape (measured 1.4e-7 to 4.7e-7: float32
/// sums over at most a few thousand terms per output, on O(1) values), and a new batch of a size already planned
/// compiles no kernel (the CPU's SW kernels take the batch as an argument); a shape seen again reuses its compiled model,
/// or, when swc run has dropped it (it holds four), is planned again without compiling.
/// </summary>
public sealed class RunTimeShapeTests
{
    // the small sw-v2 without its --image-size (the inputs decide)
    private static readonly string[] Small = [.. SmallSwV2.Take(Array.IndexOf(SmallSwV2, "--image-size")),
        .. SmallSwV2.Skip(Array.IndexOf(SmallSwV2, "--image-size") + 2)];

    private static readonly (string Name, int N, int H, int W)[] Inputs =
    [
        ("s32", 1, 32, 32), ("s193x257", 1, 193, 257), ("s224", 1, 224, 224), ("s64x96", 1, 64, 96),
        ("s97x61", 1, 97, 61), ("s40x200", 1, 40, 200), ("s129", 1, 129, 129), ("b2", 2, 64, 96), ("b5", 5, 64, 96),
        ("b5again", 5, 64, 96), ("again", 1, 32, 32),
    ];

    [Fact]
    public async Task SevenSizesAndThreeBatchesMatchTheReferenceInOneProcessCompilingEachKernelOnce()
    {
        var dir = Directory.CreateTempSubdirectory("swc-shapes-").FullName;
        var files = new List<string>();
        var xs = new Dictionary<string, Tensor>();
        for (int i = 0; i < Inputs.Length; i++)
        {
            var (name, n, h, w) = Inputs[i];
            var x = ModelSource.RandomInput(TensorType.Of(DType.F32, n, 3, h, w), (uint)i);
            xs[name] = x;
            files.Add(Path.Combine(dir, name + ".npy"));
            Npy.Write(files[^1], x);
        }
        List<string> args = ["run", .. Small, "--device", "cpu", "--output", Path.Combine(dir, "out")];
        foreach (var f in files) args.AddRange(["--input", f]);
        // a child process with an empty kernel cache: every kernel is compiled (never read from disk) the first time
        using var p = Start(Path.Combine(dir, "cache"), args.ToArray());
        var ct = TestContext.Current.CancellationToken;
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderrRead = p.StandardError.ReadToEndAsync(ct);
        using (var limit = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            limit.CancelAfter(TimeSpan.FromMinutes(5));
            await p.WaitForExitAsync(limit.Token);
        }
        var o = await stdout;
        var stderr = await stderrRead;
        Assert.True(p.ExitCode == 0, stderr + o);
        TestContext.Current.TestOutputHelper?.WriteLine(stderr);

        // the first size compiled its four SW kernels; batches 2 and 5 of a planned size compiled none; a shape seen
        // again reused its compiled model
        Assert.Contains($"{files[0]}: [1,3,32,32]: planned in", stderr);
        Assert.Matches(@"s32\.npy: \[1,3,32,32\]: planned in [0-9.]+ s, kernels: 4 compiled, 0 from disk, 0 in memory",
            stderr);
        Assert.Matches(@"b2\.npy: \[2,3,64,96\]: planned in [0-9.]+ s, kernels: 0 compiled, 0 from disk, 4 in memory",
            stderr);
        Assert.Matches(@"b5\.npy: \[5,3,64,96\]: planned in [0-9.]+ s, kernels: 0 compiled, 0 from disk, 4 in memory",
            stderr);
        Assert.Contains("b5again.npy: [5,3,64,96]: reused its compiled model", stderr);
        // swc run holds four compiled models: the first shape's was dropped, and is planned again from the kernels in
        // memory
        Assert.Matches(@"/again\.npy: \[1,3,32,32\]: planned in [0-9.]+ s, kernels: 0 compiled, 0 from disk, 4 in memory",
            stderr);
        // (other sizes may meet a kernel another size compiled: a stage map of the same size, channels and band)
        Assert.Matches(@"11 inputs of 9 shapes: 10 planned, 1 reused a compiled model; kernels \d+ compiled, 0 from disk, "
            + @"\d+ already in memory", o);

        var weights = ModelSource.Load("sw-v2", Args(Inputs[0]), withWeights: true).Weights;
        foreach (var (name, n, h, w) in Inputs)
        {
            var g = ModelSource.Load("sw-v2", Args((name, n, h, w)), withWeights: false).Graph;
            var want = ReferenceExecutor.Run(g, weights, new Dictionary<string, Tensor> { ["x"] = xs[name] });
            var got = Npy.Read(Path.Combine(dir, "out", name + ".npy"));
            Assert.Equal(new Shape(n, 5), got.Shape);
            double err = Error.RelL2(got.ToDoubles(), want[g.Outputs[0]].ToDoubles());
            TestContext.Current.TestOutputHelper?.WriteLine($"{name} ({n}, 3, {h}, {w}): relative L2 {err:E2}");
            Assert.True(err <= 1e-5, $"{name}: relative L2 {err:E2} against the float64 reference");
        }
    }

    [Fact]
    public void SeveralInputsRefuseAnNpyOutputAndTwoInputsOfOneName()
    {
        var dir = Directory.CreateTempSubdirectory("swc-shapes-").FullName;
        var a = Path.Combine(dir, "a.npy");
        Npy.Write(a, ModelSource.RandomInput(TensorType.Of(DType.F32, 1, 3, 32, 32), 1));
        Directory.CreateDirectory(Path.Combine(dir, "sub"));
        var a2 = Path.Combine(dir, "sub", "a.npy");
        File.Copy(a, a2);
        var b = Path.Combine(dir, "b.npy");
        File.Copy(a, b);
        var (code, _, e) = Swc(["run", .. Small, "--input", a, "--input", b, "--output", Path.Combine(dir, "y.npy")]);
        Assert.NotEqual(0, code);
        Assert.Contains("option --output: " + Path.Combine(dir, "y.npy") + ": 2 inputs write an .npz", e);
        (code, _, e) = Swc(["run", .. Small, "--input", a, "--input", a2]);
        Assert.NotEqual(0, code);
        Assert.Contains("option --input: two inputs are named a.npy", e);
        (code, _, e) = Swc(["run", .. Small, "--input", a, "--input", Path.Combine(dir, "photo.jpg")]);
        Assert.NotEqual(0, code);
        Assert.Contains("option --input: images are given as one --input", e);
        var c4 = Path.Combine(dir, "c4.npy");
        Npy.Write(c4, ModelSource.RandomInput(TensorType.Of(DType.F32, 1, 4, 32, 32), 1));
        (code, _, e) = Swc(["run", .. Small, "--input", a, "--input", c4]);
        Assert.NotEqual(0, code);
        Assert.Contains($"{c4}: input shape [1,4,32,32]: the model takes 4-d inputs of 3 channels", e);
    }

    private static ModelArgs Args((string Name, int N, int H, int W) i) => new()
    {
        Depths = [1, 1, 1, 1], Dims = [8, 16, 16, 32], KernelSize = [7, 5, 5, 3, 3], NumClasses = 5,
        InputShape = new Shape(i.N, 3, i.H, i.W),
    };

    [Fact]
    public void BenchMeasuresEachBatchInOneProcessCompilingNoKernelForALaterBatch()
    {
        var (code, o, e) = Swc(["bench", .. SmallSwV2, "--batches", "1,3", "--seconds", "0.05", "--top", "2"]);
        Assert.True(code == 0, e);
        Assert.Contains("batch 1, ", o);
        Assert.Contains("batch 3, ", o);
        Assert.Contains("2 batches in one process on cpu:", o);
        // batch 3 of an image size planned at batch 1: its SW kernels are the batch-1 ones, already in memory
        Assert.Matches(@"(?m)^\s+3\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+\s+0 of 4$", o);
        (code, _, e) = Swc(["bench", .. SmallSwV2, "--batches", "1,0"]);
        Assert.NotEqual(0, code);
        Assert.Contains("option --batches: 1,0: each must be 1 to 65536", e);
        (code, _, e) = Swc(["bench", .. SmallSwV2, "--batches", "1,2", "--batch", "2"]);
        Assert.NotEqual(0, code);
        Assert.Contains("option --batches: measures inference at each batch (not with --train, --json or --batch", e);
    }
}
