using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>gelu, relu, sigmoid: a copy, then the shared vectorised activation in place, in parallel chunks.</summary>
public sealed class UnaryKernel : CpuKernel
{
    /// <summary>Chunks are cache-sized so that the copy and the activation meet the data while it is hot.</summary>
    private const int Chunk = 16384;

    private readonly UnaryKind _kind;
    private readonly int _count;
    private readonly int _parts;
    private readonly Action<int> _part;
    private Buf _x, _y;

    /// <summary>Binds the kernel to a node.</summary>
    public UnaryKernel(KernelRequest r)
    {
        var (op, outs) = KernelCheck.Prepare<Unary>(r);
        _kind = op.Kind;
        _count = KernelCheck.Count(r, outs[0].Shape);
        _parts = Par.Parts(_count * 8L, (_count + Chunk - 1) / Chunk);
        _part = Part;
    }

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        (_x, _y) = (inputs[0], outputs[0]);
        Par.Run(_parts, _part);
    }

    private void Part(int p)
    {
        var (s, e) = Par.Range(p, _parts, _count);
        for (int i = s; i < e; i += Chunk)
        {
            int len = Math.Min(Chunk, e - i);
            var y = _y.Span.Slice(i, len);
            _x.Span.Slice(i, len).CopyTo(y);
            switch (_kind)
            {
                case UnaryKind.Gelu: Activations.Gelu(y); break;
                case UnaryKind.Relu: Activations.Relu(y); break;
                default: Activations.Sigmoid(y); break;
            }
        }
    }
}

/// <summary>
/// add and mul with numpy broadcasting. At construction the broadcast is reduced to its simplest form: axes of
/// size one dropped, neighbouring axes that broadcast the same way merged. What remains is rows of a contiguous
/// innermost run in which each operand either advances or stays put; equal shapes become one row, and a per-channel
/// operand ((1,C,1,1) or (N,C,1,1) against NCHW) becomes one scalar per (n, c) row.
/// </summary>
public sealed class BinaryKernel : CpuKernel
{
    private readonly BinaryKind _kind;
    private readonly int[] _outer;
    private readonly long[] _strideA, _strideB;
    private readonly int _inner, _rows, _parts;
    private readonly bool _innerA, _innerB;
    private readonly Action<int> _part;
    private Buf _a, _b, _y;

    /// <summary>Binds the kernel to a node.</summary>
    public BinaryKernel(KernelRequest r)
    {
        var (op, outs) = KernelCheck.Prepare<Binary>(r);
        _kind = op.Kind;
        var (dims, fa, fb) = Collapse(r.InputTypes[0].Shape, r.InputTypes[1].Shape, outs[0].Shape);
        int k = dims.Count - 1;
        _inner = dims[k];
        (_innerA, _innerB) = (fa[k], fb[k]);
        _outer = dims.Take(k).ToArray();
        _strideA = Strides(dims, fa);
        _strideB = Strides(dims, fb);
        _rows = (int)(KernelCheck.Count(r, outs[0].Shape) / Math.Max(1, _inner));
        _parts = Par.Parts((long)_rows * _inner * 2, _rows);
        _part = Part;
    }

    /// <summary>How the broadcast was simplified, for tests: "rows×inner" and the inner mode.</summary>
    public override string Label =>
        $"{nameof(BinaryKernel)}[{_rows}x{_inner},{(_innerA ? "a" : "1")}{(_innerB ? "b" : "1")}]";

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        (_a, _b, _y) = (inputs[0], inputs[1], outputs[0]);
        Par.Run(_parts, _part);
    }

    private void Part(int p)
    {
        var (s, e) = Par.Range(p, _parts, _rows);
        ReadOnlySpan<float> a = _a.Span, b = _b.Span;
        var y = _y.Span;
        bool add = _kind == BinaryKind.Add;
        for (int row = s; row < e; row++)
        {
            long oa = 0, ob = 0;
            int rem = row;
            for (int d = _outer.Length - 1; d >= 0; d--)
            {
                int i = rem % _outer[d];
                rem /= _outer[d];
                oa += i * _strideA[d];
                ob += i * _strideB[d];
            }
            var yr = y.Slice(row * _inner, _inner);
            if (_innerA && _innerB)
            {
                var ar = a.Slice((int)oa, _inner);
                var br = b.Slice((int)ob, _inner);
                if (add) Simd.Add(ar, br, yr);
                else Simd.Mul(ar, br, yr);
            }
            else
            {
                // add and mul commute, so the operand that stays put is the scalar either way
                var run = _innerA ? a.Slice((int)oa, _inner) : b.Slice((int)ob, _inner);
                float scalar = _innerA ? b[(int)ob] : a[(int)oa];
                if (add) Simd.AddScalar(run, scalar, yr);
                else Simd.MulScalar(run, scalar, yr);
            }
        }
    }

    /// <summary>
    /// The merged broadcast: dims of the output and, per dim, whether a and b advance along it (false = size 1
    /// there, broadcast). Always at least one dim.
    /// </summary>
    internal static (List<int> Dims, List<bool> A, List<bool> B) Collapse(Shape a, Shape b, Shape y)
    {
        var dims = new List<int>();
        var fa = new List<bool>();
        var fb = new List<bool>();
        for (int d = 0; d < y.Rank; d++)
        {
            if (y[d] == 1) continue;
            int da = d - (y.Rank - a.Rank), db = d - (y.Rank - b.Rank);
            bool ga = da >= 0 && a[da] != 1, gb = db >= 0 && b[db] != 1;
            if (dims.Count > 0 && fa[^1] == ga && fb[^1] == gb)
            {
                dims[^1] *= y[d];
            }
            else
            {
                dims.Add(y[d]);
                fa.Add(ga);
                fb.Add(gb);
            }
        }
        if (dims.Count == 0)
        {
            dims.Add(1);
            fa.Add(true);
            fb.Add(true);
        }
        return (dims, fa, fb);
    }

    /// <summary>Row-major strides of an operand over the merged dims, 0 where it broadcasts.</summary>
    private static long[] Strides(List<int> dims, List<bool> advances)
    {
        var s = new long[dims.Count];
        long run = 1;
        for (int d = dims.Count - 1; d >= 0; d--)
        {
            s[d] = advances[d] ? run : 0;
            if (advances[d]) run *= dims[d];
        }
        return s;
    }
}

/// <summary>
/// drop_path. Eval: the identity, a copy (outputs never alias inputs). Train: each sample scaled by 1/(1−p) or
/// dropped, by the op's seeded draw for the step input (an i64 scalar, bound as a float holding the integer;
/// step 0 without it). The grad kernel of drop_path uses the same <see cref="Factor"/>.
/// </summary>
public sealed class DropPathKernel : CpuKernel
{
    private readonly DropPath _op;
    private readonly int _n, _per, _parts;
    private readonly bool _hasStep;
    private readonly float[] _factor;
    private readonly Action<int> _part;
    private Buf _x, _y;

    /// <summary>Binds the kernel to a node.</summary>
    public DropPathKernel(KernelRequest r)
    {
        (_op, _) = KernelCheck.Prepare<DropPath>(r, 1);
        var x = r.InputTypes[0].Shape;
        int count = KernelCheck.Count(r, x);
        _n = x[0];
        _per = count / Math.Max(1, _n);
        _hasStep = r.InputTypes.Count == 2;
        _factor = new float[_n];
        _parts = Par.Parts(count, _n);
        _part = Part;
    }

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        if (_op.Mode == Mode.Eval)
        {
            inputs[0].Span.CopyTo(outputs[0].Span);
            return;
        }
        long step = _hasStep ? Step(inputs[1]) : 0;
        for (int b = 0; b < _n; b++) _factor[b] = Factor(_op, b, step);
        (_x, _y) = (inputs[0], outputs[0]);
        Par.Run(_parts, _part);
    }

    private void Part(int p)
    {
        var (s, e) = Par.Range(p, _parts, _n);
        for (int b = s; b < e; b++)
        {
            Simd.MulScalar(_x.Span.Slice(b * _per, _per), _factor[b], _y.Span.Slice(b * _per, _per));
        }
    }

    /// <summary>
    /// The train-mode multiplier of sample <paramref name="b"/>: 1/(1−p) when kept, 0 when dropped.
    /// </summary>
    internal static float Factor(DropPath op, int b, long step) =>
        op.Mode == Mode.Eval || op.Prob == 0 ? 1f : op.Keeps(b, step) ? (float)(1 / (1 - op.Prob)) : 0f;

    /// <summary>The value of the step input (an integer held in a float).</summary>
    internal static long Step(Buf step) => checked((long)step.Span[0]);
}
