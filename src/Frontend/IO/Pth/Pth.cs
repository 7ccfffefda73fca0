using System.IO.Compression;
using System.Text;
using ShiftWise.IR;

namespace ShiftWise.Frontend.IO;

/// <summary>A PyTorch checkpoint could not be read; the message starts with the file (or stream label).</summary>
public sealed class PthException : IrException
{
    /// <summary>Creates the exception; the message is "<paramref name="file"/>: <paramref name="what"/>".</summary>
    public PthException(string file, string what) : base($"{file}: {what}")
    {
        File = file;
    }

    /// <summary>Creates the exception with a cause.</summary>
    public PthException(string file, string what, Exception inner) : base($"{file}: {what}", inner)
    {
        File = file;
    }

    /// <summary>The file path or stream label.</summary>
    public string File { get; }
}

/// <summary>
/// Reads the state_dict of a checkpoint written by <c>torch.save</c> (the zip format of torch 1.6 and later)
/// without Python and without running anything from the file. The archive holds one top-level folder (named
/// after the file's stem, or "archive") with <c>data.pkl</c>, a pickle of the saved object whose tensors point
/// by key at raw little-endian storages <c>data/&lt;key&gt;</c>. The pickle is read by a whitelisting unpickler
/// (<see cref="Unpickler"/>) that keeps objects of other classes as inert records; the whole pickle must pass it,
/// including entries other than the weights.
/// </summary>
public static class Pth
{
    /// <summary>The largest data.pkl accepted. A state_dict pickle holds only names and tensor headers (a few
    /// hundred KiB for the largest models); the weights themselves are separate entries.</summary>
    public const long MaxPickleLength = 64L << 20;

    private const string PickleName = "/data.pkl";

    /// <summary>
    /// Reads the state_dict of a .pth/.pt checkpoint: the entry <paramref name="key"/> names, or without one a
    /// 'model', 'state_dict' or 'model_ema' entry (the first present), or else the checkpoint itself when it is a
    /// dict of tensors (a bare state_dict). Other entries are parsed, objects of any class as inert records, then
    /// ignored. Tensors come back in the checkpoint's order, made contiguous; <c>*.num_batches_tracked</c> entries
    /// are included.
    /// </summary>
    public static IReadOnlyDictionary<string, Tensor> Read(string path, string? key = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        FileStream fs;
        try
        {
            fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PthException(path, $"cannot open: {e.Message}", e);
        }
        using (fs)
        {
            return Read(fs, path, key);
        }
    }

    /// <summary>Reads a checkpoint from a stream (a zip needs random access, so a non-seekable stream is first
    /// buffered in memory).</summary>
    /// <param name="s">The stream, positioned at the start of the archive.</param>
    /// <param name="label">Names the source in error messages (usually the path).</param>
    /// <param name="key">The checkpoint entry that holds the state_dict; null chooses as described above.</param>
    public static IReadOnlyDictionary<string, Tensor> Read(Stream s, string label, string? key = null)
    {
        ArgumentNullException.ThrowIfNull(s);
        ArgumentNullException.ThrowIfNull(label);
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException(".pth reading needs a little-endian host");
        }
        try
        {
            return ReadCore(s, label, key);
        }
        catch (InvalidDataException e)
        {
            throw new PthException(label, $"corrupt or truncated zip archive: {e.Message}", e);
        }
        catch (IOException e)
        {
            throw new PthException(label, $"read failed: {e.Message}", e);
        }
    }

    private static OrderedDictionary<string, Tensor> ReadCore(Stream s, string label, string? key)
    {
        if (!s.CanSeek)
        {
            var buffered = new MemoryStream();
            s.CopyTo(buffered);
            buffered.Position = 0;
            s = buffered;
        }
        CheckMagic(s, label);
        using var zip = new ZipArchive(s, ZipArchiveMode.Read, leaveOpen: true);
        var entries = new Dictionary<string, ZipArchiveEntry>(StringComparer.Ordinal);
        foreach (var e in zip.Entries)
        {
            // Two entries of one name would make "which storage is data/0" depend on the zip reader.
            if (!entries.TryAdd(e.FullName, e))
            {
                throw Fail(label, $"the archive holds two entries named '{e.FullName}'");
            }
        }
        string root = FindRoot(entries, label);
        CheckByteOrder(entries, root, label);

        var pickleEntry = entries[root + PickleName];
        if (pickleEntry.Length > MaxPickleLength)
        {
            throw Fail(label, $"{pickleEntry.FullName} is {pickleEntry.Length} bytes, over the "
                + $"{MaxPickleLength}-byte limit");
        }
        var pickle = ReadEntry(pickleEntry, (int)pickleEntry.Length, label);
        var (stateDict, where) = CheckpointEntries.Select(Unpickler.Load(pickle, label), key, label);
        return Materialize(stateDict, where, entries, root, label);
    }

    private static void CheckMagic(Stream s, string label)
    {
        long start = s.Position;
        Span<byte> magic = stackalloc byte[4];
        int got = BoundedReader.ReadUpTo(s, magic);
        s.Position = start;
        if (got == 0)
        {
            throw Fail(label, "the file is empty, not a PyTorch checkpoint");
        }
        if (magic[0] == 0x80)
        {
            throw Fail(label, "legacy checkpoint format (a bare pickle, written by torch < 1.6 or with "
                + "_use_new_zipfile_serialization=False) is not supported; re-save it with a current torch");
        }
        // Local file header, or the end record of an empty archive.
        if (got < 4 || magic[0] != 'P' || magic[1] != 'K' || !(magic[2] == 3 && magic[3] == 4
            || magic[2] == 5 && magic[3] == 6))
        {
            throw Fail(label, "not a PyTorch checkpoint: torch.save (torch >= 1.6) writes a zip archive, and "
                + "this file does not start like one");
        }
    }

    /// <summary>torch names the folder after the file's stem at save time, so a renamed file keeps its old
    /// folder name: look for the one folder that holds data.pkl instead of guessing its name.</summary>
    private static string FindRoot(Dictionary<string, ZipArchiveEntry> entries, string label)
    {
        var roots = entries.Keys
            .Where(n => n.EndsWith(PickleName, StringComparison.Ordinal)
                && n.IndexOf('/', StringComparison.Ordinal) == n.Length - PickleName.Length
                && n.Length > PickleName.Length)
            .Select(n => n[..^PickleName.Length])
            .Order(StringComparer.Ordinal)
            .ToList();
        if (roots.Count == 0)
        {
            var sample = string.Join(", ", entries.Keys.Order(StringComparer.Ordinal).Take(5).Select(n => $"'{n}'"));
            throw Fail(label, $"no <folder>/data.pkl entry, so this zip is not a torch.save checkpoint (entries: "
                + $"{(sample.Length == 0 ? "none" : sample)}{(entries.Count > 5 ? ", ..." : "")})");
        }
        if (roots.Count > 1)
        {
            throw Fail(label, $"{roots.Count} top-level folders hold a data.pkl ({string.Join(", ",
                roots.Select(r => $"'{r}/'"))}); a torch.save checkpoint has exactly one");
        }
        string root = roots[0];
        // torch.jit.save archives share the layout but pickle TorchScript classes; say so instead of failing
        // on the first __torch__ global.
        if (entries.ContainsKey(root + "/constants.pkl")
            || entries.Keys.Any(n => n.StartsWith(root + "/code/", StringComparison.Ordinal)))
        {
            throw Fail(label, "this is a TorchScript archive (torch.jit.save), not a torch.save checkpoint; save "
                + "model.state_dict() with torch.save instead");
        }
        return root;
    }

    /// <summary>Newer torch records the writer's byte order; storages are raw memory in that order.</summary>
    private static void CheckByteOrder(Dictionary<string, ZipArchiveEntry> entries, string root, string label)
    {
        if (!entries.TryGetValue(root + "/byteorder", out var e))
        {
            return; // torch < 2.0 wrote none, and only ever ran little-endian in practice
        }
        if (e.Length > 16)
        {
            throw Fail(label, $"{e.FullName} is {e.Length} bytes; expected 'little' or 'big'");
        }
        string order = Encoding.ASCII.GetString(ReadEntry(e, (int)e.Length, label)).Trim();
        if (order != "little")
        {
            throw Fail(label, $"the checkpoint was saved with byte order '{order}'; only 'little' is supported");
        }
    }

    private static OrderedDictionary<string, Tensor> Materialize(PickleDict stateDict, string where,
        Dictionary<string, ZipArchiveEntry> entries, string root, string label)
    {
        var views = new List<(string Name, TorchTensor View)>(stateDict.Items.Count);
        foreach (var (key, value) in stateDict.Items)
        {
            if (key is not string name)
            {
                throw Fail(label, $"{where} has a non-str key {key}");
            }
            if (value is PyObject { Kind: PyObjectKind.Tensor } other)
            {
                throw Fail(label, $"{where} entry '{name}' is a {other}, which is not read: only float32, float64, "
                    + "float16, bfloat16, int32 and int64 tensors are");
            }
            if (value is not TorchTensor view)
            {
                throw Fail(label, $"{where} entry '{name}' is a {PickleValues.TypeName(value)}, not a tensor");
            }
            views.Add((name, view));
        }

        // Check every storage entry before reading any, so a bad file fails before the big allocations.
        var storageEntries = new Dictionary<TorchStorage, ZipArchiveEntry>();
        var uses = new Dictionary<TorchStorage, int>();
        foreach (var (name, view) in views)
        {
            var st = view.Storage;
            if (!storageEntries.ContainsKey(st))
            {
                storageEntries[st] = StorageEntry(st, name, entries, root, label);
            }
            uses[st] = uses.GetValueOrDefault(st) + 1;
        }

        var result = new OrderedDictionary<string, Tensor>(views.Count, StringComparer.Ordinal);
        var shared = new Dictionary<TorchStorage, byte[]>();
        foreach (var (name, view) in views)
        {
            var st = view.Storage;
            var entry = storageEntries[st];
            int size = st.DType.Size();
            var tensor = Tensor.Zeros(new TensorType(st.DType, new Shape(view.Size)));
            if (uses[st] == 1 && view.IsContiguous)
            {
                // The common case: one tensor per storage, stored in order. Read straight into the tensor.
                using var stream = OpenEntry(entry, label);
                Skip(stream, view.Offset * size);
                int want = tensor.Bytes().Length;
                int got = BoundedReader.ReadUpTo(stream, tensor.Bytes());
                if (got != want)
                {
                    throw Fail(label, $"truncated: {entry.FullName} (tensor '{name}') ended {want - got} bytes early");
                }
                // The rest of the storage (normally nothing) is read only so that its checksum is verified.
                DrainToEnd(stream);
            }
            else
            {
                // Views that share a storage or are strided: read the storage once and copy each view out.
                if (!shared.TryGetValue(st, out var bytes))
                {
                    long total = st.Numel * size;
                    if (total > Array.MaxLength)
                    {
                        throw Fail(label, $"storage {entry.FullName} ({total} bytes), shared or strided by tensor "
                            + $"'{name}', is over the {Array.MaxLength}-byte limit");
                    }
                    bytes = ReadEntry(entry, (int)total, label);
                    shared[st] = bytes;
                }
                CopyView(bytes, tensor.Bytes(), view, size);
                if (--uses[st] == 0)
                {
                    shared.Remove(st);
                }
            }
            result.Add(name, tensor);
        }
        return result;
    }

    private static ZipArchiveEntry StorageEntry(TorchStorage st, string tensor,
        Dictionary<string, ZipArchiveEntry> entries, string root, string label)
    {
        string path = $"{root}/data/{st.Key}";
        if (!entries.TryGetValue(path, out var entry))
        {
            throw Fail(label, $"tensor '{tensor}' refers to storage '{st.Key}', but the archive has no {path}");
        }
        // torch writes each storage as exactly numel elements; Int128 keeps a forged numel from overflowing.
        Int128 expected = (Int128)st.Numel * st.DType.Size();
        if (entry.Length != expected)
        {
            throw Fail(label, $"{path} holds {entry.Length} bytes, but tensor '{tensor}' declares it as a storage "
                + $"of {st} ({expected} bytes)");
        }
        return entry;
    }

    /// <summary>Copies a strided view out of raw storage bytes into row-major order, element by element, with an
    /// odometer over the indices (the view was checked to lie inside the storage).</summary>
    private static void CopyView(ReadOnlySpan<byte> storage, Span<byte> dest, TorchTensor view, int size)
    {
        long n = view.Elements;
        if (view.IsContiguous)
        {
            storage.Slice((int)(view.Offset * size), (int)(n * size)).CopyTo(dest);
            return;
        }
        int rank = view.Size.Length;
        var index = new int[rank];
        long at = view.Offset;
        for (long i = 0; i < n; i++)
        {
            storage.Slice((int)(at * size), size).CopyTo(dest.Slice((int)(i * size), size));
            for (int d = rank - 1; d >= 0; d--)
            {
                at += view.Stride[d];
                if (++index[d] < view.Size[d])
                {
                    break;
                }
                at -= view.Stride[d] * view.Size[d];
                index[d] = 0;
            }
        }
    }

    private static byte[] ReadEntry(ZipArchiveEntry entry, int length, string label)
    {
        using var stream = OpenEntry(entry, label);
        var bytes = new byte[length];
        int got = BoundedReader.ReadUpTo(stream, bytes);
        if (got != length)
        {
            throw Fail(label, $"truncated: {entry.FullName} ended after {got} of its {length} bytes");
        }
        if (DrainToEnd(stream) > 0)
        {
            throw Fail(label, $"{entry.FullName} holds more than its declared {length} bytes");
        }
        return bytes;
    }

    /// <summary>Reads an entry stream to its end, which is where <see cref="Crc32Stream"/> compares the
    /// checksum, and returns how many bytes that took.</summary>
    private static long DrainToEnd(Stream s)
    {
        var scratch = new byte[1 << 12];
        long total = 0;
        int got;
        while ((got = s.Read(scratch)) > 0)
        {
            total += got;
        }
        return total;
    }

    private static void Skip(Stream s, long count)
    {
        var scratch = new byte[(int)Math.Min(count, 1 << 16)];
        while (count > 0)
        {
            int got = s.Read(scratch, 0, (int)Math.Min(count, scratch.Length));
            if (got == 0)
            {
                throw new EndOfStreamException("the storage entry ended before the tensor's offset");
            }
            count -= got;
        }
    }

    private static Crc32Stream OpenEntry(ZipArchiveEntry entry, string label) =>
        new(entry.Open(), entry.Crc32, actual => Fail(label, $"{entry.FullName} is corrupt: its CRC-32 is "
            + $"{actual:x8} but the archive records {entry.Crc32:x8}"));

    private static PthException Fail(string label, string what) => new(label, what);
}
