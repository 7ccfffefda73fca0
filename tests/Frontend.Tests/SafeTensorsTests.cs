using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using ShiftWise.Frontend.IO;
using ShiftWise.IR;

namespace ShiftWise.Frontend.Tests;

public sealed class SafeTensorsTests
{
    private const string Label = "model/m.safetensors";

    /// <summary>Builds a .safetensors image by hand; <paramref name="claimedLength"/> may lie.</summary>
    private static byte[] Image(string json, byte[] data, ulong? claimedLength = null)
    {
        var header = Encoding.UTF8.GetBytes(json);
        var image = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(image, claimedLength ?? (ulong)header.Length);
        header.CopyTo(image, 8);
        data.CopyTo(image, 8 + header.Length);
        return image;
    }

    private static string F32(string name, string shape, long begin, long end) =>
        $"\"{name}\":{{\"dtype\":\"F32\",\"shape\":{shape},\"data_offsets\":[{begin},{end}]}}";

    private static SafeTensorsException Reject(byte[] image, params string[] fragments)
    {
        var e = Assert.Throws<SafeTensorsException>(() => SafeTensors.Read(new MemoryStream(image), Label));
        Assert.StartsWith(Label + ": ", e.Message);
        Assert.Equal(Label, e.File);
        foreach (var f in fragments)
        {
            Assert.Contains(f, e.Message);
        }
        return e;
    }

    private static Dictionary<string, Tensor> AllTypes() =>
        Enum.GetValues<DType>().ToDictionary(t => "t_" + t.Name(), Samples.Of);

    private static void AssertSameSet(IReadOnlyDictionary<string, Tensor> expected,
        IReadOnlyDictionary<string, Tensor> actual)
    {
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys);
        foreach (var (k, v) in expected)
        {
            Samples.AssertSame(v, actual[k]);
        }
    }

    [Fact]
    public void RoundTripsEveryDTypeThroughAFile()
    {
        using var dir = new TempDir();
        var x = AllTypes();
        SafeTensors.Write(dir.File("m.safetensors"), x);
        AssertSameSet(x, SafeTensors.Read(dir.File("m.safetensors")));
        Assert.Single(Directory.GetFiles(dir.Path));
        Assert.Empty(SafeTensors.ReadMetadata(dir.File("m.safetensors")));
    }

    [Fact]
    public void RoundTripsThroughSeekableAndPipeStreams()
    {
        var x = AllTypes();
        var ms = new MemoryStream();
        SafeTensors.Write(ms, x);
        AssertSameSet(x, SafeTensors.Read(new MemoryStream(ms.ToArray()), "mem"));
        AssertSameSet(x, SafeTensors.Read(new PipeStream(ms.ToArray()), "pipe"));
    }

    [Fact]
    public void RoundTripsScalarsZeroSizeTensorsAndMetadata()
    {
        using var dir = new TempDir();
        var x = new Dictionary<string, Tensor>
        {
            ["b.empty"] = Tensor.Zeros(TensorType.Of(DType.BF16, 0, 7)),
            ["a.scalar"] = Tensor.Wrap(TensorType.Of(DType.I64), new[] { -5L }),
            ["c"] = Tensor.F64(new Shape(2), 1, 2),
            ["d.empty"] = Tensor.Zeros(TensorType.Of(DType.F32, 3, 0)),
            ["é/unicode"] = Tensor.F32(Shape.Scalar, 0.5f),
        };
        var meta = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "quote \" and ünïcode" };
        string path = dir.File("m.safetensors");
        SafeTensors.Write(path, x, meta);
        AssertSameSet(x, SafeTensors.Read(path));
        Assert.Equal(meta.OrderBy(p => p.Key), SafeTensors.ReadMetadata(path));
    }

    [Fact]
    public void RoundTripsAnEmptyFile()
    {
        var ms = new MemoryStream();
        SafeTensors.Write(ms, new Dictionary<string, Tensor>());
        Assert.Empty(SafeTensors.Read(new MemoryStream(ms.ToArray()), "e"));
    }

    [Fact]
    public void WritesSortedContiguousOffsetsAndAnAlignedHeader()
    {
        var ms = new MemoryStream();
        SafeTensors.Write(ms, new Dictionary<string, Tensor>
        {
            ["z"] = Tensor.F32(new Shape(3), 1, 2, 3),
            ["a"] = Tensor.Wrap(TensorType.Of(DType.F16, 1), new[] { (Half)1 }),
            ["m"] = Tensor.F64(new Shape(1), 9),
        });
        var bytes = ms.ToArray();
        long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, n % 8);
        Assert.Equal(8 + n + 12 + 2 + 8, bytes.Length);
        using var doc = JsonDocument.Parse(bytes.AsMemory(8, (int)n));
        var names = doc.RootElement.EnumerateObject().Select(p => p.Name).ToArray();
        Assert.Equal(new[] { "a", "m", "z" }, names);
        var offsets = names.Select(k => doc.RootElement.GetProperty(k).GetProperty("data_offsets"))
            .Select(o => (o[0].GetInt64(), o[1].GetInt64())).ToArray();
        Assert.Equal(new[] { (0L, 2L), (2L, 10L), (10L, 22L) }, offsets);
    }

    [Fact]
    public void ReadsAHandBuiltFixture()
    {
        string path = Samples.Fixture("two.safetensors");
        var t = SafeTensors.Read(path);
        Assert.Equal(new[] { "bias", "weight" }, t.Keys);
        Assert.Equal(TensorType.Of(DType.F32, 2, 2), t["weight"].Type);
        Assert.Equal(new[] { 1f, -2f, 0.25f, 8f }, (float[])t["weight"].Data);
        Assert.Equal(TensorType.Of(DType.I64, 3), t["bias"].Type);
        Assert.Equal(new[] { 7L, -7L, 1L << 40 }, (long[])t["bias"].Data);
        Assert.Equal("pt", SafeTensors.ReadMetadata(path)["format"]);
    }

    [Fact]
    public void RefusesTheReservedNameAndLeavesNoFile()
    {
        using var dir = new TempDir();
        var x = new Dictionary<string, Tensor> { ["__metadata__"] = Tensor.F32(new Shape(1), 1) };
        Assert.Throws<ArgumentException>(() => SafeTensors.Write(dir.File("m.safetensors"), x));
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void RejectsOverlappingOffsets()
    {
        var json = "{" + F32("a", "[2]", 0, 8) + "," + F32("b", "[2]", 4, 12) + "}";
        Reject(Image(json, new byte[12]), "tensor 'b'", "overlap tensor 'a'");
    }

    [Fact]
    public void RejectsOutOfRangeOffsets()
    {
        var image = Image("{" + F32("w", "[2]", 0, 8) + "}", new byte[4]);
        Reject(image, "tensor 'w'", "past the end");
        var e = Assert.Throws<SafeTensorsException>(() => SafeTensors.Read(new PipeStream(image), Label));
        Assert.Contains(Label, e.Message);
        Assert.Contains("truncated", e.Message);
        Reject(Image("{" + F32("w", "[2]", 0, -8) + "}", new byte[8]), "tensor 'w'", "data_offsets");
    }

    [Fact]
    public void RejectsGapsAndTrailingData()
    {
        Reject(Image("{" + F32("w", "[1]", 4, 8) + "}", new byte[8]), "tensor 'w'", "gap");
        Reject(Image("{" + F32("w", "[1]", 0, 4) + "}", new byte[8]), "8 bytes", "cover only 4");
        var e = Assert.Throws<SafeTensorsException>(() =>
            SafeTensors.Read(new PipeStream(Image("{" + F32("w", "[1]", 0, 4) + "}", new byte[8])), Label));
        Assert.Contains("unexpected bytes", e.Message);
    }

    [Fact]
    public void RejectsAbsurdHeaderLengths()
    {
        var json = "{" + F32("w", "[1]", 0, 4) + "}";
        Reject(Image(json, new byte[4], claimedLength: 1UL << 62), "header length 4611686018427387904", "limit");
        Reject(Image(json, new byte[4], claimedLength: 50_000_000), "header length 50000000", "longer than");
        Reject(Image(json, new byte[4], claimedLength: 1), "too short");
        long before = GC.GetAllocatedBytesForCurrentThread();
        Assert.Throws<SafeTensorsException>(() =>
            SafeTensors.Read(new PipeStream(Image(json, new byte[4], claimedLength: 99_000_000)), Label));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20, "reader allocated for a lie");
    }

    [Fact]
    public void RejectsHugeClaimsInTinyFilesWithoutAllocating()
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        Reject(Image("{" + F32("w", "[100000,100000,100000]", 0, 4) + "}", new byte[4]), "tensor 'w'", "too large");
        var lie = Image("{" + F32("w", "[100000000]", 0, 400_000_000) + "}", new byte[8]);
        Reject(lie, "tensor 'w'", "past the end");
        var e = Assert.Throws<SafeTensorsException>(() => SafeTensors.Read(new PipeStream(lie), Label));
        Assert.Contains("tensor 'w'", e.Message);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20, "reader allocated for a lie");
    }

    [Theory]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]", "not valid JSON")]
    [InlineData("[1,2,3,4]", "must be a JSON object")]
    [InlineData("{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", "unsupported dtype 'U8'")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", "shape entry 0 (-1)")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627776],\"data_offsets\":[0,4]}}", "shape entry 0")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", "shape entry 0")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", "needs 8")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", "data_offsets")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",\"4\"]}}", "data_offsets")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", "data_offsets")]
    [InlineData("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", "'dtype'")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        + "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "twice")]
    [InlineData("{\"__metadata__\":{\"n\":1},\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "must be a string")]
    [InlineData("{\"w\":[1]}", "must be an object")]
    public void RejectsBadHeaders(string json, string fragment) => Reject(Image(json, new byte[4]), fragment);

    [Fact]
    public void RejectsATruncatedFileByPath()
    {
        using var dir = new TempDir();
        string path = dir.File("cut.safetensors");
        File.WriteAllBytes(path, File.ReadAllBytes(Samples.Fixture("two.safetensors"))[..^3]);
        var e = Assert.Throws<SafeTensorsException>(() => SafeTensors.Read(path));
        Assert.Contains(path, e.Message);
        File.WriteAllBytes(path, [1, 2, 3]);
        e = Assert.Throws<SafeTensorsException>(() => SafeTensors.ReadMetadata(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("truncated", e.Message);
    }
}
