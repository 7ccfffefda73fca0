using System.Globalization;
using ShiftWise.IR;

namespace ShiftWise.Frontend.IO.Images;

/// <summary>
/// The original's evaluation transform (ConvNeXt's and timm's <c>datasets.py</c> <c>build_transform</c>, the
/// <c>is_train=False</c> branch), applied to a PIL image opened with <c>.convert('RGB')</c>:
/// <list type="bullet">
/// <item>size &gt; 32 and &lt; 384: <c>Resize(int(size / crop_pct), BICUBIC)</c> (the shorter side to that length,
/// the longer side to <c>int(length * long / short)</c>), then <c>CenterCrop(size)</c>;</item>
/// <item>size ≥ 384: <c>Resize((size, size), BICUBIC)</c>, no crop ("warping");</item>
/// <item>size ≤ 32: nothing (the original feeds such images as they are, so they must be size x size);</item>
/// </list>
/// then <c>ToTensor()</c> (divide by 255) and <c>Normalize(mean, std)</c>. Records compare arrays by reference.
/// </summary>
/// <param name="Size">The model's input size in pixels (the crop, or the square the image is warped to).</param>
/// <param name="CropPct">The fraction of the resized shorter side kept by the centre crop (timm's 224/256).</param>
/// <param name="Mean">The per-channel mean (R, G, B) subtracted after dividing by 255; null: ImageNet's.</param>
/// <param name="Std">The per-channel standard deviation divided by; null: ImageNet's.</param>
public sealed record ImageTransform(int Size, double CropPct = 0.875, double[]? Mean = null, double[]? Std = null)
{
    /// <summary>The largest <see cref="Size"/> accepted (a model input of 8192 x 8192 is far beyond any use).</summary>
    public const int MaxSize = 8192;

    /// <summary>The largest resized shorter side, <c>int(Size / CropPct)</c>, accepted.</summary>
    public const int MaxResizedSide = 16384;

    /// <summary>ImageNet's mean (timm's IMAGENET_DEFAULT_MEAN), the original's default.</summary>
    public static IReadOnlyList<double> ImageNetMean { get; } = [0.485, 0.456, 0.406];

    /// <summary>ImageNet's standard deviation (timm's IMAGENET_DEFAULT_STD), the original's default.</summary>
    public static IReadOnlyList<double> ImageNetStd { get; } = [0.229, 0.224, 0.225];

    /// <summary>The evaluation transform at <paramref name="size"/> with the original's defaults.</summary>
    public static ImageTransform Eval(int size) => new(size);

    /// <summary>The mean in use, as float32 (torch's Normalize holds it as a float32 tensor).</summary>
    internal float[] MeanF => ToFloats(Mean ?? [.. ImageNetMean]);

    /// <summary>The standard deviation in use, as float32.</summary>
    internal float[] StdF => ToFloats(Std ?? [.. ImageNetStd]);

    /// <summary>Throws an <see cref="OptionException"/> naming the first setting out of range.</summary>
    internal void Validate()
    {
        if (Size < 1 || Size > MaxSize)
        {
            throw new OptionException($"image size: {Size} is not between 1 and {MaxSize}");
        }
        if (!double.IsFinite(CropPct) || CropPct <= 0)
        {
            throw new OptionException($"crop_pct: {Num(CropPct)} is not a positive number");
        }
        if (Size > 32 && Size < 384)
        {
            var side = Math.Floor(Size / CropPct);
            if (side < 1 || side > MaxResizedSide)
            {
                throw new OptionException($"crop_pct: {Num(CropPct)} resizes the shorter side to {Num(side)} "
                    + $"pixels, not 1 to {MaxResizedSide}");
            }
        }
        CheckTriple("mean", Mean, positive: false);
        CheckTriple("std", Std, positive: true);
    }

    /// <summary>
    /// Where an image of <paramref name="width"/> x <paramref name="height"/> goes: the size it is resized to and
    /// the crop's top-left corner in that resized image (negative, or past its edge, where torchvision's
    /// CenterCrop pads with zeros).
    /// </summary>
    internal ResizePlan Plan(int width, int height, string file)
    {
        if (Size <= 32)
        {
            if (width != Size || height != Size)
            {
                throw new ImageException(file, $"is {width} x {height} pixels, but at image size {Size} the "
                    + "original's evaluation transform neither resizes nor crops (it does above 32), so it must be "
                    + $"{Size} x {Size}");
            }
            return new ResizePlan(width, height, 0, 0, Size);
        }
        if (Size >= 384)
        {
            return new ResizePlan(Size, Size, 0, 0, Size);
        }
        // torchvision's Resize(int): the shorter side to the target, the longer to int(target * long / short). The
        // product is exact in a double (at most 16384 * 65535) and Python's int / int is the correctly rounded
        // quotient, as is this division, so the truncation below gives torchvision's length bit for bit.
        var target = (int)(Size / CropPct);
        var (shortSide, longSide) = width <= height ? (width, height) : (height, width);
        var scaled = (int)((double)((long)target * longSide) / shortSide);
        var (w, h) = width <= height ? (target, scaled) : (scaled, target);
        return new ResizePlan(w, h, CropOffset(h, Size), CropOffset(w, Size), Size);
    }

    /// <summary>
    /// torchvision's CenterCrop along one side: when the crop is larger, the image is first padded by
    /// (crop - extent) // 2 before it (so the crop starts that far before the image); otherwise the crop starts at
    /// int(round((extent - crop) / 2.0)), Python's round, which rounds halves to even.
    /// </summary>
    internal static int CropOffset(int extent, int crop) =>
        crop > extent ? -((crop - extent) / 2) : (int)Math.Round((extent - crop) / 2.0, MidpointRounding.ToEven);

    private static void CheckTriple(string name, double[]? values, bool positive)
    {
        if (values is null)
        {
            return;
        }
        if (values.Length != 3)
        {
            throw new OptionException($"{name}: needs 3 values (R, G, B), not {values.Length}");
        }
        foreach (var v in values)
        {
            if (!double.IsFinite(v) || (positive && v <= 0))
            {
                throw new OptionException($"{name}: {Num(v)} is not a {(positive ? "positive" : "finite")} number");
            }
        }
    }

    private static float[] ToFloats(double[] v) => [(float)v[0], (float)v[1], (float)v[2]];

    private static string Num(double v) => v.ToString("R", CultureInfo.InvariantCulture);
}

/// <summary>
/// Where an image goes: resized to <paramref name="Width"/> x <paramref name="Height"/>, then the
/// <paramref name="Size"/> x <paramref name="Size"/> window at (<paramref name="Top"/>, <paramref name="Left"/>) of
/// it is kept, zeros where the window leaves the resized image.
/// </summary>
internal readonly record struct ResizePlan(int Width, int Height, int Top, int Left, int Size);
