using System.Text;

namespace ShiftWise.Bench.Onnx;

/// <summary>
/// A minimal protobuf wire-format encoder: varints, length-delimited fields and nested messages. Enough to write
/// ONNX ModelProto files; repeated scalars are written unpacked (valid for the proto2 onnx.proto).
/// </summary>
internal sealed class ProtoWriter
{
    private const int WireVarint = 0, WireLen = 2;
    private readonly MemoryStream _buf = new();

    /// <summary>The encoded bytes so far.</summary>
    public byte[] ToArray() => _buf.ToArray();

    private void Varint(ulong v)
    {
        while (v >= 0x80)
        {
            _buf.WriteByte((byte)(v | 0x80));
            v >>= 7;
        }
        _buf.WriteByte((byte)v);
    }

    private void Tag(int field, int wire) => Varint(((ulong)(uint)field << 3) | (uint)wire);

    /// <summary>An int64/int32/enum field (negative values take ten bytes, as protobuf requires).</summary>
    public ProtoWriter Int(int field, long value)
    {
        Tag(field, WireVarint);
        Varint(unchecked((ulong)value));
        return this;
    }

    /// <summary>A repeated int64 field, unpacked.</summary>
    public ProtoWriter Ints(int field, IEnumerable<long> values)
    {
        foreach (long v in values) Int(field, v);
        return this;
    }

    /// <summary>A bytes field.</summary>
    public ProtoWriter Bytes(int field, ReadOnlySpan<byte> value)
    {
        Tag(field, WireLen);
        Varint((ulong)value.Length);
        _buf.Write(value);
        return this;
    }

    /// <summary>A UTF-8 string field.</summary>
    public ProtoWriter String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

    /// <summary>A nested message field, encoded by <paramref name="body"/>.</summary>
    public ProtoWriter Message(int field, Action<ProtoWriter> body)
    {
        var inner = new ProtoWriter();
        body(inner);
        return Bytes(field, inner._buf.GetBuffer().AsSpan(0, (int)inner._buf.Length));
    }
}
