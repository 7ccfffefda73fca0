using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using ShiftWise.Frontend.IO.Images;

namespace ShiftWise.Frontend.Tests;

/// <summary>
/// Broken and hostile images are refused with one sentence naming the file, and in bounded memory: a header that
/// declares 100,000 x 100,000 pixels, a decompression bomb (a valid 30,000 x 30,000 PNG of zeros, under 1 MB on
/// disk, 900 MB decoded), a JPEG far too short for the size it declares, truncated and damaged files, files that are
/// not PNG or JPEG.
/// </summary>
public sealed class ImageHostileTests(ITestOutputHelper log)
{
    /// <summary>The bound on a refused image's peak memory (resident set growth of a fresh process).</summary>
    private const long MaxPeakGrowthKb = 200 * 1024;

    private static readonly Lazy<string> HostileDir = new(WriteHostileFiles);

    /// <summary>(file in <see cref="HostileDir"/>, a phrase its message must hold).</summary>
    public static TheoryData<string, string> Refused => [.. Cases];

    private static readonly (string File, string Phrase)[] Cases =
    [
        ("header_100000x100000.png", "declares 100000 x 100000 pixels, over the 100-megapixel limit"),
        ("bomb_30000x30000.png", "declares 30000 x 30000 pixels, over the 100-megapixel limit"),
        ("header_65500x65500.jpg", "declares 65500 x 65500 pixels, over the 100-megapixel limit"),
        ("side_70000x10.png", "declares 70000 x 10 pixels, a side over the 65535-pixel limit"),
        ("empty.png", "an empty file, not a PNG or JPEG image"),
        ("text.jpg", "not a PNG or JPEG image"),
        ("gif_named.png", "not a PNG or JPEG image"),
        ("missing.png", "no such file"),
        ("header_only.png", "truncated: the file ends inside the PNG header"),
        ("no_ihdr.png", "damaged PNG: its first chunk is not a 13-byte IHDR"),
        ("cut_1pct.png", "truncated"),
        ("cut_50pct.png", "truncated"),
        ("cut_99pct.png", "truncated"),
        ("damaged_idat.png", "truncated or damaged PNG data"),
        ("cut_2pct_base.jpg", "truncated"),
        ("cut_50pct_base.jpg", "truncated"),
        ("no_eoi_base.jpg", "truncated"),
        ("cut_50pct_prog.jpg", "truncated"),
        ("no_eoi_prog.jpg", "truncated"),
        ("grey16.png", "is a 16-bit greyscale PNG"),
        ("prog444_claims_10000x10000.jpg", "bytes cannot hold the 10000 x 10000 pixels its header declares"),
        ("base420_claims_10000x10000.jpg", "bytes cannot hold the 10000 x 10000 pixels its header declares"),
        ("short_9000x9000.png", "bytes cannot hold the 9000 x 9000 pixels its header declares"),
    ];

    [Theory]
    [MemberData(nameof(Refused))]
    public void Refused_with_one_sentence_naming_the_file(string name, string phrase)
    {
        var path = Path.Combine(HostileDir.Value, name);
        var e = Assert.Throws<ImageException>(() => ImageInput.Preprocess8(path, ImageTransform.Eval(224)));
        log.WriteLine(e.Message);
        AssertOneSentence(path, e);
        Assert.Contains(phrase, e.Message);
    }

    [Fact]
    public void An_unresized_size_needs_an_image_of_that_size()
    {
        var path = ImageFixtures.File("rgb_7x5.png");
        var e = Assert.Throws<ImageException>(() => ImageInput.Preprocess8(path, ImageTransform.Eval(32)));
        AssertOneSentence(path, e);
        Assert.Contains("is 7 x 5 pixels, but at image size 32", e.Message);
    }

    /// <summary>
    /// Every refused file is run in a fresh child process (this test assembly, started with
    /// <see cref="ImageMemoryProbe.EnvVar"/> set), which reports how far its peak resident set (VmHWM) rose above the
    /// resident set before the call; it must stay under 200 MB. The kernel's peak is reset before each call where
    /// /proc/self/clear_refs allows it; where not, the number is the peak since the process started, an upper bound.
    /// A 4,000 x 4,000 grey PNG (16 megapixels) that is decoded, not refused, is measured too, for scale.
    /// </summary>
    [Fact]
    public async Task Refused_in_bounded_memory()
    {
        var dir = HostileDir.Value;
        var cases = Cases.Select(c => c.File).Append("zeros_4000x4000.png").ToArray();
        var list = Path.Combine(dir, "probe-list.txt");
        File.WriteAllLines(list, cases.Select(c => Path.Combine(dir, c)));
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(typeof(ImageHostileTests).Assembly.Location);
        psi.Environment[ImageMemoryProbe.EnvVar] = list;
        using var p = Process.Start(psi)!;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        cts.CancelAfter(TimeSpan.FromSeconds(120));
        var stderr = p.StandardError.ReadToEndAsync(cts.Token);
        var stdout = await p.StandardOutput.ReadToEndAsync(cts.Token);
        await p.WaitForExitAsync(cts.Token);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(p.ExitCode == 0, $"the memory probe exited {p.ExitCode}: {await stderr}");
        Assert.Equal(cases.Length + 1, lines.Length);
        log.WriteLine(lines[0]);
        foreach (var (line, name) in lines.Skip(1).Zip(cases, (l, n) => (l, n)))
        {
            log.WriteLine(line);
            var f = line.Split('\t');
            Assert.Equal(Path.Combine(dir, name), f[0]);
            var growthKb = long.Parse(f[1], CultureInfo.InvariantCulture);
            Assert.True(growthKb < MaxPeakGrowthKb, $"{name}: the peak resident set grew by {growthKb} kB");
            Assert.Equal(name.StartsWith("zeros", StringComparison.Ordinal) ? "decoded" : "refused", f[4]);
        }
    }

    private static void AssertOneSentence(string path, ImageException e)
    {
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Equal(path, e.File);
        var rest = e.Message[(path.Length + 2)..];
        Assert.DoesNotContain('\n', rest);
        Assert.DoesNotContain(". ", rest);
        Assert.False(rest.EndsWith('.'), "the sentence ends without a full stop, as the project's messages do");
    }

    private static string WriteHostileFiles()
    {
        var dir = Path.Combine(Path.GetTempPath(), "sw-img-hostile-" + Environment.ProcessId);
        Directory.CreateDirectory(dir);
        string F(string n) => Path.Combine(dir, n);
        ImageFixtures.WriteZeroPng(F("header_100000x100000.png"), 100_000, 100_000, rowsToWrite: 2);
        ImageFixtures.WriteZeroPng(F("bomb_30000x30000.png"), 30_000, 30_000, rowsToWrite: 30_000);
        ImageFixtures.WriteZeroPng(F("side_70000x10.png"), 70_000, 10, rowsToWrite: 10);
        ImageFixtures.WriteZeroPng(F("short_9000x9000.png"), 9_000, 9_000, rowsToWrite: 5);
        ImageFixtures.WriteZeroPng(F("zeros_4000x4000.png"), 4_000, 4_000, rowsToWrite: 4_000);
        ImageFixtures.WriteJpegDeclaring("base420_640x480.jpg", F("header_65500x65500.jpg"), 65_500, 65_500);
        // Within the pixel limit but far too short for it: decoded, the progressive one made libjpeg touch 600 MB.
        ImageFixtures.WriteJpegDeclaring("prog444_333x251.jpg", F("prog444_claims_10000x10000.jpg"), 10_000, 10_000);
        ImageFixtures.WriteJpegDeclaring("base420_640x480.jpg", F("base420_claims_10000x10000.jpg"), 10_000, 10_000);
        File.WriteAllBytes(F("empty.png"), []);
        File.WriteAllText(F("text.jpg"), "this is not a picture\n");
        File.WriteAllBytes(F("gif_named.png"), "GIF89a\x01\x00\x01\x00\x00\x00\x00;"u8.ToArray());
        var png = File.ReadAllBytes(ImageFixtures.File("rgb_640x480.png"));
        File.WriteAllBytes(F("header_only.png"), png[..20]);
        var noIhdr = png.ToArray();
        noIhdr[15] = (byte)'X';
        File.WriteAllBytes(F("no_ihdr.png"), noIhdr);
        var damaged = png.ToArray();
        for (var i = damaged.Length / 2; i < damaged.Length / 2 + 64; i++)
        {
            damaged[i] ^= 0x5A;
        }
        File.WriteAllBytes(F("damaged_idat.png"), damaged);
        ImageFixtures.WriteTruncated("rgb_640x480.png", F("cut_1pct.png"), 0.01);
        ImageFixtures.WriteTruncated("rgb_640x480.png", F("cut_50pct.png"), 0.5);
        ImageFixtures.WriteTruncated("rgb_640x480.png", F("cut_99pct.png"), 0.99);
        ImageFixtures.WriteTruncated("base420_640x480.jpg", F("cut_2pct_base.jpg"), 0.02);
        ImageFixtures.WriteTruncated("base420_640x480.jpg", F("cut_50pct_base.jpg"), 0.5);
        ImageFixtures.WriteTruncated("prog420_480x640.jpg", F("cut_50pct_prog.jpg"), 0.5);
        var jpeg = File.ReadAllBytes(ImageFixtures.File("base420_640x480.jpg"));
        File.WriteAllBytes(F("no_eoi_base.jpg"), jpeg[..^2]);
        var prog = File.ReadAllBytes(ImageFixtures.File("prog420_480x640.jpg"));
        File.WriteAllBytes(F("no_eoi_prog.jpg"), prog[..^2]);
        File.Copy(ImageFixtures.File("i16_90x60.png"), F("grey16.png"), overwrite: true);
        return dir;
    }
}

/// <summary>
/// The child side of <see cref="ImageHostileTests.Refused_in_bounded_memory"/>: when the test assembly starts with
/// <see cref="EnvVar"/> naming a list of files, it preprocesses each one in turn, prints one line per file (path,
/// peak resident-set growth in kB, peak in kB, managed bytes allocated, "refused"/"decoded"/"failed", message) and
/// exits before the test runner starts. A module initializer, so the child needs no entry point of its own.
/// </summary>
internal static class ImageMemoryProbe
{
    public const string EnvVar = "SWC_IMAGE_MEMORY_PROBE";

#pragma warning disable CA2255 // a test executable's own start-up hook, not a library's
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void RunIfAsked()
    {
        var list = Environment.GetEnvironmentVariable(EnvVar);
        if (string.IsNullOrEmpty(list))
        {
            return;
        }
        // Load SkiaSharp's native library first, so its pages do not count against the first file.
        ImageInput.Preprocess8(ImageFixtures.File("rgb_7x5.png"), ImageTransform.Eval(224));
        Console.WriteLine($"baseline\tVmRSS {Kb("VmRSS:")} kB");
        foreach (var path in File.ReadAllLines(list))
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            var before = Kb("VmRSS:");
            ResetPeak();
            var managed = GC.GetTotalAllocatedBytes(precise: true);
            string outcome;
            try
            {
                ImageInput.Preprocess8(path, ImageTransform.Eval(224));
                outcome = "decoded\t";
            }
            catch (ImageException e)
            {
                outcome = "refused\t" + e.Message;
            }
            catch (Exception e)
            {
                outcome = $"failed\t{e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")}";
            }
            var peak = Kb("VmHWM:");
            managed = GC.GetTotalAllocatedBytes(precise: true) - managed;
            Console.WriteLine($"{path}\t{peak - before}\t{peak}\t{managed}\t{outcome}");
        }
        Console.Out.Flush();
        Environment.Exit(0);
    }

    private static void ResetPeak()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The peak then includes earlier peaks: still an upper bound on this call's.
        }
    }

    private static long Kb(string field)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith(field, StringComparison.Ordinal))
            {
                return long.Parse(line[field.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            }
        }
        throw new InvalidOperationException($"/proc/self/status has no {field}");
    }
}
