using System.Buffers.Binary;
using System.Globalization;
using System.IO.Compression;
using System.IO.Hashing;
using System.Text;
using System.Text.RegularExpressions;

namespace ShiftWise.Frontend.Tests;

/// <summary>One row of Fixtures/images/cases.tsv (written by tools/fixtures/gen_image_fixtures.py).</summary>
public sealed record ImageCase(string Image, int Size, double CropPct, string Expected)
{
    public bool IsJpeg => Image.EndsWith(".jpg", StringComparison.Ordinal);

    public override string ToString() => $"{Image} @{Size}" + (CropPct == 0.875 ? "" : $" crop {CropPct}");
}

/// <summary>The image fixtures and small PNG/JPEG byte surgery for the hostile cases.</summary>
internal static partial class ImageFixtures
{
    public static string Dir => Path.Combine(AppContext.BaseDirectory, "Fixtures", "images");

    public static string File(string name) => Path.Combine(Dir, name);

    public static IReadOnlyList<ImageCase> Cases() =>
        [.. System.IO.File.ReadAllLines(File("cases.tsv")).Where(l => l.Length > 0 && l[0] != '#').Select(l =>
        {
            var f = l.Split('\t');
            return new ImageCase(f[0], int.Parse(f[1], CultureInfo.InvariantCulture),
                double.Parse(f[2], CultureInfo.InvariantCulture), f[3]);
        })];

    /// <summary>
    /// Reads an expected array: gzip, then a .npy of uint8 (|u1) with shape (H, W, 3), Sub-filtered (each byte is
    /// the difference from the same channel of the pixel to its left, mod 256), which this undoes.
    /// </summary>
    public static byte[] ReadExpected(string name, int size)
    {
        using var gz = new GZipStream(System.IO.File.OpenRead(File(name)), CompressionMode.Decompress);
        using var ms = new MemoryStream();
        gz.CopyTo(ms);
        var npy = ms.ToArray();
        Assert.Equal("\x93NUMPY", Encoding.Latin1.GetString(npy, 0, 6));
        Assert.Equal(1, npy[6]); // .npy format 1.0
        var headerLen = BinaryPrimitives.ReadUInt16LittleEndian(npy.AsSpan(8));
        var header = Encoding.ASCII.GetString(npy, 10, headerLen);
        Assert.Contains("'descr': '|u1'", header);
        Assert.Contains("'fortran_order': False", header);
        Assert.Matches(ShapeRegex(), header);
        var m = ShapeRegex().Match(header);
        Assert.Equal((size, size, 3), (int.Parse(m.Groups[1].Value), int.Parse(m.Groups[2].Value),
            int.Parse(m.Groups[3].Value)));
        var a = npy.AsSpan(10 + headerLen).ToArray();
        Assert.Equal(size * size * 3, a.Length);
        for (var y = 0; y < size; y++)
        {
            for (var i = 3; i < size * 3; i++)
            {
                a[y * size * 3 + i] += a[y * size * 3 + i - 3];
            }
        }
        return a;
    }

    [GeneratedRegex(@"'shape': \((\d+), (\d+), (\d+)\)")]
    private static partial Regex ShapeRegex();

    /// <summary>A PNG of <paramref name="w"/> x <paramref name="h"/> 8-bit grey zeros (valid chunks and CRCs),
    /// its image data compressed row by row, so that a decompression bomb costs little to write.</summary>
    public static void WriteZeroPng(string path, int w, int h, int rowsToWrite)
    {
        using var fs = System.IO.File.Create(path);
        fs.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, w);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), h);
        ihdr[8] = 8; // bit depth 8, colour type 0 (grey), deflate, adaptive filtering, no interlace
        Chunk(fs, "IHDR", ihdr);
        using var data = new MemoryStream();
        using (var z = new ZLibStream(data, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            var row = new byte[w + 1];
            for (var y = 0; y < rowsToWrite; y++)
            {
                z.Write(row);
            }
        }
        Chunk(fs, "IDAT", data.ToArray());
        Chunk(fs, "IEND", []);
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        var len = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(len, data.Length);
        s.Write(len);
        var body = Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        s.Write(body);
        var crc = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32.HashToUInt32(body));
        s.Write(crc);
    }

    /// <summary>A copy of a JPEG fixture whose frame header (SOF0/SOF2) declares <paramref name="w"/> x
    /// <paramref name="h"/> pixels.</summary>
    public static void WriteJpegDeclaring(string source, string path, int w, int h)
    {
        var d = System.IO.File.ReadAllBytes(File(source));
        var i = 2;
        while (d[i + 1] is not (0xC0 or 0xC2))
        {
            i += 2 + BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(i + 2));
        }
        BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(i + 5), (ushort)h);
        BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(i + 7), (ushort)w);
        System.IO.File.WriteAllBytes(path, d);
    }

    /// <summary>The first <paramref name="fraction"/> of a fixture's bytes.</summary>
    public static void WriteTruncated(string source, string path, double fraction)
    {
        var d = System.IO.File.ReadAllBytes(File(source));
        System.IO.File.WriteAllBytes(path, d.AsSpan(0, (int)(d.Length * fraction)).ToArray());
    }
}
