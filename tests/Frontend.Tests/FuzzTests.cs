using System.Text;
using ShiftWise.Frontend;
using ShiftWise.Frontend.IO;
using ShiftWise.IR;
using ShiftWise.IR.Text;
using ShiftWise.Tests.Shared;

namespace ShiftWise.Frontend.Tests;

/// <summary>
/// Mutation fuzzing of the file readers (tests/Shared/Fuzz.cs): every mutant of a valid file is read or refused with
/// the project's own exception and a message; no other exception, no hang, no allocation out of proportion to the
/// input. Seeded and bounded by an input count per reader (1500; 600 for .swir, whose inputs are 30 KB). Each test prints its counts.
/// </summary>
public sealed class FuzzTests(ITestOutputHelper output)
{
    private static byte[][] Fixtures(string pattern, string dir = "") =>
        Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "Fixtures", dir), pattern).Order(StringComparer.Ordinal)
            .Select(File.ReadAllBytes).ToArray();

    private void Check(FuzzReport r)
    {
        output.WriteLine(r.ToString());
        Assert.True(r.Faults.Count == 0, r.ToString());
        Assert.True(r.Tried == r.Requested, $"{r.Reader}: {r.Tried} of {r.Requested} inputs tried before the safety cap");
        Assert.True(r.Rejected > 0, $"{r.Reader}: no mutant was rejected, so the fuzzer did not reach the checks");
    }

    [Fact]
    public void Npy()
    {
        var seeds = Fixtures("*.npy");
        Assert.True(seeds.Length >= 5);
        Check(Fuzz.Run("npy", seeds, b => IO.Npy.Read(new MemoryStream(b), "fuzz.npy")));
    }

    [Fact]
    public void SafeTensors()
    {
        using var ms = new MemoryStream();
        IO.SafeTensors.Write(ms, new Dictionary<string, Tensor>
        {
            ["a.weight"] = Tensor.F32(new Shape(2, 3), [1, 2, 3, 4, 5, 6]),
            ["b"] = Tensor.F32(new Shape(4), [1, -1, 0.5f, 8]),
        });
        var seeds = Fixtures("*.safetensors").Append(ms.ToArray()).ToArray();
        Check(Fuzz.Run("safetensors", seeds, b => IO.SafeTensors.Read(new MemoryStream(b), "fuzz.safetensors")));
    }

    [Fact]
    public void Pth_zip_and_pickle()
    {
        var seeds = Fixtures("*.pth", "pth");
        Assert.True(seeds.Length >= 3);
        Check(Fuzz.Run("pth (zip + pickle)", seeds, b => Pth.Read(new MemoryStream(b), "fuzz.pth")));
    }

    [Fact]
    public void Idx()
    {
        var dir = Directory.CreateTempSubdirectory("swc-idx-").FullName;
        var seeds = new List<byte[]>();
        foreach (var (dims, n) in new[] { (new[] { 3, 4, 4 }, 48), (new[] { 5 }, 5) })
        {
            var f = Path.Combine(dir, $"a{n}.idx");
            IO.Idx.Write(f, new IdxArray(dims, Enumerable.Range(0, n).Select(i => (byte)i).ToArray()));
            seeds.Add(File.ReadAllBytes(f));
        }
        Check(Fuzz.Run("idx", seeds, b => IO.Idx.Read(new MemoryStream(b), b.Length)));
    }

    [Fact]
    public void Swir()
    {
        var args = new ModelArgs { Depths = [1, 1, 1, 1], Dims = [8, 16, 16, 32], KernelSize = [7, 5, 5, 3, 3], ImageSize = 24, NumClasses = 5 };
        var g = ModelSource.Load("sw-v2", args, withWeights: false).Graph;
        var seeds = new[] { Encoding.UTF8.GetBytes(SwirPrinter.Print(g)) };
        Check(Fuzz.Run("swir", seeds, b => SwirParser.Parse(Encoding.UTF8.GetString(b), "fuzz.swir"), count: 600, text: true));
    }
}
