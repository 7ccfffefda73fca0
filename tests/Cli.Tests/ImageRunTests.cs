using ShiftWise.Frontend.IO;
using ShiftWise.Frontend.IO.Images;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using static ShiftWise.Cli.Tests.SwcRun;

namespace ShiftWise.Cli.Tests;

/// <summary>
/// swc run on photos: PNGs through swc run against the same images preprocessed by torchvision on PIL and fed as
/// .npy (tools/fixtures/gen_run_image_fixtures.py), a folder with broken files in it, --strict, the predictions files,
/// and hostile images on the command line.
/// </summary>
public sealed class ImageRunTests : IDisposable
{
    private readonly List<string> _temps = [];
    /// <summary>A small sw-v2 with an ImageNet head at 64 × 64 (so the shipped class names apply).</summary>
    private static readonly string[] Model =
    [
        "sw-v2", "--depths", "1,1,1,1", "--dims", "8,16,16,32", "--kernel-size", "7,5,5,3,3", "--image-size", "64",
        "--num-classes", "1000", "--init", "original",
    ];

    private static readonly float[] Mean = [0.485f, 0.456f, 0.406f], Std = [0.229f, 0.224f, 0.225f];

    private static string Images => Path.Combine(Repo, "tests", "Frontend.Tests", "Fixtures", "images");

    private string Temp()
    {
        var d = Directory.CreateTempSubdirectory("swc-images-").FullName;
        _temps.Add(d);
        return d;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var d in _temps) Directory.Delete(d, recursive: true);
    }

    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "images", name);

    [Fact]
    public void PngsMatchTorchvisionsPreprocessingFedAsNpy()
    {
        var names = File.ReadAllLines(Fixture("torchvision_s64.txt"));
        Assert.True(names.Length >= 20, $"{names.Length} PNGs");
        // (N, 64, 64, 3) uint8 from torchvision on PIL; swc's .npy reader takes float and int32/64 arrays, so the bytes
        // after this fixture's .npy (version 1.0) header are read here
        var raw = File.ReadAllBytes(Fixture("torchvision_s64.npy"));
        int header = BitConverter.ToUInt16(raw, 8);
        Assert.Contains($"'shape': ({names.Length}, 64, 64, 3)", System.Text.Encoding.ASCII.GetString(raw, 10, header));
        var u8 = raw[(10 + header)..];
        Assert.Equal(names.Length * 64 * 64 * 3, u8.Length);
        var dir = Temp();
        foreach (var n in names) File.Copy(Path.Combine(Images, n), Path.Combine(dir, n));

        // the preprocessed tensors before normalisation: at most 1/255 apart at every pixel (measured: equal)
        int n64 = 64 * 64 * 3;
        for (int i = 0; i < names.Length; i++)
        {
            var ours = ImageInput.Preprocess8(Path.Combine(dir, names[i]), ImageTransform.Eval(64));
            int worst = Enumerable.Range(0, n64).Max(k => Math.Abs(ours[k] - u8[i * n64 + k]));
            Assert.True(worst <= 1, $"{names[i]}: a pixel differs by {worst}/255 from torchvision's");
        }

        // torchvision's tensor as the model input: ToTensor (x / 255 in float32), then Normalize, channels first
        var x = new float[names.Length * n64];
        for (int i = 0; i < names.Length; i++)
        for (int c = 0; c < 3; c++)
        for (int p = 0; p < 64 * 64; p++)
        {
            x[(i * 3 + c) * 64 * 64 + p] = (u8[i * n64 + p * 3 + c] / 255f - Mean[c]) / Std[c];
        }
        var xPath = Path.Combine(Temp(), "torchvision.npy");
        Npy.Write(xPath, Tensor.Wrap(TensorType.Of(DType.F32, names.Length, 3, 64, 64), x));
        var fromNpy = Path.Combine(Temp(), "npy-logits.npy");
        var fromPng = Path.Combine(Temp(), "png-logits.npy");
        var (c1, _, e1) = Swc(["run", .. Model, "--input", xPath, "--output", fromNpy]);
        Assert.True(c1 == 0, e1);
        var (c2, o2, e2) = Swc(["run", .. Model, "--batch", "8", "--input", dir, "--output", fromPng]);
        Assert.True(c2 == 0, e2);
        Assert.Contains($"{names.Length} images classified, 0 skipped", o2);
        var a = Npy.Read(fromNpy).ToDoubles();
        var b = Npy.Read(fromPng).ToDoubles();
        Assert.Equal(names.Length * 1000, b.Length);
        for (int i = 0; i < names.Length; i++)
        {
            var ya = Tensor.FromDoubles(TensorType.Of(DType.F64, 1000), a[(i * 1000)..((i + 1) * 1000)]);
            var yb = Tensor.FromDoubles(TensorType.Of(DType.F64, 1000), b[(i * 1000)..((i + 1) * 1000)]);
            Assert.InRange(Error.RelL2(yb, ya), 0, 1e-4);
        }
    }

    /// <summary>64 files: 62 PNGs and JPEGs of the fixtures (copied under new names) and 2 broken ones.</summary>
    private (string Dir, string[] Broken, int Period) MixedFolder()
    {
        var dir = Temp();
        var sources = Directory.GetFiles(Images).Where(f => (f.EndsWith(".png") || f.EndsWith(".jpg"))
            && !Path.GetFileName(f).StartsWith("i16_", StringComparison.Ordinal)).Order(StringComparer.Ordinal)
            .ToArray();
        for (int i = 0; i < 62; i++)
        {
            var src = sources[i % sources.Length];
            File.Copy(src, Path.Combine(dir, $"img{i:D2}{Path.GetExtension(src)}"));
        }
        var broken = new[] { Path.Combine(dir, "img30_notes.png"), Path.Combine(dir, "img45_cut.jpg") };
        File.WriteAllText(broken[0], "shopping list, not a picture");
        var jpg = File.ReadAllBytes(sources.First(f => f.EndsWith(".jpg")));
        File.WriteAllBytes(broken[1], jpg[..(jpg.Length / 3)]);
        return (dir, broken, sources.Length);
    }

    [Fact]
    public void AFolderOfMixedImagesWithBrokenFilesRunsAtBatch16AndWritesPredictions()
    {
        var (dir, broken, period) = MixedFolder();
        Assert.Equal(64, Directory.GetFiles(dir).Length);
        var csv = Path.Combine(Temp(), "predictions.csv");
        var (code, o, e) = Swc(["run", .. Model, "--batch", "16", "--input", dir, "--output", csv]);
        Assert.True(code == 0, e);
        Assert.Contains("64 images at 64x64, batch 16", o);
        Assert.Contains("62 images classified, 2 skipped", o);
        foreach (var b in broken) Assert.Contains($"skipped {b}: ", o);
        var rows = File.ReadAllLines(csv);
        Assert.StartsWith("file,class1,name1,probability1,", rows[0]);
        Assert.EndsWith(",error", rows[0]);
        Assert.Equal(65, rows.Length);
        foreach (var b in broken)
        {
            Assert.Contains(rows, r => r.StartsWith(b + ",", StringComparison.Ordinal) && r.Contains(b + ": "));
        }
        // every classified row names five ImageNet classes whose probabilities fall
        var ok = rows.Skip(1).Where(r => !broken.Any(b => r.StartsWith(b, StringComparison.Ordinal))).ToArray();
        Assert.Equal(62, ok.Length);
        foreach (var r in ok)
        {
            var f = r.Split(',');
            var p = new[] { f[3], f[6], f[9], f[12], f[15] }
                .Select(v => double.Parse(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
            Assert.True(p.Zip(p.Skip(1)).All(t => t.First >= t.Second), r);
            Assert.True(ImageInput.IsImagePath(f[0]), r);
        }
        // copies of one picture get the same classes, whichever batch and slot they fell in
        Assert.True(period < 62);
        var byIndex = ok.ToDictionary(r => Path.GetFileNameWithoutExtension(r.Split(',')[0]),
            r => string.Join(",", r.Split(',').Where((_, i) => i % 3 == 1)));
        Assert.Equal(byIndex["img00"], byIndex[$"img{period:D2}"]);
    }

    [Fact]
    public void StrictStopsAtTheFirstBrokenFileWithExitTwo()
    {
        var (dir, broken, _) = MixedFolder();
        var (code, _, e) = Swc(["run", .. Model, "--batch", "16", "--input", dir, "--strict"]);
        Assert.Equal(ExitCodes.BadInput, code);
        var error = Assert.Single(e.Split('\n'), l => l.StartsWith("error: ", StringComparison.Ordinal));
        Assert.StartsWith($"error: {broken[0]}: ", error); // the first broken file in name order
    }

    [Fact]
    public void JsonPredictionsNameTheClassesAndLabelsReplaceThem()
    {
        var json = Path.Combine(Temp(), "p.json");
        var one = Path.Combine(Images, "rgb_640x480.png");
        var (code, o, e) = Swc(["run", .. Model, "--input", one, "--output", json]);
        Assert.True(code == 0, e);
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(json));
        var top = doc.RootElement[0].GetProperty("top");
        Assert.Equal(5, top.GetArrayLength());
        int c0 = top[0].GetProperty("class").GetInt32();
        Assert.Equal(Runtime.Compile.ClassNames.ImageNet[c0], top[0].GetProperty("name").GetString());
        Assert.Contains($"{Runtime.Compile.ClassNames.ImageNet[c0]} ({c0})", o);
        var labels = Path.Combine(Temp(), "labels.txt");
        File.WriteAllLines(labels, Enumerable.Range(0, 1000).Select(i => $"thing {i}"));
        var (c2, o2, e2) = Swc(["run", .. Model, "--input", one, "--labels", labels]);
        Assert.True(c2 == 0, e2);
        Assert.Contains($"thing {c0} ({c0})", o2);
        File.WriteAllLines(labels, ["cat", "dog"]);
        var (c3, _, e3) = Swc(["run", .. Model, "--input", one, "--labels", labels]);
        Assert.Equal(ExitCodes.BadInput, c3);
        Assert.Contains("names 2 classes; the model has 1000", e3);
    }

    [Theory]
    [InlineData("--crop-pct", "0", "must be in (0, 1]")]
    [InlineData("--mean", "0.5,0.5", "give 3 values")]
    [InlineData("--std", "0.2,0,0.2", "must be > 0")]
    [InlineData("--output", "p.txt", "images give predictions (.csv or .json) or logits (.npy)")]
    public void BadImageOptionsAreRefused(string option, string value, string phrase)
    {
        var (code, _, e) = Swc(["run", .. Model, "--input", Path.Combine(Images, "rgb_32x32.png"), option, value]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains(phrase, e);
    }

    [Fact]
    public void CropMeanAndStdChangeTheInput()
    {
        var one = Path.Combine(Images, "rgb_640x480.png");
        string Logits(params string[] extra)
        {
            var y = Path.Combine(Temp(), "y.npy");
            var (code, _, e) = Swc(["run", .. Model, "--input", one, "--output", y, .. extra]);
            Assert.True(code == 0, e);
            return Convert.ToHexString(File.ReadAllBytes(y));
        }
        var plain = Logits();
        Assert.Equal(plain, Logits("--crop-pct", "0.875", "--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225"));
        Assert.NotEqual(plain, Logits("--crop-pct", "1"));
        Assert.NotEqual(plain, Logits("--mean", "0.5,0.5,0.5"));
        Assert.NotEqual(plain, Logits("--std", "0.5,0.5,0.5"));
    }

    /// <summary>A PNG (8-bit RGB) declaring <paramref name="w"/> × <paramref name="h"/> whose IDAT holds
    /// <paramref name="rows"/> rows of zeros (all of them: a decompression bomb), and an IEND.</summary>
    private static void WriteZeroPng(string path, int w, int h, int rows)
    {
        using var f = File.Create(path);
        void Chunk(string type, byte[] data)
        {
            var t = System.Text.Encoding.ASCII.GetBytes(type);
            f.Write([(byte)(data.Length >> 24), (byte)(data.Length >> 16), (byte)(data.Length >> 8), (byte)data.Length]);
            f.Write(t);
            f.Write(data);
            uint crc = System.IO.Hashing.Crc32.HashToUInt32([.. t, .. data]);
            f.Write([(byte)(crc >> 24), (byte)(crc >> 16), (byte)(crc >> 8), (byte)crc]);
        }
        f.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        Chunk("IHDR", [(byte)(w >> 24), (byte)(w >> 16), (byte)(w >> 8), (byte)w,
            (byte)(h >> 24), (byte)(h >> 16), (byte)(h >> 8), (byte)h, 8, 2, 0, 0, 0]);
        var idat = new MemoryStream();
        using (var z = new System.IO.Compression.ZLibStream(idat, System.IO.Compression.CompressionLevel.SmallestSize, true))
        {
            var row = new byte[1 + 3L * w];
            for (int y = 0; y < rows; y++) z.Write(row);
        }
        Chunk("IDAT", idat.ToArray());
        Chunk("IEND", []);
    }

    /// <summary>
    /// Hostile images named on the command line: swc (a child process under /usr/bin/time, which reports its peak
    /// resident set) ends with exit code 2 and one sentence naming the file, and never holds 200 MB.
    /// </summary>
    [Fact]
    public async Task HostileImagesEndWithExitTwoOneSentenceAndUnder200MB()
    {
        Assert.True(File.Exists("/usr/bin/time"), "GNU time (Debian's time) measures the peak memory; .ci/run installs it");
        var dir = Temp();
        string F(string n) => Path.Combine(dir, n);
        WriteZeroPng(F("header_100000x100000.png"), 100_000, 100_000, 0);
        WriteZeroPng(F("bomb_30000x30000.png"), 30_000, 30_000, 30_000);
        WriteZeroPng(F("short_9000x9000.png"), 9_000, 9_000, 5);
        File.WriteAllBytes(F("empty.png"), []);
        File.WriteAllText(F("text.jpg"), "this is not a picture\n");
        var jpg = File.ReadAllBytes(Path.Combine(Images, "base420_640x480.jpg"));
        File.WriteAllBytes(F("cut_half.jpg"), jpg[..(jpg.Length / 2)]);
        var png = File.ReadAllBytes(Path.Combine(Images, "rgb_640x480.png"));
        File.WriteAllBytes(F("cut_half.png"), png[..(png.Length / 2)]);
        Assert.True(new FileInfo(F("bomb_30000x30000.png")).Length < 4 << 20); // 2.7 GB of pixels in a few MB
        var cache = Temp();
        foreach (var file in Directory.GetFiles(dir).Order(StringComparer.Ordinal))
        {
            var psi = new System.Diagnostics.ProcessStartInfo("/usr/bin/time")
            {
                RedirectStandardError = true, RedirectStandardOutput = true,
            };
            foreach (var a in (string[])["-f", "peak-rss-kb %M", "dotnet", typeof(SwcApp).Assembly.Location, "run", .. Model,
                "--input", file])
            {
                psi.ArgumentList.Add(a);
            }
            psi.Environment["SWC_CACHE_DIR"] = cache;
            using var p = System.Diagnostics.Process.Start(psi)!;
            var outText = p.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
            var err = await p.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
            await p.WaitForExitAsync(TestContext.Current.CancellationToken);
            Assert.True(p.ExitCode == ExitCodes.BadInput, $"{file}: exit {p.ExitCode}\n{err}");
            var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Where(l => !l.StartsWith("Command exited with non-zero status", StringComparison.Ordinal)).ToArray();
            var peak = long.Parse(lines[^1]["peak-rss-kb ".Length..], System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(peak < 200 * 1024, $"{file}: peak resident memory {peak} kB");
            var message = Assert.Single(lines[..^1]);
            Assert.StartsWith($"error: {file}: ", message);
            Assert.DoesNotContain(". ", message.TrimEnd('.')); // one sentence
            Assert.DoesNotContain("classified", await outText);
        }
    }

    [Fact]
    public void AHostileImageNamedOnTheCommandLineEndsWithExitTwoAndOneSentence()
    {
        // a PNG header declaring 100,000 x 100,000 pixels in a few dozen bytes
        var png = Path.Combine(Temp(), "huge.png");
        var ihdr = new byte[] { 0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0, 8, 2, 0, 0, 0 };
        var bytes = new List<byte> { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52 };
        bytes.AddRange(ihdr);
        var crc = System.IO.Hashing.Crc32.HashToUInt32([0x49, 0x48, 0x44, 0x52, .. ihdr]);
        bytes.AddRange([(byte)(crc >> 24), (byte)(crc >> 16), (byte)(crc >> 8), (byte)crc]);
        File.WriteAllBytes(png, [.. bytes]);
        var (code, o, e) = Swc(["run", .. Model, "--input", png]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Single(e.Trim().Split('\n'));
        Assert.Contains(png, e);
        Assert.DoesNotContain("classified", o);
    }
}
