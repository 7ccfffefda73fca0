using System.Runtime.InteropServices;

namespace ShiftWise.IR;

/// <summary>
/// A dense, row-major tensor: a <see cref="TensorType"/> and a typed array (float[], double[], Half[],
/// ushort[] for bf16, int[], long[]). Mutable storage, but the compiler treats tensors as values.
/// </summary>
public sealed class Tensor
{
    private Tensor(TensorType type, Array data)
    {
        Type = type;
        Data = data;
    }

    /// <summary>Element type and shape.</summary>
    public TensorType Type { get; }

    /// <summary>The backing array; its element type matches <see cref="DType"/>.</summary>
    public Array Data { get; }

    /// <summary>Element type.</summary>
    public DType DType => Type.DType;

    /// <summary>Shape.</summary>
    public Shape Shape => Type.Shape;

    /// <summary>Number of elements.</summary>
    public long Length => Data.LongLength;

    /// <summary>A zero-filled tensor.</summary>
    public static Tensor Zeros(TensorType type)
    {
        long n = type.Shape.Elements;
        if (n > Array.MaxLength)
        {
            throw new IrException($"tensor {type} has {n} elements, more than one array can hold");
        }
        Array a = type.DType switch
        {
            DType.F32 => new float[n],
            DType.F64 => new double[n],
            DType.F16 => new Half[n],
            DType.BF16 => new ushort[n],
            DType.I32 => new int[n],
            DType.I64 => new long[n],
            _ => throw new ArgumentOutOfRangeException(nameof(type)),
        };
        return new Tensor(type, a);
    }

    /// <summary>Wraps an existing array (not copied); its length and element type must match.</summary>
    public static Tensor Wrap(TensorType type, Array data)
    {
        var expected = type.DType switch
        {
            DType.F32 => typeof(float),
            DType.F64 => typeof(double),
            DType.F16 => typeof(Half),
            DType.BF16 => typeof(ushort),
            DType.I32 => typeof(int),
            DType.I64 => typeof(long),
            _ => throw new ArgumentOutOfRangeException(nameof(type)),
        };
        if (data.GetType().GetElementType() != expected || data.Rank != 1)
        {
            throw new IrException($"a {type.DType.Name()} tensor needs a {expected.Name}[], got {data.GetType().Name}");
        }
        if (data.LongLength != type.Shape.Elements)
        {
            throw new IrException($"tensor {type} needs {type.Shape.Elements} elements, got {data.LongLength}");
        }
        return new Tensor(type, data);
    }

    /// <summary>An f32 tensor from values.</summary>
    public static Tensor F32(Shape shape, params float[] values) => Wrap(new TensorType(DType.F32, shape), values);

    /// <summary>An f64 tensor from values.</summary>
    public static Tensor F64(Shape shape, params double[] values) => Wrap(new TensorType(DType.F64, shape), values);

    /// <summary>Converts doubles to a tensor of <paramref name="type"/>, rounding each value.</summary>
    public static Tensor FromDoubles(TensorType type, ReadOnlySpan<double> values)
    {
        var t = Zeros(type);
        if (values.Length != t.Length)
        {
            throw new IrException($"tensor {type} needs {t.Length} values, got {values.Length}");
        }
        switch (t.Data)
        {
            case float[] f:
                for (int i = 0; i < f.Length; i++) f[i] = (float)values[i];
                break;
            case double[] d:
                values.CopyTo(d);
                break;
            case Half[] h:
                for (int i = 0; i < h.Length; i++) h[i] = (Half)values[i];
                break;
            case ushort[] b:
                for (int i = 0; i < b.Length; i++) b[i] = BFloat16Bits.FromDouble(values[i]);
                break;
            case int[] n:
                for (int i = 0; i < n.Length; i++) n[i] = checked((int)values[i]);
                break;
            case long[] l:
                for (int i = 0; i < l.Length; i++) l[i] = checked((long)values[i]);
                break;
        }
        return t;
    }

    /// <summary>Every element widened to double.</summary>
    public double[] ToDoubles()
    {
        var r = new double[Length];
        switch (Data)
        {
            case float[] f:
                for (int i = 0; i < f.Length; i++) r[i] = f[i];
                break;
            case double[] d:
                d.CopyTo(r, 0);
                break;
            case Half[] h:
                for (int i = 0; i < h.Length; i++) r[i] = (double)h[i];
                break;
            case ushort[] b:
                for (int i = 0; i < b.Length; i++) r[i] = BFloat16Bits.ToDouble(b[i]);
                break;
            case int[] n:
                for (int i = 0; i < n.Length; i++) r[i] = n[i];
                break;
            case long[] l:
                for (int i = 0; i < l.Length; i++) r[i] = l[i];
                break;
        }
        return r;
    }

    /// <summary>The same values converted to another element type.</summary>
    public Tensor Cast(DType to) => to == DType ? this : FromDoubles(new TensorType(to, Shape), ToDoubles());

    /// <summary>The raw little-endian bytes of the storage (a view, not a copy).</summary>
    public Span<byte> Bytes() => Data switch
    {
        float[] f => MemoryMarshal.AsBytes(f.AsSpan()),
        double[] d => MemoryMarshal.AsBytes(d.AsSpan()),
        Half[] h => MemoryMarshal.AsBytes(h.AsSpan()),
        ushort[] b => MemoryMarshal.AsBytes(b.AsSpan()),
        int[] n => MemoryMarshal.AsBytes(n.AsSpan()),
        long[] l => MemoryMarshal.AsBytes(l.AsSpan()),
        _ => throw new InvalidOperationException(),
    };

    /// <summary>A tensor with the same storage viewed under another shape of equal size.</summary>
    public Tensor Reshape(Shape shape)
    {
        if (shape.Elements != Length)
        {
            throw new IrException($"cannot view {Type} as {shape}: element counts differ");
        }
        return new Tensor(new TensorType(DType, shape), Data);
    }

    /// <inheritdoc/>
    public override string ToString() => $"Tensor {Type}";
}
