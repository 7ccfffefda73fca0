using ShiftWise.Frontend.IO;
using ShiftWise.Frontend.IO.Images;

namespace ShiftWise.Frontend.Tests;

/// <summary>
/// ImageInput.Preprocess8 against what torchvision's evaluation transform makes of the same files
/// (tools/fixtures/gen_image_fixtures.py: Debian's PIL 9.4 and torchvision 0.14).
/// </summary>
public sealed class ImageInputTests(ITestOutputHelper log)
{
    public static TheoryData<ImageCase> PngCases => [.. ImageFixtures.Cases().Where(c => !c.IsJpeg)];

    public static TheoryData<ImageCase> JpegCases => [.. ImageFixtures.Cases().Where(c => c.IsJpeg)];

    /// <summary>
    /// PNG decoding is lossless in PIL and in Skia, and the resampling is PIL's arithmetic, so every byte must be
    /// equal: this fails on any mode conversion that differs (alpha composited, palette or 16-bit handled otherwise,
    /// a colour profile applied) and on any step of the resampling or crop that differs by one.
    /// </summary>
    [Theory]
    [MemberData(nameof(PngCases))]
    public void Png_matches_torchvision_exactly(ImageCase c)
    {
        var t = new ImageTransform(c.Size, c.CropPct);
        var path = ImageFixtures.File(c.Image);
        if (c.Expected.StartsWith("refused", StringComparison.Ordinal))
        {
            var e = Assert.Throws<ImageException>(() => ImageInput.Preprocess8(path, t));
            Assert.Contains("16-bit greyscale", e.Message);
            return;
        }
        var got = ImageInput.Preprocess8(path, t);
        var want = ImageFixtures.ReadExpected(c.Expected, c.Size);
        var (max, differing, _) = Compare(want, got);
        log.WriteLine($"{c}: {differing} of {want.Length} bytes differ, max {max}");
        Assert.Equal(want, got);
    }

    /// <summary>
    /// JPEG: PIL (Debian's libjpeg-turbo 2.1) and SkiaSharp (the libjpeg-turbo built into libSkiaSharp) decode with
    /// different builds, and a JPEG decoder is only required to be accurate to about one level per sample (the
    /// integer IDCT's IEEE 1180 bound, plus rounding in chroma upsampling and the YCbCr/CMYK conversion), so the
    /// decoded pixels may differ slightly and the bicubic filter (whose weights' absolute values sum to at most about
    /// 1.3) can carry a 2-level decode difference to 3. The bounds: at most 3 levels anywhere, at most 0.5 on average.
    /// Measured with SkiaSharp 4.156.1 on these 11 cases (baseline and progressive, 4:2:0, 4:2:2, 4:4:4, grey, CMYK,
    /// EXIF-rotated, 7x5 and 300x20): max 0 and mean 0, every byte equal (for these files the two decoders' IDCT,
    /// upsampling and colour conversion agree exactly).
    /// </summary>
    [Theory]
    [MemberData(nameof(JpegCases))]
    public void Jpeg_is_within_the_decoder_tolerance(ImageCase c)
    {
        var got = ImageInput.Preprocess8(ImageFixtures.File(c.Image), new ImageTransform(c.Size, c.CropPct));
        var want = ImageFixtures.ReadExpected(c.Expected, c.Size);
        var (max, differing, mean) = Compare(want, got);
        log.WriteLine($"{c}: {differing} of {want.Length} bytes differ, max {max}, mean {mean:F4}");
        Assert.True(max <= JpegMaxAbs, $"{c}: max |difference| {max} > {JpegMaxAbs}");
        Assert.True(mean <= JpegMeanAbs, $"{c}: mean |difference| {mean:F4} > {JpegMeanAbs}");
    }

    /// <summary>The largest difference allowed for a JPEG (of 255; measured: 0).</summary>
    private const int JpegMaxAbs = 3;

    /// <summary>The largest mean absolute difference allowed for a JPEG (of 255; measured: 0).</summary>
    private const double JpegMeanAbs = 0.5;

    /// <summary>Load is Preprocess8, then ToTensor and Normalize in float32, CHW, as torch computes them: equal to
    /// torchvision's own tensor bit for bit, and to the formula for a non-default mean and std.</summary>
    [Fact]
    public void Load_is_torchvisions_tensor()
    {
        var path = ImageFixtures.File("rgb_333x251.png");
        var torch = Npy.Read(ImageFixtures.File("load_s48.npy"));
        Assert.Equal([3, 48, 48], torch.Shape.ToArray());
        Assert.Equal((float[])torch.Data, ImageInput.Load(path, ImageTransform.Eval(48)));

        double[] mean = [0.5, 0.25, 0.125], std = [0.5, 2, 0.3];
        var t = new ImageTransform(48, 0.875, mean, std);
        var u8 = ImageInput.Preprocess8(path, t);
        var x = ImageInput.Load(path, t);
        for (var c = 0; c < 3; c++)
        {
            for (var p = 0; p < 48 * 48; p++)
            {
                var want = (u8[p * 3 + c] / 255f - (float)mean[c]) / (float)std[c];
                Assert.Equal(BitConverter.SingleToInt32Bits(want), BitConverter.SingleToInt32Bits(x[c * 48 * 48 + p]));
            }
        }
    }

    internal static (int Max, int Differing, double Mean) Compare(byte[] want, byte[] got)
    {
        Assert.Equal(want.Length, got.Length);
        int max = 0, differing = 0;
        long sum = 0;
        for (var i = 0; i < want.Length; i++)
        {
            var d = Math.Abs(want[i] - got[i]);
            max = Math.Max(max, d);
            differing += d > 0 ? 1 : 0;
            sum += d;
        }
        return (max, differing, (double)sum / want.Length);
    }
}
