using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace ShiftWise.Frontend.Tests;

/// <summary>Hand-built .pth archives: a zip around a pickle, and the pieces of a real one.</summary>
internal static class PthFiles
{
    /// <summary>Builds a zip with <c>root/data.pkl</c> and the given extra entries.</summary>
    public static MemoryStream Zip(byte[]? pickle, string root = "archive",
        params (string Name, byte[] Data)[] extra)
    {
        var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            var all = pickle is null ? extra : extra.Prepend(($"{root}/data.pkl", pickle));
            foreach (var (name, data) in all)
            {
                using var s = zip.CreateEntry(name, CompressionLevel.NoCompression).Open();
                s.Write(data);
            }
        }
        ms.Position = 0;
        return ms;
    }

    public static byte[] F32Bytes(params float[] v)
    {
        var b = new byte[v.Length * 4];
        for (int i = 0; i < v.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(i * 4), v[i]);
        }
        return b;
    }

    /// <summary>A .pth file's pickle and its other entries (storages, byteorder) under the root "archive".</summary>
    public static (byte[] Pickle, (string Name, byte[] Data)[] Others) Split(string path)
    {
        using var zip = ZipFile.OpenRead(path);
        byte[] pickle = [];
        var others = new List<(string, byte[])>();
        foreach (var e in zip.Entries)
        {
            using var s = e.Open();
            var bytes = new MemoryStream();
            s.CopyTo(bytes);
            string rest = e.FullName[(e.FullName.IndexOf('/', StringComparison.Ordinal) + 1)..];
            if (rest == "data.pkl")
            {
                pickle = bytes.ToArray();
            }
            else
            {
                others.Add(("archive/" + rest, bytes.ToArray()));
            }
        }
        return (pickle, [.. others]);
    }
}

/// <summary>A tiny protocol-2 pickle writer for hand-built test inputs.</summary>
internal sealed class PickleWriter
{
    private readonly List<byte> _b = [0x80, 2];

    public PickleWriter Op(char op, params byte[] args)
    {
        _b.Add((byte)op);
        _b.AddRange(args);
        return this;
    }

    public PickleWriter Raw(params byte[] bytes)
    {
        _b.AddRange(bytes);
        return this;
    }

    public PickleWriter Mark() => Op('(');

    public PickleWriter Str(string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        var len = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(len, bytes.Length);
        return Op('X', len).Raw(bytes);
    }

    public PickleWriter ShortStr(string s) => Raw(0x8c, (byte)s.Length).Raw(Encoding.UTF8.GetBytes(s));

    public PickleWriter Int(long v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(b, checked((int)v));
        return Op('J', b);
    }

    public PickleWriter Global(string module, string name) =>
        Op('c').Raw(Encoding.UTF8.GetBytes($"{module}\n{name}\n"));

    /// <summary>_rebuild_tensor_v2((persid storage), offset, size, stride, False, OrderedDict()).</summary>
    public PickleWriter Tensor(string storageType, string key, long numel, long offset, int[] size, long[] stride,
        bool long1Offset = false)
    {
        Global("torch._utils", "_rebuild_tensor_v2").Mark();
        Mark().Str("storage").Global("torch", storageType).Str(key).Str("cpu").Int(numel).Op('t').Op('Q');
        if (long1Offset)
        {
            Raw(0x8a, 1, (byte)offset);
        }
        else
        {
            Int(offset);
        }
        Mark();
        foreach (var d in size)
        {
            Int(d);
        }
        Op('t').Mark();
        foreach (var s in stride)
        {
            Int(s);
        }
        return Op('t').Raw(0x89).Global("collections", "OrderedDict").Op(')').Op('R').Op('t').Op('R');
    }

    public byte[] Stop() => [.. _b, (byte)'.'];
}
