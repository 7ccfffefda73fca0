using ShiftWise.IR;

namespace ShiftWise.Frontend.Tests;

/// <summary>A fresh directory per test, deleted afterwards.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "sw-io-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Wraps bytes in a stream that cannot seek, like a pipe, so readers must not trust a length.</summary>
internal sealed class PipeStream(byte[] data) : Stream
{
    private readonly MemoryStream _inner = new(data);

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, count);
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _inner.Dispose();
        }
        base.Dispose(disposing);
    }
}

internal static class Samples
{
    public static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    /// <summary>A 2x3 tensor of <paramref name="t"/> with awkward but representable values.</summary>
    public static Tensor Of(DType t)
    {
        var type = TensorType.Of(t, 2, 3);
        return t switch
        {
            DType.F32 => Tensor.Wrap(type,
                new[] { 1.5f, -0f, float.NaN, float.PositiveInfinity, float.Epsilon, 3e38f }),
            DType.F64 => Tensor.Wrap(type, new[] { 0.1, -0.0, double.NaN, double.NegativeInfinity, 5e-324, 1e308 }),
            DType.F16 => Tensor.Wrap(type,
                new[] { (Half)1.5, (Half)(-0.0), Half.NaN, Half.MaxValue, Half.Epsilon, (Half)(-2) }),
            DType.BF16 => Tensor.Wrap(type, new ushort[] { 0x3FC0, 0x8000, 0x7FC0, 0x7F80, 0x0001, 0xC000 }),
            DType.I32 => Tensor.Wrap(type, new[] { 0, -1, int.MaxValue, int.MinValue, 42, 7 }),
            DType.I64 => Tensor.Wrap(type, new[] { 0L, -1L, long.MaxValue, long.MinValue, 1L << 40, 7L }),
            _ => throw new ArgumentOutOfRangeException(nameof(t)),
        };
    }

    /// <summary>Same type and bit-identical storage (so NaN and -0 count).</summary>
    public static void AssertSame(Tensor expected, Tensor actual)
    {
        Assert.Equal(expected.Type, actual.Type);
        Assert.Equal(expected.Bytes().ToArray(), actual.Bytes().ToArray());
    }
}
