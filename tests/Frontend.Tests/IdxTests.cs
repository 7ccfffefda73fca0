using System.IO.Compression;
using ShiftWise.Frontend.IO;
using ShiftWise.IR;

namespace ShiftWise.Frontend.Tests;

public sealed class IdxTests
{
    private static string Temp(string name) => Path.Combine(Directory.CreateTempSubdirectory("swc-idx-").FullName, name);

    private static byte[] Bytes(params int[] header) => header.Select(b => (byte)b).ToArray();

    [Fact]
    public void RoundTripPlainAndGzip()
    {
        var a = new IdxArray([3, 2, 4], Enumerable.Range(0, 24).Select(i => (byte)(i * 7)).ToArray());
        var plain = Temp("a.idx");
        Idx.Write(plain, a);
        var b = Idx.Read(plain);
        Assert.Equal(a.Dims, b.Dims);
        Assert.Equal(a.Data, b.Data);
        var gz = Temp("a-idx3-ubyte.gz");
        using (var f = File.Create(gz))
        using (var z = new GZipStream(f, CompressionLevel.Fastest))
        {
            z.Write(File.ReadAllBytes(plain));
        }
        var c = Idx.Read(gz);
        Assert.Equal(a.Dims, c.Dims);
        Assert.Equal(a.Data, c.Data);
    }

    public static TheoryData<byte[], string> Broken() => new()
    {
        { Bytes(0, 0), "shorter than its 4-byte header" },
        { Bytes(1, 0, 8, 1, 0, 0, 0, 1, 5), "bad magic 01 00" },
        { Bytes(0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0), "element type 0x0D is not supported" },
        { Bytes(0, 0, 8, 0), "0 dimensions" },
        { Bytes(0, 0, 8, 5), "5 dimensions" },
        { Bytes(0, 0, 8, 2, 0, 0, 0, 2), "header ends inside the dimensions" },
        { Bytes(0, 0, 8, 1, 0, 0, 0, 0), "dimension 0 is 0" },
        { Bytes(0, 0, 8, 1, 0, 0, 0, 3, 1, 2), "the header says 3 (11 bytes in all) but the file has 10 bytes" },
        { Bytes(0, 0, 8, 1, 0, 0, 0, 2, 1, 2, 3), "but the file has 11 bytes" },
        { Bytes(0, 0, 8, 2, 0x7F, 0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF), "is more than the" },
    };

    [Theory]
    [MemberData(nameof(Broken))]
    public void BrokenFilesAreNamedWithWhatIsWrong(byte[] content, string phrase)
    {
        var path = Temp("bad.idx");
        File.WriteAllBytes(path, content);
        var e = Assert.Throws<IrException>(() => Idx.Read(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(phrase, e.Message);
    }

    [Fact]
    public void ATruncatedGzipFileIsCaughtWithoutTrustingTheHeader()
    {
        var gz = Temp("t.gz");
        using (var f = File.Create(gz))
        using (var z = new GZipStream(f, CompressionLevel.Fastest))
        {
            z.Write(Bytes(0, 0, 8, 3, 0, 0, 0x27, 0x10, 0, 0, 0, 28, 0, 0, 0, 28)); // claims 10000x28x28
            z.Write(new byte[1000]);
        }
        var e = Assert.Throws<IrException>(() => Idx.Read(gz));
        Assert.Contains("truncated: 10000x28x28 needs 7840000 bytes of values, the file holds 1000", e.Message);
        var extra = Temp("x.gz");
        using (var f = File.Create(extra))
        using (var z = new GZipStream(f, CompressionLevel.Fastest))
        {
            z.Write(Bytes(0, 0, 8, 1, 0, 0, 0, 2, 1, 2, 3));
        }
        Assert.Contains("trailing bytes", Assert.Throws<IrException>(() => Idx.Read(extra)).Message);
    }

    [Fact]
    public void FashionMnistFromTheDebianPackage()
    {
        if (!FashionMnist.Installed()) Assert.Skip($"Fashion-MNIST is not in {FashionMnist.DefaultDir}; install Debian's dataset-fashion-mnist");
        var train = FashionMnist.Load("train");
        var test = FashionMnist.Load("t10k");
        Assert.Equal([60000, 28, 28], train.Images.Dims);
        Assert.Equal([10000, 28, 28], test.Images.Dims);
        // the dataset is balanced: 6,000 training and 1,000 test images per class
        Assert.All(Enumerable.Range(0, 10), c => Assert.Equal(6000, train.Labels.Data.Count(l => l == c)));
        Assert.All(Enumerable.Range(0, 10), c => Assert.Equal(1000, test.Labels.Data.Count(l => l == c)));
        Assert.InRange(train.Images.Data.Average(b => (double)b), 60, 90); // mean pixel about 72.9 (0.286 of 255)
    }

    [Fact]
    public void MismatchedImagesAndLabelsAreNamed()
    {
        var dir = Directory.CreateTempSubdirectory("swc-fm-").FullName;
        void Gz(string name, IdxArray a)
        {
            var plain = Path.Combine(dir, name + ".plain");
            Idx.Write(plain, a);
            using var f = File.Create(Path.Combine(dir, name));
            using var z = new GZipStream(f, CompressionLevel.Fastest);
            z.Write(File.ReadAllBytes(plain));
        }
        Gz("train-images-idx3-ubyte.gz", new IdxArray([3, 2, 2], new byte[12]));
        Gz("train-labels-idx1-ubyte.gz", new IdxArray([2], [1, 2]));
        Gz("t10k-images-idx3-ubyte.gz", new IdxArray([2, 2, 2], new byte[8]));
        Gz("t10k-labels-idx1-ubyte.gz", new IdxArray([2], [1, 12]));
        Assert.Contains("has 3 images but", Assert.Throws<IrException>(() => FashionMnist.Load("train", dir)).Message);
        Assert.Contains("label 12 at item 1", Assert.Throws<IrException>(() => FashionMnist.Load("t10k", dir)).Message);
    }
}
