using System.Buffers.Binary;
using System.Text;
using ShiftWise.Frontend.IO;
using ShiftWise.IR;

namespace ShiftWise.Frontend.Tests;

public sealed class NpyTests
{
    private const string Label = "weights/x.npy";

    public static TheoryData<DType> NpyTypes => new() { DType.F32, DType.F64, DType.F16, DType.I32, DType.I64 };

    /// <summary>Builds a .npy image by hand: magic, version, length field, header text, data.</summary>
    private static byte[] Image(string dict, byte[] data, int major = 1, int minor = 0)
    {
        var header = Encoding.UTF8.GetBytes(dict + "\n");
        int lenSize = major == 1 ? 2 : 4;
        var ms = new MemoryStream();
        ms.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', (byte)major, (byte)minor]);
        var len = new byte[lenSize];
        if (major == 1)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(len, (ushort)header.Length);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(len, (uint)header.Length);
        }
        ms.Write(len);
        ms.Write(header);
        ms.Write(data);
        return ms.ToArray();
    }

    private static string Dict(string descr, string shape, string fortran = "False") =>
        $"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}";

    private static NpyException Reject(byte[] image, params string[] fragments)
    {
        var e = Assert.Throws<NpyException>(() => Npy.Read(new MemoryStream(image), Label));
        Assert.StartsWith(Label + ": ", e.Message);
        Assert.Equal(Label, e.File);
        foreach (var f in fragments)
        {
            Assert.Contains(f, e.Message);
        }
        return e;
    }

    [Theory]
    [MemberData(nameof(NpyTypes))]
    public void RoundTripsThroughAFile(DType t)
    {
        using var dir = new TempDir();
        var x = Samples.Of(t);
        Npy.Write(dir.File("x.npy"), x);
        Samples.AssertSame(x, Npy.Read(dir.File("x.npy")));
        Assert.Single(Directory.GetFiles(dir.Path)); // the temporary was renamed, not left behind
    }

    [Theory]
    [MemberData(nameof(NpyTypes))]
    public void RoundTripsThroughSeekableAndPipeStreams(DType t)
    {
        var x = Samples.Of(t);
        var ms = new MemoryStream();
        Npy.Write(ms, x);
        Samples.AssertSame(x, Npy.Read(new MemoryStream(ms.ToArray()), "mem"));
        Samples.AssertSame(x, Npy.Read(new PipeStream(ms.ToArray()), "pipe"));
    }

    [Fact]
    public void RoundTripsAScalar()
    {
        using var dir = new TempDir();
        var x = Tensor.Wrap(TensorType.Of(DType.F64), new[] { -2.75 });
        Npy.Write(dir.File("s.npy"), x);
        var y = Npy.Read(dir.File("s.npy"));
        Assert.Equal(0, y.Shape.Rank);
        Samples.AssertSame(x, y);
        Assert.Contains("'shape': ()", Encoding.Latin1.GetString(File.ReadAllBytes(dir.File("s.npy"))));
    }

    [Fact]
    public void RoundTripsAZeroSizeTensor()
    {
        var x = Tensor.Zeros(TensorType.Of(DType.I64, 3, 0, 2));
        var ms = new MemoryStream();
        Npy.Write(ms, x);
        var y = Npy.Read(new MemoryStream(ms.ToArray()), "z");
        Samples.AssertSame(x, y);
        Assert.Equal(0, y.Length);
    }

    [Fact]
    public void WritesNumpysVersion1HeaderLayout()
    {
        var ms = new MemoryStream();
        Npy.Write(ms, Tensor.F32(new Shape(5), 1, 2, 3, 4, 5));
        var bytes = ms.ToArray();
        Assert.Equal(1, bytes[6]);
        int headerLen = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8));
        Assert.Equal(0, (10 + headerLen) % 64);
        Assert.Equal(10 + headerLen + 20, bytes.Length);
        var header = Encoding.Latin1.GetString(bytes, 10, headerLen);
        Assert.Equal("{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", header.TrimEnd(' ', '\n'));
        Assert.EndsWith(" \n", header);
    }

    [Fact]
    public void OverwritesAnExistingFileAtomically()
    {
        using var dir = new TempDir();
        string path = dir.File("w.npy");
        File.WriteAllText(path, "old contents");
        Npy.Write(path, Tensor.F32(new Shape(2), 1, 2));
        Assert.Equal(new double[] { 1, 2 }, Npy.Read(path).ToDoubles());
        Assert.Single(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void RefusesToWriteBf16AndLeavesNoFile()
    {
        using var dir = new TempDir();
        string path = dir.File("b.npy");
        var e = Assert.Throws<NpyException>(() => Npy.Write(path, Samples.Of(DType.BF16)));
        Assert.Contains(path, e.Message);
        Assert.Contains("bf16", e.Message);
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void ReadsNumpyF4Matrix()
    {
        var t = Npy.Read(Samples.Fixture("f4_2x3.npy"));
        Assert.Equal(TensorType.Of(DType.F32, 2, 3), t.Type);
        Assert.Equal(new[] { -2f, -0.5f, 1f, 2.5f, 4f, 5.5f }, (float[])t.Data);
    }

    [Fact]
    public void ReadsNumpyF8Vector()
    {
        var t = Npy.Read(Samples.Fixture("f8_vec.npy"));
        Assert.Equal(TensorType.Of(DType.F64, 5), t.Type);
        var d = (double[])t.Data;
        Assert.Equal(new[] { 0.1, -2.5, 1e300, 0.0, 5e-324 }, d);
        Assert.True(double.IsNegative(d[3]));
    }

    [Fact]
    public void ReadsNumpyI4AndI8()
    {
        var i4 = Npy.Read(Samples.Fixture("i4_2x2.npy"));
        Assert.Equal(TensorType.Of(DType.I32, 2, 2), i4.Type);
        Assert.Equal(new[] { 1, -2, int.MaxValue, int.MinValue }, (int[])i4.Data);
        var i8 = Npy.Read(Samples.Fixture("i8_vec.npy"));
        Assert.Equal(TensorType.Of(DType.I64, 4), i8.Type);
        Assert.Equal(new[] { 1L, -1L, 1L << 62, long.MinValue }, (long[])i8.Data);
    }

    [Fact]
    public void ReadsNumpyF2ScalarEmptyAndVersion2()
    {
        var f2 = Npy.Read(Samples.Fixture("f2_vec.npy"));
        Assert.Equal(new[] { (Half)1, (Half)0.5, Half.MaxValue, Half.NegativeZero }, (Half[])f2.Data);
        var scalar = Npy.Read(Samples.Fixture("f4_scalar.npy"));
        Assert.Equal(TensorType.Of(DType.F32), scalar.Type);
        Assert.Equal(3.25f, ((float[])scalar.Data)[0]);
        var empty = Npy.Read(Samples.Fixture("i4_empty_0x3.npy"));
        Assert.Equal(TensorType.Of(DType.I32, 0, 3), empty.Type);
        var v2 = Npy.Read(Samples.Fixture("f4_v2.npy"));
        Assert.Equal(new[] { 1f, 2f, 3f }, (float[])v2.Data);
    }

    [Fact]
    public void RejectsFortranOrderFixture()
    {
        string path = Samples.Fixture("f4_fortran.npy");
        var e = Assert.Throws<NpyException>(() => Npy.Read(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("fortran_order", e.Message);
    }

    [Fact]
    public void RejectsBigEndianFixture()
    {
        string path = Samples.Fixture("i4_bigendian.npy");
        var e = Assert.Throws<NpyException>(() => Npy.Read(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("big-endian", e.Message);
        Assert.Contains(">i4", e.Message);
    }

    [Fact]
    public void AcceptsOtherByteOrderMarksVersion3AndPython2Longs()
    {
        var data = BitConverter.GetBytes(7);
        Assert.Equal(new[] { 7 }, (int[])Npy.Read(new MemoryStream(Image(Dict("|i4", "(1,)"), data)), "a").Data);
        Assert.Equal(new[] { 7 }, (int[])Npy.Read(new MemoryStream(Image(Dict("<i4", "(1L,)"), data)), "b").Data);
        var v3 = Image(Dict("<i4", "(1,)"), data, major: 3);
        Assert.Equal(new[] { 7 }, (int[])Npy.Read(new MemoryStream(v3), "c").Data);
    }

    [Fact]
    public void RejectsInvalidUtf8InAVersion3Header()
    {
        var image = Image(Dict("<i4", "(1,)") + " X", BitConverter.GetBytes(7), major: 3);
        image[Array.IndexOf(image, (byte)'X')] = 0xFF;
        Reject(image, "not valid UTF-8");
    }

    [Fact]
    public void RejectsATruncatedFile()
    {
        using var dir = new TempDir();
        var whole = File.ReadAllBytes(Samples.Fixture("f4_2x3.npy"));
        string path = dir.File("cut.npy");
        File.WriteAllBytes(path, whole[..^5]);
        var e = Assert.Throws<NpyException>(() => Npy.Read(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("truncated", e.Message);
        Assert.Throws<NpyException>(() => Npy.Read(new PipeStream(whole[..^5]), "p"));
        Reject(whole[..40], "truncated", "header");
        Reject(whole[..9], "truncated");
        Reject([], "empty");
    }

    [Fact]
    public void RejectsTrailingBytes()
    {
        var image = Image(Dict("<i4", "(1,)"), new byte[8]);
        Reject(image, "4 unexpected bytes");
        Assert.Throws<NpyException>(() => Npy.Read(new PipeStream(image), Label));
    }

    [Fact]
    public void RejectsATrillionElementsInATinyFileWithoutAllocating()
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        Reject(Image(Dict("<f4", "(1000000, 1000000)"), new byte[4]), "too large", "(1000000, 1000000)");
        // Within the per-tensor limit but far more than the file holds: both stream kinds must refuse cheaply.
        var image = Image(Dict("<f8", "(100000000,)"), new byte[16]);
        Reject(image, "truncated", "800000000");
        var e = Assert.Throws<NpyException>(() => Npy.Read(new PipeStream(image), Label));
        Assert.Contains(Label, e.Message);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20, "reader allocated for a lie");
    }

    [Fact]
    public void RejectsBadMagicAndVersion()
    {
        Reject(Encoding.ASCII.GetBytes("PK\u0003\u0004 this is a zip"), "not a .npy file");
        Reject(Image(Dict("<f4", "(1,)"), new byte[4], major: 4), "version 4.0");
        Reject(Image(Dict("<f4", "(1,)"), new byte[4], major: 1, minor: 1), "version 1.1");
    }

    [Fact]
    public void RejectsAbsurdHeaderLength()
    {
        var image = Image(Dict("<f4", "(1,)"), new byte[4], major: 2);
        BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(8), 0xFFFFFFF0);
        Reject(image, "header length 4294967280");
        BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(8), 60000);
        Reject(image, "truncated", "60000");
    }

    [Theory]
    [InlineData("{'descr': '<f4' 'fortran_order': False, 'shape': (2,), }", "expected ','")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, }", "no 'shape' key")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", "unexpected key 'x'")]
    [InlineData("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", "duplicate key")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", "shape entry 0 is -2")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2), }", "must be a tuple")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': [2], }", "must be a tuple")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2.0,), }", "only plain integers")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", "too large")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296,)}", "shape entry 0")]
    [InlineData("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", "True or False")]
    [InlineData("{'descr': __import__('os'), 'fortran_order': False, 'shape': (2,)}", "unexpected name")]
    [InlineData("{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}", "expected ','")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", "end of the header")]
    [InlineData("[1, 2]", "expected a dict")]
    [InlineData("", "header ends")]
    [InlineData("((((((((((((((((((((((((((((((((((((((((1))))))))))))))))))))))))))))))))))))))))", "nesting")]
    [InlineData("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}", "structured")]
    public void RejectsABadHeaderDict(string dict, string fragment) =>
        Reject(Image(dict, new byte[8]), fragment);

    [Theory]
    [InlineData("|O", "object arrays")]
    [InlineData("<u2", "unsupported dtype '<u2'")]
    [InlineData("<c8", "unsupported dtype")]
    [InlineData("f4", "unsupported dtype 'f4'")]
    [InlineData(">f8", "big-endian")]
    public void RejectsUnsupportedDtypes(string descr, string fragment) =>
        Reject(Image(Dict(descr, "(1,)"), new byte[8]), fragment);

    [Fact]
    public void ReportsAMissingFile()
    {
        string path = Path.Combine(Path.GetTempPath(), "no-such-dir-" + Guid.NewGuid().ToString("N"), "x.npy");
        var e = Assert.Throws<NpyException>(() => Npy.Read(path));
        Assert.Contains(path, e.Message);
        Assert.Throws<NpyException>(() => Npy.Write(path, Tensor.F32(new Shape(1), 1)));
    }
}
