using System.Buffers.Binary;
using System.Runtime.InteropServices;
using SkiaSharp;

namespace ShiftWise.Frontend.IO.Images;

/// <summary>Receives decoded row <c>y</c>: 1 byte a pixel (grey) or 4 (R, G, B, unpremultiplied alpha).</summary>
internal delegate void RowSink(int y, ReadOnlySpan<byte> pixels, int bytesPerPixel);

/// <summary>
/// Decodes PNG and JPEG files with SkiaSharp into 8-bit rows with what PIL's <c>Image.open(path).convert('RGB')</c>
/// (torchvision's default loader, the original's) makes of them:
/// <list type="bullet">
/// <item>no colour management: PIL ignores ICC profiles, gAMA and cHRM, so Skia decodes with no target colour
/// space;</item>
/// <item>alpha is dropped, not composited (PIL's RGBA, LA and transparent-palette conversions to RGB keep the colour
/// channels as stored), so Skia decodes unpremultiplied;</item>
/// <item>16-bit colour PNGs: PIL keeps each sample's high byte (its "RGB;16B" and "RGBA;16B" unpackers, checked with
/// Debian's python3-pil 9.4: 0x80FF gives 128), as Skia does when it decodes them to 8 bits;</item>
/// <item>16-bit greyscale PNGs are refused: PIL opens them as mode I and its I-to-RGB conversion clamps every value
/// to 0..255 (so 300 becomes 255, and most such images come out white), which needs the full 16-bit value, and Skia
/// only gives the high byte;</item>
/// <item>EXIF orientation is not applied (PIL's open does not apply it either).</item>
/// </list>
/// Before any pixel buffer is allocated the header's size is checked against <see cref="ImageInput.MaxPixels"/> and
/// <see cref="ImageInput.MaxSide"/>. JPEGs are decoded a few rows at a time (Skia's scanline decoder), so a large photo
/// costs a row buffer here; Skia decodes PNGs whole, into 1 (grey) or 4 bytes a pixel. A file that ends early or
/// fails to decode is refused, as PIL refuses it ("image file is truncated").
/// </summary>
internal static class ImageDecoder
{
    private const int RowsPerRead = 16;
    private static readonly byte[] PngSignature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>
    /// Decodes <paramref name="path"/>: checks the header, calls <paramref name="start"/> with the width and height
    /// for the sink that takes the rows, then hands it every row, top to bottom.
    /// </summary>
    public static void Decode(string path, Func<int, int, RowSink> start)
    {
        var format = Sniff(path);
        SKCodec? codec;
        SKCodecResult result;
        try
        {
            codec = SKCodec.Create(path, out result);
        }
        catch (Exception e)
            when (e is DllNotFoundException or TypeInitializationException or EntryPointNotFoundException)
        {
            throw new ImageException(path, "cannot be decoded: SkiaSharp's native library (libSkiaSharp.so) did not "
                + $"load, which on Debian needs the package libfontconfig1 ({e.GetBaseException().Message})", e);
        }
        if (codec is null)
        {
            throw new ImageException(path, Why(result, format, "header"));
        }
        using (codec)
        {
            var expected = format == "PNG" ? SKEncodedImageFormat.Png : SKEncodedImageFormat.Jpeg;
            if (codec.EncodedFormat != expected)
            {
                throw new ImageException(path,
                    $"not a PNG or JPEG image (SkiaSharp reads it as {codec.EncodedFormat})");
            }
            var (w, h) = (codec.Info.Width, codec.Info.Height);
            CheckSize(path, w, h);
            if (format == "JPEG")
            {
                CheckJpegLength(path, w, h);
            }
            var grey = codec.Info.ColorType == SKColorType.Gray8 && codec.Info.AlphaType == SKAlphaType.Opaque;
            var info = grey
                ? new SKImageInfo(w, h, SKColorType.Gray8, SKAlphaType.Opaque, null)
                : new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul, null);
            var sink = start(w, h);
            if (format == "JPEG")
            {
                DecodeJpegRows(path, codec, info, sink);
            }
            else
            {
                DecodePngWhole(path, codec, info, sink);
            }
        }
    }

    /// <summary>Refuses a size over the limits before anything of that size is allocated.</summary>
    internal static void CheckSize(string path, long w, long h)
    {
        if (w < 1 || h < 1)
        {
            throw new ImageException(path, $"declares {w} x {h} pixels, an empty image");
        }
        if (w * h > ImageInput.MaxPixels)
        {
            throw new ImageException(path,
                $"declares {w} x {h} pixels, over the {ImageInput.MaxPixels / 1_000_000}-megapixel limit");
        }
        if (w > ImageInput.MaxSide || h > ImageInput.MaxSide)
        {
            throw new ImageException(path,
                $"declares {w} x {h} pixels, a side over the {ImageInput.MaxSide}-pixel limit");
        }
    }

    /// <summary>
    /// Refuses a Huffman-coded JPEG too short for the size it declares, before it is decoded: every 8 x 8 block of
    /// the first component costs at least one bit (a Huffman code has one at least: baseline codes each block's DC
    /// and end-of-block, a progressive DC scan each block's DC), so fewer bytes than blocks / 8 is a damaged or cut
    /// file. It matters for progressive JPEGs, which libjpeg decodes into a whole-image coefficient buffer (2 bytes a
    /// sample, 6 a pixel at 4:4:4): without this an 18 KB file declaring 10,000 x 10,000 pixels made it touch 600 MB.
    /// Arithmetic-coded JPEGs (rare) can spend less than a bit on a block and are not checked.
    /// </summary>
    private static void CheckJpegLength(string path, int w, int h)
    {
        var (marker, length) = JpegFrameMarker(path);
        var blocks = ((w + 7L) / 8) * ((h + 7L) / 8);
        if (marker is >= 0xC0 and <= 0xC7 && length * 8 < blocks)
        {
            throw new ImageException(path, $"truncated or damaged: its {length} bytes cannot hold the {w} x {h} pixels "
                + "its header declares (a JPEG spends at least a bit on each 8 x 8 block)");
        }
    }

    /// <summary>
    /// Refuses a PNG too short for the size it declares, before Skia allocates the image: deflate expands its input
    /// at most 1032-fold (a 258-byte match costs two bits at least), so a complete PNG holds at least 1/1032 of its
    /// filtered scanlines (a filter byte and the row's samples, per row). It keeps a small cut or damaged file from
    /// costing the whole image's memory; a genuine bomb near the limit still can (4 bytes a pixel, 400 MB at 100
    /// megapixels), which is what the pixel limit bounds.
    /// </summary>
    private static void CheckPngLength(string path, long w, long h, int depth, int colorType, long length)
    {
        var channels = colorType switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, 6 => 4, _ => 0 };
        if (channels == 0 || depth is not (1 or 2 or 4 or 8 or 16))
        {
            throw new ImageException(path, $"damaged PNG header: bit depth {depth} with colour type {colorType}");
        }
        var scanlines = h * (1 + (w * channels * depth + 7) / 8);
        if (length * 1032 < scanlines)
        {
            throw new ImageException(path, $"truncated or damaged: its {length} bytes cannot hold the {w} x {h} pixels "
                + "its header declares (deflate expands at most 1032-fold)");
        }
    }

    /// <summary>The JPEG's frame marker (SOF0 = 0xC0 ... SOF15; -1 if none comes before the first scan) and the file's
    /// length, found by skipping the marker segments before it.</summary>
    private static (int Marker, long Length) JpegFrameMarker(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 4096);
        fs.Position = 2; // after SOI
        while (fs.ReadByte() == 0xFF)
        {
            int m;
            do
            {
                m = fs.ReadByte();
            }
            while (m == 0xFF);
            if (m is >= 0xC0 and <= 0xCF and not (0xC4 or 0xC8 or 0xCC))
            {
                return (m, fs.Length);
            }
            if (m is < 0 or 0xD9 or 0xDA)
            {
                break;
            }
            if (m is 0x01 or (>= 0xD0 and <= 0xD7))
            {
                continue;
            }
            var len = (fs.ReadByte() << 8) | fs.ReadByte();
            if (len < 2)
            {
                break;
            }
            fs.Seek(len - 2, SeekOrigin.Current);
        }
        return (-1, fs.Length);
    }

    /// <summary>
    /// Reads the first bytes: "PNG" or "JPEG", or an <see cref="ImageException"/>. For a PNG the header chunk
    /// (IHDR) is read here, so that its size is refused before Skia sees the file and a 16-bit greyscale image is
    /// told apart (Skia reports it as 8-bit grey).
    /// </summary>
    private static string Sniff(string path)
    {
        var head = new byte[33];
        int got;
        long length;
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
            got = fs.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
            length = fs.Length;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ImageException(path, "no such file", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ImageException(path, $"cannot be read ({e.Message.TrimEnd('.')})", e);
        }
        if (got >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF)
        {
            return "JPEG";
        }
        if (got < 8 || !head.AsSpan(0, 8).SequenceEqual(PngSignature))
        {
            throw new ImageException(path, got == 0 ? "an empty file, not a PNG or JPEG image"
                : "not a PNG or JPEG image");
        }
        if (got < head.Length)
        {
            throw new ImageException(path, "truncated: the file ends inside the PNG header");
        }
        if (BinaryPrimitives.ReadUInt32BigEndian(head.AsSpan(8)) != 13 || !head.AsSpan(12, 4).SequenceEqual("IHDR"u8))
        {
            throw new ImageException(path, "damaged PNG: its first chunk is not a 13-byte IHDR");
        }
        var w = BinaryPrimitives.ReadUInt32BigEndian(head.AsSpan(16));
        var h = BinaryPrimitives.ReadUInt32BigEndian(head.AsSpan(20));
        CheckSize(path, w, h);
        CheckPngLength(path, w, h, head[24], head[25], length);
        if (head[24] == 16 && head[25] == 0)
        {
            throw new ImageException(path, "is a 16-bit greyscale PNG, which is refused because PIL (the original's "
                + "loader) clamps such pixels to 0..255 while SkiaSharp keeps their high byte, so neither would match; "
                + "convert it to 8 bits first");
        }
        return "PNG";
    }

    private static void DecodeJpegRows(string path, SKCodec codec, SKImageInfo info, RowSink sink)
    {
        var r = codec.StartScanlineDecode(info);
        if (r != SKCodecResult.Success)
        {
            throw new ImageException(path, Why(r, "JPEG", "data"));
        }
        var rowBytes = info.RowBytes;
        var buf = GC.AllocateUninitializedArray<byte>(checked(rowBytes * RowsPerRead), pinned: true);
        var ptr = Marshal.UnsafeAddrOfPinnedArrayElement(buf, 0);
        for (var y = 0; y < info.Height; y += RowsPerRead)
        {
            var want = Math.Min(RowsPerRead, info.Height - y);
            var got = codec.GetScanlines(ptr, want, rowBytes);
            for (var i = 0; i < Math.Min(got, want); i++)
            {
                sink(y + i, buf.AsSpan(i * rowBytes, rowBytes), info.BytesPerPixel);
            }
            if (got < want)
            {
                throw new ImageException(path,
                    $"truncated or damaged: the JPEG data ends after row {y + Math.Max(got, 0)} of {info.Height}");
            }
        }
    }

    private static void DecodePngWhole(string path, SKCodec codec, SKImageInfo info, RowSink sink)
    {
        // At most MaxPixels * 4 bytes (400 MB at 100 megapixels): Skia's PNG codec has no row-by-row decoding.
        var rowBytes = info.RowBytes;
        var buf = GC.AllocateUninitializedArray<byte>(checked(rowBytes * info.Height), pinned: true);
        var r = codec.GetPixels(info, Marshal.UnsafeAddrOfPinnedArrayElement(buf, 0));
        if (r != SKCodecResult.Success)
        {
            throw new ImageException(path, Why(r, "PNG", "data"));
        }
        for (var y = 0; y < info.Height; y++)
        {
            sink(y, buf.AsSpan(y * rowBytes, rowBytes), info.BytesPerPixel);
        }
    }

    private static string Why(SKCodecResult r, string format, string part) => r switch
    {
        SKCodecResult.IncompleteInput => $"truncated: the {format} {part} ends early",
        SKCodecResult.ErrorInInput or SKCodecResult.InvalidInput => $"truncated or damaged {format} {part}",
        _ => $"SkiaSharp could not decode its {format} {part} ({r})",
    };
}
