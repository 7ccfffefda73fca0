using System.Buffers.Binary;
using System.IO.Compression;
using ShiftWise.IR;

namespace ShiftWise.Frontend.IO;

/// <summary>An idx array of unsigned bytes: its dimensions and values (row-major).</summary>
public sealed record IdxArray(int[] Dims, byte[] Data)
{
    /// <summary>Number of items (the first dimension).</summary>
    public int Count => Dims[0];
}

/// <summary>
/// The idx format of MNIST-style datasets (big-endian: two zero bytes, a type code, the number of dimensions, then
/// each dimension as a 32-bit integer, then the values), plain or gzip-compressed (by the ".gz" name). Unsigned bytes
/// only, which is what image and label files use. Everything is validated before it is trusted: the magic, the type,
/// 1–4 positive dimensions, a size the file really holds (no allocation from a header alone) and no trailing bytes.
/// Errors name the file.
/// </summary>
public static class Idx
{
    /// <summary>Refuses arrays larger than this (1 GiB).</summary>
    public const long MaxBytes = 1L << 30;

    /// <summary>Reads <paramref name="path"/>.</summary>
    public static IdxArray Read(string path)
    {
        try
        {
            using var file = File.OpenRead(path);
            using Stream s = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase)
                ? new GZipStream(file, CompressionMode.Decompress) : file;
            return Read(s, path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? null : file.Length);
        }
        catch (IrException e)
        {
            throw new IrException($"{path}: {e.Message}", e);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            throw new IrException($"{path}: cannot read it as idx ({e.Message})", e);
        }
    }

    /// <summary>
    /// Reads an idx array from a stream; <paramref name="length"/> is its size when known (uncompressed files).
    /// </summary>
    public static IdxArray Read(Stream s, long? length = null)
    {
        Span<byte> head = stackalloc byte[4];
        if (BoundedReader.ReadUpTo(s, head) != 4) throw new IrException("idx: shorter than its 4-byte header");
        if (head[0] != 0 || head[1] != 0)
        {
            throw new IrException($"idx: bad magic {head[0]:X2} {head[1]:X2} (expected 00 00)");
        }
        if (head[2] != 0x08)
        {
            throw new IrException($"idx: element type 0x{head[2]:X2} is not supported (only unsigned bytes, 0x08)");
        }
        int rank = head[3];
        if (rank < 1 || rank > 4) throw new IrException($"idx: {rank} dimensions (1 to 4 expected)");
        var dimBytes = new byte[4 * rank];
        if (BoundedReader.ReadUpTo(s, dimBytes) != dimBytes.Length)
        {
            throw new IrException("idx: the header ends inside the dimensions");
        }
        var dims = new int[rank];
        long total = 1;
        for (int i = 0; i < rank; i++)
        {
            uint d = BinaryPrimitives.ReadUInt32BigEndian(dimBytes.AsSpan(4 * i));
            if (d == 0 || d > int.MaxValue) throw new IrException($"idx: dimension {i} is {d}");
            dims[i] = (int)d;
            total *= d;
            if (total > MaxBytes)
            {
                throw new IrException($"idx: {string.Join("x", dims.Take(i + 1))} values is more than the {MaxBytes} "
                    + $"allowed");
            }
        }
        long expected = 4 + 4L * rank + total;
        if (length is { } len && len != expected)
        {
            throw new IrException($"idx: the header says {string.Join("x", dims)} ({expected} bytes in all) but the "
                + $"file has {len} bytes");
        }
        var data = BoundedReader.ReadBytes(s, (int)total,
            got => new IrException($"idx: truncated: {string.Join("x", dims)} needs {total} bytes of values, the file "
            + $"holds {got}"));
        Span<byte> extra = stackalloc byte[1];
        if (BoundedReader.ReadUpTo(s, extra) != 0)
        {
            throw new IrException($"idx: trailing bytes after the {string.Join("x", dims)} values");
        }
        return new IdxArray(dims, data);
    }

    /// <summary>Writes an idx array (plain), for tests and tools; atomically.</summary>
    public static void Write(string path, IdxArray a)
    {
        var bytes = new byte[4 + 4 * a.Dims.Length + a.Data.Length];
        bytes[2] = 0x08;
        bytes[3] = (byte)a.Dims.Length;
        for (int i = 0; i < a.Dims.Length; i++)
        {
            BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(4 + 4 * i), (uint)a.Dims[i]);
        }
        a.Data.CopyTo(bytes, 4 + 4 * a.Dims.Length);
        AtomicFile.WriteBytes(path, bytes);
    }
}

/// <summary>One split of an image-classification dataset: images N×H×W (bytes) and labels N.</summary>
public sealed record ImageSet(IdxArray Images, IdxArray Labels, int Classes)
{
    /// <summary>Number of images.</summary>
    public int Count => Images.Count;
}

/// <summary>
/// Fashion-MNIST as Debian's dataset-fashion-mnist installs it (/usr/share/datasets/fashion-mnist, gzip-compressed idx
/// files): 60,000 training and 10,000 test images of 28×28, ten classes. Images and labels are checked against each
/// other.
/// </summary>
public static class FashionMnist
{
    /// <summary>Where the Debian package puts it.</summary>
    public const string DefaultDir = "/usr/share/datasets/fashion-mnist";

    /// <summary>Whether the files are there.</summary>
    public static bool Installed(string dir = DefaultDir) =>
        File.Exists(Path.Combine(dir, "train-images-idx3-ubyte.gz"))
            && File.Exists(Path.Combine(dir, "t10k-labels-idx1-ubyte.gz"));

    /// <summary>Loads the training split ("train") or the test split ("t10k").</summary>
    public static ImageSet Load(string split, string dir = DefaultDir)
    {
        if (split is not ("train" or "t10k"))
        {
            throw new ArgumentException($"split '{split}' is train or t10k", nameof(split));
        }
        if (!Installed(dir))
        {
            throw new IrException($"Fashion-MNIST is not in {dir}; install Debian's dataset-fashion-mnist");
        }
        var imagesPath = Path.Combine(dir, $"{split}-images-idx3-ubyte.gz");
        var labelsPath = Path.Combine(dir, $"{split}-labels-idx1-ubyte.gz");
        var images = Idx.Read(imagesPath);
        var labels = Idx.Read(labelsPath);
        if (images.Dims.Length != 3)
        {
            throw new IrException($"{imagesPath}: {images.Dims.Length} dimensions, images need 3 (N, H, W)");
        }
        if (labels.Dims.Length != 1)
        {
            throw new IrException($"{labelsPath}: {labels.Dims.Length} dimensions, labels need 1");
        }
        if (images.Count != labels.Count)
        {
            throw new IrException($"{imagesPath} has {images.Count} images but {labelsPath} has {labels.Count} labels");
        }
        int bad = Array.FindIndex(labels.Data, l => l >= 10);
        if (bad >= 0)
        {
            throw new IrException($"{labelsPath}: label {labels.Data[bad]} at item {bad} is not a class 0..9");
        }
        return new ImageSet(images, labels, 10);
    }
}
