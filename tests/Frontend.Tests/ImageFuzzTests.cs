using ShiftWise.Frontend.IO.Images;
using ShiftWise.Tests.Shared;

namespace ShiftWise.Frontend.Tests;

/// <summary>
/// Mutation fuzzing of the image reader (tests/Shared/Fuzz.cs, as FuzzTests does for the other readers): every mutant
/// of a small PNG or JPEG fixture (truncations, bit flips, extreme integers over the header's sizes, repeated slices)
/// is decoded or refused with an ImageException and a message, within the fuzzer's time and allocation bounds
/// (32 MB + 64 bytes per input byte). SkiaSharp's native decoders run on every mutant: a crash there would end the
/// test process.
/// </summary>
public sealed class ImageFuzzTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    [Fact]
    public void Png_and_jpeg()
    {
        string[] names = ["rgb_7x5.png", "p_4bit_64x48.png", "la_120x90.png", "rgb_adam7_97x73.png",
            "bw_1bit_50x40.png", "rgb16_80x60.png", "p_trns_100x80.png", "tiny_7x5.jpg", "base422_200x300.jpg",
            "prog444_333x251.jpg", "cmyk_160x120.jpg"];
        var seeds = names.Select(n => File.ReadAllBytes(ImageFixtures.File(n))).ToArray();
        var r = Fuzz.Run("png/jpeg (SkiaSharp)", seeds, b =>
        {
            // The reader takes a path: each mutant gets its own file (the fuzzer runs each on a fresh thread).
            var path = _tmp.File(Guid.NewGuid().ToString("N") + ".img");
            File.WriteAllBytes(path, b);
            try
            {
                ImageInput.Preprocess8(path, ImageTransform.Eval(64));
            }
            finally
            {
                File.Delete(path);
            }
        });
        output.WriteLine(r.ToString());
        Assert.True(r.Faults.Count == 0, r.ToString());
        Assert.True(r.Tried == r.Requested, $"{r.Tried} of {r.Requested} inputs tried before the safety cap");
        Assert.True(r.Rejected > 0, "no mutant was rejected, so the fuzzer did not reach the checks");
    }
}
