using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>
/// add and mul with numpy broadcasting: each wanted operand's gradient is gy (times the other operand, for mul)
/// summed over the output positions that read each of its elements. The broadcast is simplified as the forward
/// does (<see cref="BinaryKernel.Collapse"/>): output rows of a contiguous inner run, each operand advancing or
/// staying put along each merged axis. Per operand, see <see cref="BroadcastGrad"/>.
/// </summary>
internal sealed class BinaryGradKernel : ElementGradKernel
{
    private readonly BroadcastGrad?[] _sides = new BroadcastGrad?[2];

    public BinaryGradKernel(KernelRequest r) : base(r)
    {
        bool mul = ((Binary)Op.Of).Kind == BinaryKind.Mul;
        var y = OutputTypes[0].Shape;
        int count = Count(r, y);
        var (dims, fa, fb) = BinaryKernel.Collapse(InputTypes[0].Shape, InputTypes[1].Shape, y);
        if (Wants(0)) _sides[0] = new BroadcastGrad(dims, fa, fb, mul, count);
        if (Wants(1)) _sides[1] = new BroadcastGrad(dims, fb, fa, mul, count);
    }

    public override string Label => $"{base.Label}:{_sides[0]?.Mode}/{_sides[1]?.Mode}";

    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        var g = Dy(inputs);
        for (int i = 0; i < 2; i++) _sides[i]?.Run(g, X(inputs, 1 - i), Gx(outputs, i)!.Value);
    }
}

/// <summary>
/// The gradient of one broadcast operand X against the other operand O, over merged dims (outer…, inner). Outer
/// dims where X advances index X's units, the others (where X is broadcast) are the repeats summed over, in a
/// fixed order. Three modes: Direct (X has the output's shape: one row each, no sum), Columns (X advances along
/// the inner run: each X row sums output rows in float blocks of 64 added in double, split over X rows and blocks
/// of 256 columns), Scalars (X is one value per output row: dot products of rows, in double, split over X's elements).
/// </summary>
internal sealed class BroadcastGrad
{
    public enum Path { Direct, Columns, Scalars, Empty }

    private const int Block = 256, RowBlock = 64;

    private readonly bool _mul, _vecO;
    private readonly int _inner, _units, _reps, _colBlocks, _parts;
    private readonly int[] _advDims, _outerDims;
    private readonly long[] _advRow, _advO, _outerO;
    private readonly int[] _repRow, _repO;
    private readonly float[][] _block;
    private readonly double[][] _sum;
    private readonly Action<int> _part;
    private Buf _g, _o, _gx;

    public BroadcastGrad(List<int> dims, List<bool> fx, List<bool> fo, bool mul, int count)
    {
        _mul = mul;
        int k = dims.Count - 1;
        _inner = dims[k];
        _vecO = fo[k];
        // output-row strides and offsets into O along the outer dims
        var rowStride = new long[k];
        long run = 1;
        for (int d = k - 1; d >= 0; d--)
        {
            rowStride[d] = run;
            run *= dims[d];
        }
        var oStride = new long[k + 1];
        run = 1;
        for (int d = k; d >= 0; d--)
        {
            oStride[d] = fo[d] ? run : 0;
            if (fo[d]) run *= dims[d];
        }
        var adv = Enumerable.Range(0, k).Where(d => fx[d]).ToArray();
        var bc = Enumerable.Range(0, k).Where(d => !fx[d]).ToArray();
        _advDims = adv.Select(d => dims[d]).ToArray();
        _advRow = adv.Select(d => rowStride[d]).ToArray();
        _advO = adv.Select(d => oStride[d]).ToArray();
        _outerDims = dims.Take(k).ToArray();
        _outerO = oStride.Take(k).ToArray();
        _units = _advDims.Aggregate(1, (a, b) => a * b);
        _reps = bc.Aggregate(1, (a, d) => a * dims[d]);
        _repRow = new int[_reps];
        _repO = new int[_reps];
        for (int j = 0; j < _reps; j++)
        {
            int rem = j;
            for (int t = bc.Length - 1; t >= 0; t--)
            {
                int i = rem % dims[bc[t]];
                rem /= dims[bc[t]];
                _repRow[j] += (int)(i * rowStride[bc[t]]);
                _repO[j] += (int)(i * oStride[bc[t]]);
            }
        }
        int rows = count / Math.Max(1, _inner);
        _part = Part;
        _block = [];
        _sum = [];
        if (count == 0)
        {
            Mode = Path.Empty;
            _parts = 1;
        }
        else if (!fx[k])
        {
            Mode = Path.Scalars;
            _parts = Par.Parts(count * 2L, _units);
        }
        else if (_reps == 1)
        {
            Mode = Path.Direct;
            _parts = Par.Parts(count * 2L, rows);
        }
        else
        {
            Mode = Path.Columns;
            _colBlocks = (_inner + Block - 1) / Block;
            _parts = Par.Parts(count * 2L, (long)_units * _colBlocks);
            int len = Math.Min(Block, _inner);
            _block = Enumerable.Range(0, _parts).Select(_ => new float[len]).ToArray();
            _sum = Enumerable.Range(0, _parts).Select(_ => new double[len]).ToArray();
        }
    }

    /// <summary>Which way the gradient is formed, for tests.</summary>
    public Path Mode { get; }

    /// <summary>Writes the gradient of X from the output gradient and the other operand.</summary>
    public void Run(Buf g, Buf other, Buf gx)
    {
        if (Mode == Path.Empty)
        {
            gx.Span.Clear();
            return;
        }
        if (Mode == Path.Direct && !_mul)
        {
            g.Span.CopyTo(gx.Span);
            return;
        }
        (_g, _o, _gx) = (g, other, gx);
        Par.Run(_parts, _part);
    }

    /// <summary>Output row and O offset of X's unit <paramref name="q"/> (index over the dims where X
    /// advances).</summary>
    private (long Row, long O) Unit(int q)
    {
        long row = 0, o = 0;
        for (int t = _advDims.Length - 1; t >= 0; t--)
        {
            int i = q % _advDims[t];
            q /= _advDims[t];
            row += i * _advRow[t];
            o += i * _advO[t];
        }
        return (row, o);
    }

    private void Part(int p)
    {
        ReadOnlySpan<float> g = _g.Span, o = _o.Span;
        var gx = _gx.Span;
        int inner = _inner;
        switch (Mode)
        {
            case Path.Direct:
            {
                var (s, e) = Par.Range(p, _parts, _units);
                for (int r = s; r < e; r++)
                {
                    long off = 0;
                    int rem = r;
                    for (int d = _outerDims.Length - 1; d >= 0; d--)
                    {
                        off += rem % _outerDims[d] * _outerO[d];
                        rem /= _outerDims[d];
                    }
                    var gr = g.Slice(r * inner, inner);
                    if (_vecO) Simd.Mul(gr, o.Slice((int)off, inner), gx.Slice(r * inner, inner));
                    else Simd.MulScalar(gr, o[(int)off], gx.Slice(r * inner, inner));
                }
                break;
            }
            case Path.Scalars:
            {
                var (s, e) = Par.Range(p, _parts, _units);
                for (int q = s; q < e; q++)
                {
                    var (row, off) = Unit(q);
                    double sum = 0;
                    for (int j = 0; j < _reps; j++)
                    {
                        var gr = g.Slice((int)(row + _repRow[j]) * inner, inner);
                        sum += _mul ? GradSimd.Dot(gr, o.Slice((int)(off + _repO[j]), inner)) : Simd.Sum(gr);
                    }
                    gx[q] = (float)sum;
                }
                break;
            }
            default:
            {
                var (s, e) = Par.Range(p, _parts, (long)_units * _colBlocks);
                for (int item = s; item < e; item++)
                {
                    int q = item / _colBlocks, k0 = item % _colBlocks * Block, len = Math.Min(Block, inner - k0);
                    var (row, off) = Unit(q);
                    var block = _block[p].AsSpan(0, len);
                    var sum = _sum[p].AsSpan(0, len);
                    sum.Clear();
                    for (int j0 = 0; j0 < _reps; j0 += RowBlock)
                    {
                        block.Clear();
                        for (int j = j0; j < Math.Min(_reps, j0 + RowBlock); j++)
                        {
                            var gr = g.Slice((int)(row + _repRow[j]) * inner + k0, len);
                            if (!_mul) Simd.AddTo(gr, block);
                            else if (_vecO) GradSimd.MulAddTo(gr, o.Slice((int)(off + _repO[j]) + k0, len), block);
                            else Simd.Axpy(o[(int)(off + _repO[j])], gr, block);
                        }
                        GradSimd.Widen(block, sum);
                    }
                    GradSimd.Narrow(sum, gx.Slice(q * inner + k0, len));
                }
                break;
            }
        }
    }
}

/// <summary>
/// mean: every input element gets its output's gradient over the count, a broadcast of gy (in its keepdim shape)
/// to x's shape, simplified as <see cref="BinaryKernel.Collapse"/> does: rows that are a scaled copy of a gy run,
/// or one scaled value (global average pooling: one value per (n, c) plane). Split over rows.
/// </summary>
internal sealed class MeanGradKernel : ElementGradKernel
{
    private readonly float _inv;
    private readonly int _inner, _rows, _parts;
    private readonly bool _vec;
    private readonly int[] _dims;
    private readonly long[] _stride;
    private readonly Action<int> _part;
    private Buf _g, _gx;

    public MeanGradKernel(KernelRequest r) : base(r)
    {
        var op = (Mean)Op.Of;
        var x = InputTypes[0].Shape;
        var axes = op.Axes.Select(x.Axis).ToHashSet();
        var keep = new Shape(Enumerable.Range(0, x.Rank).Select(d => axes.Contains(d) ? 1 : x[d]).ToArray());
        _inv = (float)(1.0 / axes.Aggregate(1L, (acc, a) => acc * x[a]));
        int count = Count(r, x);
        var (dims, fg, _) = BinaryKernel.Collapse(keep, keep, x);
        int k = dims.Count - 1;
        (_inner, _vec) = (dims[k], fg[k]);
        _rows = _inner == 0 ? 0 : count / _inner;
        _dims = dims.Take(k).ToArray();
        _stride = new long[k];
        long run = _vec ? _inner : 1;
        for (int d = k - 1; d >= 0; d--)
        {
            _stride[d] = fg[d] ? run : 0;
            if (fg[d]) run *= dims[d];
        }
        _parts = Par.Parts(count, _rows);
        _part = Part;
    }

    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        (_g, _gx) = (Dy(inputs), Gx(outputs, 0)!.Value);
        if (_rows > 0) Par.Run(_parts, _part);
    }

    private void Part(int p)
    {
        ReadOnlySpan<float> g = _g.Span;
        var gx = _gx.Span;
        var (s, e) = Par.Range(p, _parts, _rows);
        for (int row = s; row < e; row++)
        {
            long off = 0;
            int rem = row;
            for (int d = _dims.Length - 1; d >= 0; d--)
            {
                off += rem % _dims[d] * _stride[d];
                rem /= _dims[d];
            }
            var dst = gx.Slice(row * _inner, _inner);
            if (_vec) Simd.MulScalar(g.Slice((int)off, _inner), _inv, dst);
            else dst.Fill(g[(int)off] * _inv);
        }
    }
}
