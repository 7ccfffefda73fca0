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
        var seeds = Fixtures("*.pth", "pth").Concat(Fixtures("*.pth", "ckpt")).ToArray();
        Assert.True(seeds.Length >= 10);
        Check(Fuzz.Run("pth (zip + pickle)", seeds, b => Pth.Read(new MemoryStream(b), "fuzz.pth")));
    }

    /// <summary>
    /// The pickle alone, mutated and wrapped in a valid archive each time (mutating the whole file mostly meets the
    /// zip's CRC checks first): torch.save's training checkpoints (inert Namespace, AdamW state, the EMA, a whole
    /// module, hostile reduces, a bool tensor) and a hand-built pickle of nested containers of inert records, each
    /// with its own storages, read with each checkpoint key in turn (none, the EMA, an inert entry, a missing one).
    /// </summary>
    [Fact]
    public void Pth_pickle_objects_and_checkpoint_keys()
    {
        string?[] keys = [null, "model_ema", "args", "hooks", "nope"];
        var families = new[] { "save_model", "save_model_p4", "whole_module", "reduce_hooks", "bool_extra" }
            .Select(f => PthFiles.Split(Path.Combine(AppContext.BaseDirectory, "Fixtures", "ckpt", f + ".pth")))
            .Append((NestedInertRecords(), [("archive/data/0", PthFiles.F32Bytes(1, 2))]))
            .ToArray();
        int accepted = 0;
        foreach (var (pickle, others) in families)
        {
            int calls = 0; // inputs are read one at a time, so the key goes round them in turn
            var r = Fuzz.Run("pth pickle (objects, keys)", [pickle], b =>
            {
                string? key = keys[calls++ % keys.Length];
                Pth.Read(PthFiles.Zip(b, extra: others), "fuzz.pth", key);
            }, count: 300);
            Check(r);
            accepted += r.Accepted;
        }
        Assert.True(accepted > 0, "no mutant was read whole, so the fuzzer did not reach the key selection");
    }

    /// <summary>{'model': {'w': tensor}, 'args': Namespace(groups=[{'fn': GELU()}, {Flag(1), frozenset()}],
    /// run=posix.system('x'), sub=defaultdict(list, k=deque([1])))}.</summary>
    private static byte[] NestedInertRecords() => new PickleWriter().Op('}').Mark()
        .Str("model").Op('}').Str("w").Tensor("FloatStorage", "0", 2, 0, [2], [1]).Op('s')
        .Str("args").Global("argparse", "Namespace").Op(')').Raw(0x81).Op('}').Mark()
        .Str("groups").Op(']').Mark().Op('}').Str("fn").Global("torch.nn", "GELU").Op(')').Raw(0x81).Op('s')
        .Raw(0x8f).Mark().Global("enum", "Flag").Int(1).Raw(0x85).Op('R').Mark().Raw(0x91).Raw(0x90).Op('e')
        .Str("run").Global("posix", "system").Str("x").Raw(0x85).Op('R')
        .Str("sub").Global("collections", "defaultdict").Global("builtins", "list").Raw(0x85).Op('R')
        .Str("k").Global("collections", "deque").Op(')').Op('R').Mark().Int(1).Op('e').Op('s')
        .Op('u').Op('b').Op('u').Stop();

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
