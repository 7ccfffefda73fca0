using System.Runtime.InteropServices;

namespace ShiftWise.CudaEmu;

/// <summary>
/// Native float memory for emulated kernels, 256-byte aligned, with guard zones of <see cref="GuardFloats"/> floats
/// before and after. Guards and fresh contents hold the all-ones NaN, so a read past the end shows up as NaN and a
/// write past the end is caught by <see cref="CheckGuards"/>.
/// </summary>
public sealed unsafe class EmuBuffer : IDisposable
{
    /// <summary>Floats in each guard zone (4 KiB).</summary>
    public const int GuardFloats = 1024;

    /// <summary>The bits every guard float and every fresh float holds (a quiet NaN).</summary>
    public const uint FillBits = 0xFFFFFFFFu;

    private float* _base;

    private EmuBuffer(long floats)
    {
        if (floats < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(floats), floats, "a buffer cannot have a negative size");
        }
        Floats = floats;
        var total = (nuint)(floats + 2L * GuardFloats) * sizeof(float);
        _base = (float*)NativeMemory.AlignedAlloc(total, 256);
        new Span<uint>(_base, GuardFloats).Fill(FillBits);
        for (long at = 0; at < floats; at += int.MaxValue)
        {
            new Span<uint>(_base + GuardFloats + at, (int)Math.Min(int.MaxValue, floats - at)).Fill(FillBits);
        }
        new Span<uint>(_base + GuardFloats + floats, GuardFloats).Fill(FillBits);
    }

    /// <summary>Finalizer: frees the memory of a buffer that was not disposed.</summary>
    ~EmuBuffer() => Free();

    /// <summary>A buffer of <paramref name="floats"/> floats, all NaN.</summary>
    public static EmuBuffer Alloc(long floats) => new(floats);

    /// <summary>A buffer holding a copy of <paramref name="data"/>.</summary>
    public static EmuBuffer From(ReadOnlySpan<float> data)
    {
        var b = new EmuBuffer(data.Length);
        data.CopyTo(b.Span);
        return b;
    }

    /// <summary>The first float (device-pointer equivalent).</summary>
    public IntPtr Ptr
    {
        get
        {
            ObjectDisposedException.ThrowIf(_base == null, this);
            return (IntPtr)(_base + GuardFloats);
        }
    }

    /// <summary>Its size in floats.</summary>
    public long Floats { get; }

    /// <summary>The contents (buffers of more than int.MaxValue floats need <see cref="Ptr"/>).</summary>
    public Span<float> Span => new((void*)Ptr, checked((int)Floats));

    /// <summary>The contents as raw bits.</summary>
    public Span<uint> Bits => new((void*)Ptr, checked((int)Floats));

    /// <summary>A copy of the contents.</summary>
    public float[] ToArray() => Span.ToArray();

    /// <summary>Throws when a guard float changed (a write out of bounds); <paramref name="what"/> names it.</summary>
    public void CheckGuards(string what)
    {
        ObjectDisposedException.ThrowIf(_base == null, this);
        Check(new ReadOnlySpan<uint>(_base, GuardFloats), what, before: true);
        Check(new ReadOnlySpan<uint>(_base + GuardFloats + Floats, GuardFloats), what, before: false);
    }

    private void Check(ReadOnlySpan<uint> guard, string what, bool before)
    {
        int bad = guard.IndexOfAnyExcept(FillBits);
        if (bad < 0) return;
        int last = guard.LastIndexOfAnyExcept(FillBits);
        // offsets relative to the buffer: negative before it, >= Floats after it
        long from = before ? bad - GuardFloats : Floats + bad;
        long to = before ? last - GuardFloats : Floats + last;
        float v = BitConverter.UInt32BitsToSingle(guard[bad]);
        var where = before ? "before" : "past the end of";
        throw new EmuException($"{what}: out-of-bounds write {where} a buffer of {Floats} floats " +
            $"(floats [{from}, {to}] changed, e.g. index {from} = {v})");
    }

    /// <summary>Frees the memory.</summary>
    public void Dispose()
    {
        Free();
        GC.SuppressFinalize(this);
    }

    private void Free()
    {
        if (_base == null) return;
        NativeMemory.AlignedFree(_base);
        _base = null;
    }
}
