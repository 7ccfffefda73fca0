namespace ShiftWise.Frontend.IO.Images;

/// <summary>
/// Photos as model inputs: PNG and JPEG files decoded (SkiaSharp) and preprocessed exactly as the original's
/// evaluation does (<see cref="ImageTransform"/>; PIL's bicubic resampling reproduced bit for bit,
/// <see cref="PilAxis"/>), and the image arguments of a command expanded to files.
/// </summary>
public static class ImageInput
{
    /// <summary>
    /// The most pixels an image may declare: 100 megapixels, twice a 50 MP camera's 8688 x 5792 and above the 61 MP of
    /// today's largest full-frame sensors, below the 179 MP at which PIL itself refuses an image as a decompression
    /// bomb. A header declaring more (a 100,000 x 100,000 PNG of a few hundred bytes) is refused before decoding; a
    /// PNG within it costs at most 4 bytes a pixel while it is decoded, a JPEG a few rows.
    /// </summary>
    public const long MaxPixels = 100_000_000;

    /// <summary>The longest side accepted, JPEG's own limit: it keeps rows and resampling tables small.</summary>
    public const int MaxSide = 65_535;

    private static readonly string[] ImageExtensions = [".png", ".jpg", ".jpeg"];

    /// <summary>
    /// The model input for the image at <paramref name="path"/>: <see cref="Preprocess8"/>, then ToTensor and
    /// Normalize as torch computes them in float32, <c>(x / 255f - mean) / std</c>; CHW order (3 x Size x Size, the
    /// layout of one NCHW batch item), R, G, B.
    /// </summary>
    public static float[] Load(string path, ImageTransform t)
    {
        var hwc = Preprocess8(path, t);
        var (mean, std) = (t.MeanF, t.StdF);
        var plane = t.Size * t.Size;
        var chw = new float[3 * plane];
        for (var c = 0; c < 3; c++)
        {
            for (var p = 0; p < plane; p++)
            {
                var x = hwc[p * 3 + c] / 255f;
                chw[c * plane + p] = (x - mean[c]) / std[c];
            }
        }
        return chw;
    }

    /// <summary>
    /// The image at <paramref name="path"/> converted to RGB, resized and centre-cropped as
    /// <see cref="ImageTransform"/> says, before ToTensor: <c>Size x Size x 3</c> bytes in HWC order (row by row,
    /// each pixel R, G, B), what <c>numpy.asarray</c> gives for the PIL image torchvision's transforms produce.
    /// </summary>
    /// <exception cref="ImageException">The file is missing, not a PNG or JPEG, over the size limits, truncated or
    /// damaged, or not <c>Size x Size</c> where the transform does not resize.</exception>
    public static byte[] Preprocess8(string path, ImageTransform t)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(t);
        t.Validate();
        PilResampler? resampler = null;
        ImageDecoder.Decode(path, (w, h) =>
        {
            resampler = new PilResampler(w, h, t.Plan(w, h, path));
            return resampler.Row;
        });
        return resampler!.Finish();
    }

    /// <summary>Whether <paramref name="path"/> names a PNG or JPEG by its extension (.png, .jpg, .jpeg, any case).
    /// </summary>
    public static bool IsImagePath(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        return HasExtension(path, ImageExtensions);
    }

    /// <summary>
    /// The input files an argument names: a file (.npy, .png, .jpg or .jpeg) as it is; a folder: its PNG and JPEG
    /// files (not .npy, not in subfolders, not hidden ones); a pattern with <c>*</c> and <c>?</c> in its last
    /// component (<c>photos/*.jpg</c>): the matching .npy, PNG and JPEG files of that folder, a leading dot matched
    /// only by a pattern that starts with one, as in a shell. Extensions match in any case; names are sorted
    /// ordinally (byte order, so the order is the same on every machine).
    /// </summary>
    /// <exception cref="ImageException">Nothing matches, the file has another extension, or a wildcard is in a
    /// folder name.</exception>
    public static IReadOnlyList<string> Expand(string input)
    {
        ArgumentNullException.ThrowIfNull(input);
        string[] inputExtensions = [".npy", .. ImageExtensions];
        var name = Path.GetFileName(input);
        var dir = Path.GetDirectoryName(input);
        if (dir is not null && dir.AsSpan().IndexOfAny('*', '?') >= 0)
        {
            throw new ImageException(input,
                "has a wildcard in a folder name, and * and ? may only be in the file name");
        }
        if (name.AsSpan().IndexOfAny('*', '?') >= 0)
        {
            var folder = string.IsNullOrEmpty(dir) ? "." : dir;
            if (!Directory.Exists(folder))
            {
                throw new ImageException(input, $"no such folder {folder}");
            }
            var hits = List(folder, dir, n => Glob(name, n) && HasExtension(n, inputExtensions));
            return hits.Count > 0 ? hits
                : throw new ImageException(input, "matches no .npy, .png, .jpg or .jpeg file");
        }
        if (Directory.Exists(input))
        {
            var hits = List(input, input, n => !n.StartsWith('.') && HasExtension(n, ImageExtensions));
            return hits.Count > 0 ? hits : throw new ImageException(input, "holds no .png, .jpg or .jpeg file");
        }
        if (!File.Exists(input))
        {
            throw new ImageException(input, "no such file or folder");
        }
        return HasExtension(input, inputExtensions) ? [input]
            : throw new ImageException(input, "is not a .npy, .png, .jpg or .jpeg file");
    }

    /// <summary>The files of <paramref name="folder"/> whose names pass <paramref name="keep"/>, joined to
    /// <paramref name="prefix"/> as the user wrote it, in ordinal order.</summary>
    private static List<string> List(string folder, string? prefix, Func<string, bool> keep)
    {
        var names = new List<string>();
        try
        {
            foreach (var f in new DirectoryInfo(folder).EnumerateFiles())
            {
                if (keep(f.Name))
                {
                    names.Add(f.Name);
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ImageException(folder, $"cannot be listed ({e.Message.TrimEnd('.')})", e);
        }
        names.Sort(StringComparer.Ordinal);
        return names.ConvertAll(n => string.IsNullOrEmpty(prefix) ? n : Path.Combine(prefix, n));
    }

    /// <summary>Shell-style matching of a whole name: <c>*</c> any run of characters, <c>?</c> one; ordinal.</summary>
    internal static bool Glob(string pattern, string name)
    {
        if (name.StartsWith('.') && !pattern.StartsWith('.'))
        {
            return false;
        }
        int p = 0, n = 0, star = -1, mark = 0;
        while (n < name.Length)
        {
            if (p < pattern.Length && (pattern[p] == '?' || pattern[p] == name[n]))
            {
                p++;
                n++;
            }
            else if (p < pattern.Length && pattern[p] == '*')
            {
                star = p++;
                mark = n;
            }
            else if (star >= 0)
            {
                p = star + 1;
                n = ++mark;
            }
            else
            {
                return false;
            }
        }
        while (p < pattern.Length && pattern[p] == '*')
        {
            p++;
        }
        return p == pattern.Length;
    }

    private static bool HasExtension(string path, string[] extensions)
    {
        var ext = Path.GetExtension(path);
        return Array.Exists(extensions, e => e.Equals(ext, StringComparison.OrdinalIgnoreCase));
    }
}
