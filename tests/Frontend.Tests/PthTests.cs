using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using ShiftWise.Frontend.IO;
using ShiftWise.IR;
using static ShiftWise.Frontend.Tests.PthFiles;
using P = ShiftWise.Frontend.Tests.PickleWriter;

namespace ShiftWise.Frontend.Tests;

public sealed class PthTests
{
    private const string Label = "hand/model.pth";

    private static string Fixture(string name) => Samples.Fixture(Path.Combine("pth", name));

    /// <summary>Every fixture's tensors against the .npy files torch.load's own result was saved to.</summary>
    [Theory]
    [InlineData("bare_sd")]
    [InlineData("ckpt_v1")]
    [InlineData("lightning_p4")]
    [InlineData("bn_module")]
    public void ReadsFixturesBitExactly(string stem)
    {
        var actual = Pth.Read(Fixture(stem + ".pth"));
        var expectedFiles = Directory.GetFiles(Fixture(stem + ".expected"), "*.npy");
        Assert.Equal(expectedFiles.Length, actual.Count);
        foreach (var file in expectedFiles)
        {
            string name = Path.GetFileName(file);
            var expected = Npy.Read(file);
            if (name.EndsWith(".bf16.npy", StringComparison.Ordinal))
            {
                var t = actual[name[..^".bf16.npy".Length]];
                Assert.Equal(DType.BF16, t.DType);
                Samples.AssertSame(expected, t.Cast(DType.F32));
            }
            else
            {
                Samples.AssertSame(expected, actual[name[..^".npy".Length]]);
            }
        }
    }

    [Fact]
    public void KeepsTheCheckpointsOrderAndDTypes()
    {
        var sd = Pth.Read(Fixture("bare_sd.pth"));
        Assert.Equal(["f32", "f64", "i64", "i32", "f16", "bf16", "scalar", "empty", "transposed", "shared.whole",
            "shared.offset", "shared.strided"], sd.Keys);
        Assert.Equal([DType.F32, DType.F64, DType.I64, DType.I32, DType.F16, DType.BF16], sd.Values.Take(6).Select(t => t.DType));
        Assert.Equal(new Shape(4, 3), sd["transposed"].Shape);
        Assert.Equal(100.0 + 4, sd["transposed"].ToDoubles()[1]); // element [0,1] of the transpose = [1,0] of the original
        Assert.Equal([1.5, 2.0, 2.5, 3.0], sd["shared.offset"].ToDoubles());
        Assert.Equal(new Shape(3, 2), sd["shared.strided"].Shape);
        Assert.Equal(Shape.Scalar, sd["scalar"].Shape);
        Assert.Equal(new Shape(0, 3), sd["empty"].Shape);
    }

    [Fact]
    public void ReadsTheModelEntryAndIgnoresTheOptimizer()
    {
        // ckpt_v1.pth's zip root is "ckpt_v1/"; a copy under another name keeps that root, so nothing may
        // depend on the file's current name.
        using var dir = new TempDir();
        File.Copy(Fixture("ckpt_v1.pth"), dir.File("renamed.pt"));
        var sd = Pth.Read(dir.File("renamed.pt"));
        Assert.Equal(["weight", "bias"], sd.Keys);
        Assert.Equal(new Shape(2, 3), sd["weight"].Shape);
    }

    [Fact]
    public void ReturnsNumBatchesTracked()
    {
        var sd = Pth.Read(Fixture("bn_module.pth"));
        var n = sd["1.num_batches_tracked"];
        Assert.Equal(TensorType.Of(DType.I64), n.Type);
        Assert.Equal([1L], (long[])n.Data);
    }

    [Fact]
    public void ReadsFromANonSeekableStream()
    {
        var bytes = File.ReadAllBytes(Fixture("bn_module.pth"));
        Assert.Equal(7, Pth.Read(new PipeStream(bytes), "pipe").Count);
    }

    private static PthException Reject(string path, params string[] fragments)
    {
        var e = Assert.Throws<PthException>(() => Pth.Read(path));
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Equal(path, e.File);
        foreach (var f in fragments)
        {
            Assert.Contains(f, e.Message);
        }
        return e;
    }

    [Fact]
    public void RejectsATruncatedFile() => Reject(Fixture("truncated.pth"), "corrupt or truncated zip");

    [Fact]
    public void RejectsACorruptCentralDirectory()
    {
        using var dir = new TempDir();
        var bytes = File.ReadAllBytes(Fixture("bn_module.pth"));
        int at = bytes.AsSpan().IndexOf("PK\u0001\u0002"u8);
        bytes.AsSpan(at, 4).Clear();
        File.WriteAllBytes(dir.File("cd.pth"), bytes);
        Reject(dir.File("cd.pth"), "corrupt or truncated zip");
    }

    [Theory]
    [InlineData(1)] // one contiguous tensor: read straight into the tensor
    [InlineData(2)] // a strided view: the storage is read whole, then copied
    public void RejectsAStorageWhoseChecksumIsWrong(long stride)
    {
        var bytes = Zip(OneTensor("FloatStorage", 4, 0, [2], [stride]),
            extra: ("archive/data/0", F32Bytes(1, 2, 3, 4))).ToArray();
        Assert.Equal(2, Pth.Read(new MemoryStream(bytes), Label)["w"].Length);
        int at = bytes.AsSpan().IndexOf(F32Bytes(1, 2, 3, 4));
        bytes[at + 13] ^= 1; // the last element, which the view itself never reads
        RejectZip(new MemoryStream(bytes), "archive/data/0 is corrupt: its CRC-32 is");
    }

    [Fact]
    public void KeepsAnUnknownGlobalsCallInertAndSaysWhatTheFileHolds() =>
        Reject(Fixture("evil_global.pth"), "no state_dict found: the checkpoint's entries are 'x' (posix.getcwd(...))");

    [Fact]
    public void ReadsTheWeightsPastAnArgsNamespace()
    {
        var sd = Pth.Read(Fixture("ckpt_with_args.pth"));
        Assert.Equal(["w"], sd.Keys);
        Assert.Equal([1.0, 1.0], sd["w"].ToDoubles());
    }

    [Fact]
    public void RejectsMissingEmptyAndNonZipFiles()
    {
        using var dir = new TempDir();
        Reject(dir.File("none.pth"), "cannot open");
        File.WriteAllBytes(dir.File("empty.pth"), []);
        Reject(dir.File("empty.pth"), "empty");
        File.WriteAllBytes(dir.File("legacy.pth"), [0x80, 0x02, 0x8a, 0x0a]);
        Reject(dir.File("legacy.pth"), "legacy checkpoint format");
        File.WriteAllBytes(dir.File("text.pth"), "hello world"u8.ToArray());
        Reject(dir.File("text.pth"), "does not start like one");
    }

    // ---- hand-built archives and pickles ----

    private static PthException RejectZip(MemoryStream zip, params string[] fragments)
    {
        var e = Assert.Throws<PthException>(() => Pth.Read(zip, Label));
        Assert.StartsWith(Label + ": ", e.Message);
        foreach (var f in fragments)
        {
            Assert.Contains(f, e.Message);
        }
        return e;
    }

    private static PthException RejectPickle(byte[] pickle, params string[] fragments) =>
        RejectZip(Zip(pickle), fragments);

    /// <summary>{'w': tensor} with the given storage and view, as torch.save lays it out.</summary>
    private static byte[] OneTensor(string storage, long numel, long offset, int[] size, long[] stride) =>
        new P().Op('}').Mark().Str("w").Tensor(storage, "0", numel, offset, size, stride).Op('u').Stop();

    [Fact]
    public void ReadsAHandBuiltBf16CheckpointUnderAnyRootName()
    {
        var pickle = new P().Op('}').Mark().Str("w").Tensor("BFloat16Storage", "k9", 2, 0, [2], [1]).Op('u').Stop();
        var sd = Pth.Read(Zip(pickle, "my model v2", ("my model v2/data/k9", [0xC0, 0x3F, 0x00, 0xC0]),
            ("my model v2/byteorder", "little"u8.ToArray())), Label);
        Assert.Equal([1.5, -2.0], sd["w"].ToDoubles());
    }

    [Fact]
    public void AcceptsNewObjOrderedDictAndLong1()
    {
        // OrderedDict via NEWOBJ; offset 1 encoded as LONG1; a second tensor reusing the memoised storage.
        var pickle = new P().Global("collections", "OrderedDict").Op(')').Raw(0x81).Mark()
            .Str("a").Tensor("FloatStorage", "0", 3, 1, [2], [1], long1Offset: true)
            .Op('u').Stop();
        var sd = Pth.Read(Zip(pickle, extra: ("archive/data/0", F32Bytes(1, 2, 3))), Label);
        Assert.Equal([2.0, 3.0], sd["a"].ToDoubles());
    }

    [Theory]
    [InlineData(new byte[] { (byte)'P' }, "pickle opcode PERSID (0x50) at byte 2 is not allowed")]
    [InlineData(new byte[] { (byte)'0' }, "POP (0x30)")]
    [InlineData(new byte[] { 0x97 }, "NEXT_BUFFER (0x97)")]
    [InlineData(new byte[] { (byte)'i', (byte)'o', (byte)'s' }, "INST (0x69) at byte 2: no newline")]
    [InlineData(new byte[] { 0xff }, "0xff (unknown)")]
    [InlineData(new byte[] { (byte)'s' }, "SETITEM (0x73) at byte 2 needs a value but the stack is empty")]
    [InlineData(new byte[] { (byte)'h', 5 }, "reads memo entry 5, which was never stored")]
    [InlineData(new byte[] { (byte)'X', 0xf0, 0xff, 0xff, 0xff }, "BINUNICODE (0x58) at byte 2 needs 4294967280 more")]
    [InlineData(new byte[] { 0x8d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f }, "BINUNICODE8")]
    [InlineData(new byte[] { (byte)'T', 0xff, 0xff, 0xff, 0xff }, "needs -1 more bytes")]
    [InlineData(new byte[] { (byte)'N' }, "without a STOP")]
    [InlineData(new byte[] { (byte)'N', (byte)'.', 0 }, "1 unexpected bytes after STOP")]
    [InlineData(new byte[] { (byte)'N', (byte)'N', (byte)'.' }, "2 values on the stack")]
    [InlineData(new byte[] { (byte)'(', (byte)'.' }, "unclosed MARK")]
    [InlineData(new byte[] { (byte)'t' }, "needs a MARK but none is open")]
    [InlineData(new byte[] { (byte)'}', (byte)'(', (byte)'K', 1, (byte)'s' }, "needs a value")] // item below a MARK
    [InlineData(new byte[] { (byte)'}', (byte)')', (byte)'K', 1, (byte)'s' }, "a tuple dict key is not supported")]
    [InlineData(new byte[] { (byte)']', (byte)'N', (byte)'R' }, "calls a list")]
    [InlineData(new byte[] { (byte)']', (byte)'K', 1, (byte)'b' }, "sets a int state on a list")]
    [InlineData(new byte[] { (byte)'K', 1, (byte)'Q' }, "expected ('storage', type, key, location, numel)")]
    [InlineData(new byte[] { (byte)']', (byte)'q', 0, (byte)'h', 0, (byte)'a', (byte)'.' }, "cyclic")]
    [InlineData(new byte[] { 0x80, 6 }, "unsupported pickle protocol 6")]
    [InlineData(new byte[] { (byte)'c', (byte)'o', (byte)'s' }, "no newline")]
    public void RejectsMalformedPickles(byte[] body, string fragment) =>
        RejectPickle([0x80, 2, .. body], fragment);

    [Fact]
    public void KeepsGlobalsOutsideTheWhitelistAsNamesOnly()
    {
        RejectPickle(new P().Global("builtins", "eval").Op(')').Op('R').Stop(),
            "the checkpoint holds a builtins.eval(...), not a dict of tensors");
        // Protocol 4 names globals through STACK_GLOBAL; the same whitelist applies.
        RejectPickle(new P().ShortStr("builtins").ShortStr("exec").Raw(0x93).Stop(), "a global 'builtins exec'");
        RejectPickle(new P().Global("torch", "BoolStorage").Stop(), "a global 'torch BoolStorage'");
        // A whitelisted global called wrongly is malformed, not inert.
        RejectPickle(new P().Global("torch._utils", "_rebuild_tensor_v2").Mark().Op('t').Op('R').Stop(),
            "REDUCE of torch._utils _rebuild_tensor_v2 at byte 37 with 0 arguments");
    }

    [Fact]
    public void RejectsDeepNesting()
    {
        var body = new List<byte> { 0x80, 2 };
        body.AddRange(Enumerable.Repeat((byte)']', 150));
        body.AddRange(Enumerable.Repeat((byte)'a', 149));
        body.Add((byte)'.');
        RejectPickle([.. body], "nests deeper than 100 levels");
    }

    [Fact]
    public void RejectsViewsOutsideTheirStorage()
    {
        RejectPickle(OneTensor("FloatStorage", 2, 0, [3], [1]), "reads element 2, past the end of the storage");
        RejectPickle(OneTensor("FloatStorage", 4, 1, [2, 2], [1, 2]), "reads element 4");
        RejectPickle(OneTensor("FloatStorage", 4, -1, [1], [1]), "storage_offset -1");
        RejectPickle(OneTensor("FloatStorage", 4, 0, [2], [-1]), "stride[0] = -1");
    }

    [Fact]
    public void RejectsStorageEntriesOfTheWrongSizeOrMissing()
    {
        var pickle = OneTensor("FloatStorage", 2, 0, [2], [1]);
        RejectZip(Zip(pickle, extra: ("archive/data/0", F32Bytes(1, 2, 3))),
            "archive/data/0 holds 12 bytes, but tensor 'w' declares it as a storage of 2 f32 elements (8 bytes)");
        RejectZip(Zip(pickle), "tensor 'w' refers to storage '0', but the archive has no archive/data/0");
        Assert.Equal([1.0, 2.0], Pth.Read(Zip(pickle, extra: ("archive/data/0", F32Bytes(1, 2))), Label)["w"].ToDoubles());
    }

    [Fact]
    public void RejectsBadArchiveLayouts()
    {
        var empty = new P().Op('}').Stop();
        RejectZip(Zip(null, extra: ("x/other.bin", [1])), "no <folder>/data.pkl entry", "'x/other.bin'");
        RejectZip(Zip(empty, "a", ("b/data.pkl", empty)), "2 top-level folders hold a data.pkl ('a/', 'b/')");
        RejectZip(Zip(empty, extra: ("archive/constants.pkl", empty)), "TorchScript");
        RejectZip(Zip(empty, extra: ("archive/byteorder", "big"u8.ToArray())), "byte order 'big'");
        Assert.Empty(Pth.Read(Zip(empty), Label));
    }

    [Fact]
    public void RejectsCheckpointsWithoutAStateDict()
    {
        RejectPickle(new P().Op(']').Stop(), "the checkpoint holds a list, not a dict of tensors");
        RejectPickle(new P().Op('}').Str("epoch").Op('K', 3).Op('s').Stop(),
            "no state_dict found: the checkpoint's entries are 'epoch' (int); expected tensors");
        RejectPickle(new P().Op('}').Str("model").Op('}').Str("x").Op('K', 3).Op('s').Op('s').Stop(),
            "checkpoint['model'] entry 'x' is a int, not a tensor");
    }
}
