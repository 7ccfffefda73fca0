using ShiftWise.Frontend.IO.Images;
using ShiftWise.IR;

namespace ShiftWise.Frontend.Tests;

/// <summary>ImageInput.Expand and IsImagePath (what a command's image argument names), and ImageTransform's checks.
/// </summary>
public sealed class ImagePathTests : IDisposable
{
    private readonly TempDir _tmp = new();

    public ImagePathTests()
    {
        foreach (var n in new[] { "b.png", "a.jpg", "C.JPEG", "_z.png", "10.png", "9.png", ".hidden.png", "notes.txt",
                     "x.npy" })
        {
            File.WriteAllBytes(_tmp.File(n), [1]);
        }
        Directory.CreateDirectory(_tmp.File("sub"));
        File.WriteAllBytes(Path.Combine(_tmp.File("sub"), "d.png"), [1]);
        Directory.CreateDirectory(_tmp.File("empty"));
    }

    public void Dispose() => _tmp.Dispose();

    private string[] In(params string[] names) => [.. names.Select(_tmp.File)];

    [Theory]
    [InlineData("a.png", true)]
    [InlineData("photos/b.JPG", true)]
    [InlineData("c.jpeg", true)]
    [InlineData("d.Jpeg", true)]
    [InlineData("e.npy", false)]
    [InlineData("f.gif", false)]
    [InlineData("png", false)]
    [InlineData("g.png.txt", false)]
    public void IsImagePath_goes_by_the_extension_in_any_case(string path, bool image) =>
        Assert.Equal(image, ImageInput.IsImagePath(path));

    [Fact]
    public void A_folder_gives_its_images_in_ordinal_order_not_hidden_not_npy_not_recursive() =>
        Assert.Equal(In("10.png", "9.png", "C.JPEG", "_z.png", "a.jpg", "b.png"), ImageInput.Expand(_tmp.Path));

    [Fact]
    public void A_glob_matches_in_its_folder_with_star_and_question_mark()
    {
        Assert.Equal(In("10.png", "9.png", "_z.png", "b.png"), ImageInput.Expand(_tmp.File("*.png")));
        Assert.Equal(In("9.png", "b.png"), ImageInput.Expand(_tmp.File("?.png")));
        Assert.Equal(In("10.png", "9.png", "C.JPEG", "_z.png", "a.jpg", "b.png", "x.npy"),
            ImageInput.Expand(_tmp.File("*")));
        Assert.Equal(In("x.npy"), ImageInput.Expand(_tmp.File("*.np?")));
        Assert.Equal(In(".hidden.png"), ImageInput.Expand(_tmp.File(".*")));
        Assert.Equal(In("a.jpg"), ImageInput.Expand(_tmp.File("a*g")));
    }

    [Fact]
    public void A_file_is_itself_when_it_is_npy_png_or_jpeg()
    {
        Assert.Equal(In("a.jpg"), ImageInput.Expand(_tmp.File("a.jpg")));
        Assert.Equal(In("x.npy"), ImageInput.Expand(_tmp.File("x.npy")));
        Assert.Equal(In("C.JPEG"), ImageInput.Expand(_tmp.File("C.JPEG")));
    }

    [Theory]
    [InlineData("*.gif", "matches no .npy, .png, .jpg or .jpeg file")]
    [InlineData("notes.*", "matches no .npy, .png, .jpg or .jpeg file")]
    [InlineData("empty", "holds no .png, .jpg or .jpeg file")]
    [InlineData("notes.txt", "is not a .npy, .png, .jpg or .jpeg file")]
    [InlineData("missing.png", "no such file or folder")]
    [InlineData("s*/d.png", "has a wildcard in a folder name")]
    [InlineData("nope/*.png", "no such folder")]
    public void Nothing_to_read_is_one_sentence_naming_the_argument(string arg, string phrase)
    {
        var input = _tmp.File(arg);
        var e = Assert.Throws<ImageException>(() => ImageInput.Expand(input));
        Assert.StartsWith(input + ": ", e.Message);
        Assert.Contains(phrase, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData(0, 0.875, "image size: 0 is not between 1 and 8192")]
    [InlineData(8193, 0.875, "image size: 8193 is not between 1 and 8192")]
    [InlineData(224, 0, "crop_pct: 0 is not a positive number")]
    [InlineData(224, double.NaN, "crop_pct: NaN is not a positive number")]
    [InlineData(224, 0.01, "crop_pct: 0.01 resizes the shorter side to 22400 pixels, not 1 to 16384")]
    public void A_transform_out_of_range_is_an_option_error(int size, double cropPct, string message)
    {
        var e = Assert.Throws<OptionException>(() =>
            ImageInput.Preprocess8(ImageFixtures.File("rgb_7x5.png"), new ImageTransform(size, cropPct)));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void Mean_and_std_need_three_finite_values_and_std_positive()
    {
        var png = ImageFixtures.File("rgb_7x5.png");
        Assert.Equal("mean: needs 3 values (R, G, B), not 2", Assert.Throws<OptionException>(() =>
            ImageInput.Load(png, new ImageTransform(64, Mean: [0.5, 0.5]))).Message);
        Assert.Equal("std: 0 is not a positive number", Assert.Throws<OptionException>(() =>
            ImageInput.Load(png, new ImageTransform(64, Std: [1, 0, 1]))).Message);
        Assert.Equal("mean: Infinity is not a finite number", Assert.Throws<OptionException>(() =>
            ImageInput.Load(png, new ImageTransform(64, Mean: [double.PositiveInfinity, 0, 0]))).Message);
    }

    [Fact]
    public void Eval_has_the_originals_defaults()
    {
        var t = ImageTransform.Eval(224);
        Assert.Equal(new ImageTransform(224, 0.875), t);
        Assert.Null(t.Mean);
        Assert.Equal([0.485, 0.456, 0.406], ImageTransform.ImageNetMean);
        Assert.Equal([0.229, 0.224, 0.225], ImageTransform.ImageNetStd);
    }
}
