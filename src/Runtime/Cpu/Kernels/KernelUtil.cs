using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>Construction-time checks every managed kernel shares.</summary>
internal static class KernelCheck
{
    /// <summary>
    /// Casts the node's op, re-runs its type inference on the request's input types (so a kernel never trusts
    /// shapes it did not check) and requires f32 everywhere except the inputs listed in <paramref name="notF32"/>.
    /// Returns the op and its output types.
    /// </summary>
    public static (T Op, TensorType[] Outputs) Prepare<T>(KernelRequest r, params int[] notF32) where T : Op
    {
        if (r.Node.Op is not T op)
        {
            throw Fail(r, $"a {typeof(T).Name} kernel cannot run op '{r.Node.Op.Name}'");
        }
        for (int i = 0; i < r.InputTypes.Count; i++)
        {
            if (r.InputTypes[i].DType != DType.F32 && !notF32.Contains(i))
            {
                throw Fail(r, $"input {i} is {r.InputTypes[i]}; the CPU target runs f32 only");
            }
        }
        TensorType[] outs;
        try
        {
            outs = op.Infer(r.InputTypes);
        }
        catch (IrException e)
        {
            throw new IrException($"{r.Node.Describe()}: {e.Message}", e);
        }
        foreach (var t in outs)
        {
            if (t.DType != DType.F32)
            {
                throw Fail(r, $"output type {t} is not f32; the CPU target runs f32 only");
            }
        }
        return (op, outs);
    }

    /// <summary>An exception that names the node.</summary>
    public static IrException Fail(KernelRequest r, string message) => new($"{r.Node.Describe()}: {message}");

    /// <summary>Element count as an int: buffers are float[] ranges, so nothing larger can be bound anyway.</summary>
    public static int Count(KernelRequest r, Shape s)
    {
        if (s.Elements > Array.MaxLength)
        {
            throw Fail(r, $"shape {s} has {s.Elements} elements, more than one buffer can hold");
        }
        return (int)s.Elements;
    }
}

/// <summary>
/// Static partitioning over the cores. Kernels split work into a fixed number of parts chosen at construction, so
/// per-part scratch can be allocated up front and <see cref="CpuKernel.Run"/> allocates no buffers (Parallel.For
/// itself keeps a little bookkeeping, which is not ours to avoid). Each output element is written by one part in a
/// fixed order, so results do not depend on the schedule.
/// </summary>
internal static class Par
{
    /// <summary>Below this many (roughly) flops a fork costs more than it saves.</summary>
    private const long MinWork = 1 << 15;

    /// <summary>Parts for <paramref name="items"/> independent items totalling <paramref name="work"/>.</summary>
    public static int Parts(long work, long items) =>
        work < MinWork ? 1 : (int)Math.Max(1, Math.Min(items, Environment.ProcessorCount));

    /// <summary>Runs <paramref name="part"/> for 0..parts−1, inline when there is one.</summary>
    public static void Run(int parts, Action<int> part)
    {
        if (parts == 1)
        {
            part(0);
        }
        else
        {
            CpuWorkers.For(parts, part);
        }
    }

    /// <summary>The items [start, end) of part <paramref name="part"/> of <paramref name="count"/>.</summary>
    public static (int Start, int End) Range(int part, int parts, long count) =>
        ((int)(count * part / parts), (int)(count * (part + 1) / parts));
}

/// <summary>Span loops over Vector256 with scalar tails (AVX2 on x64; the JIT emulates it where missing).</summary>
internal static class Simd
{
    private static Span<Vector256<float>> V(Span<float> s) => MemoryMarshal.Cast<float, Vector256<float>>(s);

    private static ReadOnlySpan<Vector256<float>> V(ReadOnlySpan<float> s) =>
        MemoryMarshal.Cast<float, Vector256<float>>(s);

    /// <summary>y = a + b.</summary>
    public static void Add(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)
    {
        var va = V(a[..y.Length]);
        var vb = V(b[..y.Length]);
        var vy = V(y);
        for (int i = 0; i < vy.Length; i++) vy[i] = va[i] + vb[i];
        for (int i = vy.Length * 8; i < y.Length; i++) y[i] = a[i] + b[i];
    }

    /// <summary>y = a · b.</summary>
    public static void Mul(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)
    {
        var va = V(a[..y.Length]);
        var vb = V(b[..y.Length]);
        var vy = V(y);
        for (int i = 0; i < vy.Length; i++) vy[i] = va[i] * vb[i];
        for (int i = vy.Length * 8; i < y.Length; i++) y[i] = a[i] * b[i];
    }

    /// <summary>y = x·s + b.</summary>
    public static void Affine(ReadOnlySpan<float> x, float s, float b, Span<float> y)
    {
        var vx = V(x[..y.Length]);
        var vy = V(y);
        var (vs, vb) = (Vector256.Create(s), Vector256.Create(b));
        for (int i = 0; i < vy.Length; i++) vy[i] = Vector256.FusedMultiplyAdd(vx[i], vs, vb);
        for (int i = vy.Length * 8; i < y.Length; i++) y[i] = MathF.FusedMultiplyAdd(x[i], s, b);
    }

    /// <summary>y = x·s + b element-wise with vectors s and b.</summary>
    public static void Affine(ReadOnlySpan<float> x, ReadOnlySpan<float> s, ReadOnlySpan<float> b, Span<float> y)
    {
        var vx = V(x[..y.Length]);
        var vs = V(s[..y.Length]);
        var vb = V(b[..y.Length]);
        var vy = V(y);
        for (int i = 0; i < vy.Length; i++) vy[i] = Vector256.FusedMultiplyAdd(vx[i], vs[i], vb[i]);
        for (int i = vy.Length * 8; i < y.Length; i++) y[i] = MathF.FusedMultiplyAdd(x[i], s[i], b[i]);
    }

    /// <summary>y += a·x.</summary>
    public static void Axpy(float a, ReadOnlySpan<float> x, Span<float> y)
    {
        var vx = V(x[..y.Length]);
        var vy = V(y);
        var va = Vector256.Create(a);
        for (int i = 0; i < vy.Length; i++) vy[i] = Vector256.FusedMultiplyAdd(vx[i], va, vy[i]);
        for (int i = vy.Length * 8; i < y.Length; i++) y[i] = MathF.FusedMultiplyAdd(x[i], a, y[i]);
    }

    /// <summary>y += x.</summary>
    public static void AddTo(ReadOnlySpan<float> x, Span<float> y)
    {
        var vx = V(x[..y.Length]);
        var vy = V(y);
        for (int i = 0; i < vy.Length; i++) vy[i] += vx[i];
        for (int i = vy.Length * 8; i < y.Length; i++) y[i] += x[i];
    }

    /// <summary>y += c.</summary>
    public static void AddTo(float c, Span<float> y)
    {
        var vy = V(y);
        var vc = Vector256.Create(c);
        for (int i = 0; i < vy.Length; i++) vy[i] += vc;
        for (int i = vy.Length * 8; i < y.Length; i++) y[i] += c;
    }

    /// <summary>y = x + c.</summary>
    public static void AddScalar(ReadOnlySpan<float> x, float c, Span<float> y) => Affine(x, 1f, c, y);

    /// <summary>y = x · c.</summary>
    public static void MulScalar(ReadOnlySpan<float> x, float c, Span<float> y)
    {
        var vx = V(x[..y.Length]);
        var vy = V(y);
        var vc = Vector256.Create(c);
        for (int i = 0; i < vy.Length; i++) vy[i] = vx[i] * vc;
        for (int i = vy.Length * 8; i < y.Length; i++) y[i] = x[i] * c;
    }

    /// <summary>Σx: eight float lanes (which keep long sums accurate), then lanes and tail added in double.</summary>
    public static double Sum(ReadOnlySpan<float> x)
    {
        var vx = V(x);
        var acc = Vector256<float>.Zero;
        for (int i = 0; i < vx.Length; i++) acc += vx[i];
        double s = 0;
        for (int l = 0; l < 8; l++) s += acc[l];
        for (int i = vx.Length * 8; i < x.Length; i++) s += x[i];
        return s;
    }

    /// <summary>Σ(x − m)², as <see cref="Sum"/>.</summary>
    public static double SumSqDev(ReadOnlySpan<float> x, float m)
    {
        var vx = V(x);
        var acc = Vector256<float>.Zero;
        var vm = Vector256.Create(m);
        for (int i = 0; i < vx.Length; i++)
        {
            var d = vx[i] - vm;
            acc = Vector256.FusedMultiplyAdd(d, d, acc);
        }
        double s = 0;
        for (int l = 0; l < 8; l++) s += acc[l];
        for (int i = vx.Length * 8; i < x.Length; i++) s += (double)(x[i] - m) * (x[i] - m);
        return s;
    }

    /// <summary>max x (−∞ for an empty span).</summary>
    public static float Max(ReadOnlySpan<float> x)
    {
        var vx = V(x);
        var acc = Vector256.Create(float.NegativeInfinity);
        for (int i = 0; i < vx.Length; i++) acc = Vector256.Max(acc, vx[i]);
        float m = float.NegativeInfinity;
        for (int l = 0; l < 8; l++) m = MathF.Max(m, acc[l]);
        for (int i = vx.Length * 8; i < x.Length; i++) m = MathF.Max(m, x[i]);
        return m;
    }

    /// <summary>y = max(y, x).</summary>
    public static void MaxTo(ReadOnlySpan<float> x, Span<float> y)
    {
        var vx = V(x[..y.Length]);
        var vy = V(y);
        for (int i = 0; i < vy.Length; i++) vy[i] = Vector256.Max(vy[i], vx[i]);
        for (int i = vy.Length * 8; i < y.Length; i++) y[i] = MathF.Max(y[i], x[i]);
    }

    /// <summary>y = e^(x − m), returning Σy in double.</summary>
    public static double ExpShift(ReadOnlySpan<float> x, float m, Span<float> y)
    {
        var vx = V(x[..y.Length]);
        var vy = V(y);
        var vm = Vector256.Create(m);
        var acc = Vector256<float>.Zero;
        for (int i = 0; i < vy.Length; i++)
        {
            vy[i] = Vector256.Exp(vx[i] - vm);
            acc += vy[i];
        }
        double s = 0;
        for (int l = 0; l < 8; l++) s += acc[l];
        for (int i = vy.Length * 8; i < y.Length; i++)
        {
            y[i] = MathF.Exp(x[i] - m);
            s += y[i];
        }
        return s;
    }

    /// <summary>y = e^(x − m) element-wise with a vector m.</summary>
    public static void ExpShift(ReadOnlySpan<float> x, ReadOnlySpan<float> m, Span<float> y)
    {
        var vx = V(x[..y.Length]);
        var vm = V(m[..y.Length]);
        var vy = V(y);
        for (int i = 0; i < vy.Length; i++) vy[i] = Vector256.Exp(vx[i] - vm[i]);
        for (int i = vy.Length * 8; i < y.Length; i++) y[i] = MathF.Exp(x[i] - m[i]);
    }
}
