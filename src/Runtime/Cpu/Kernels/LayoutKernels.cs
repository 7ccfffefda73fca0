using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>channel_select (index_select along an axis): one contiguous block copy per (outer, picked index).</summary>
public sealed class ChannelSelectKernel : CpuKernel
{
    private readonly int[] _indices;
    private readonly int _outer, _size, _inner, _parts;
    private readonly Action<int> _part;
    private Buf _x, _y;

    /// <summary>Binds the kernel to a node.</summary>
    public ChannelSelectKernel(KernelRequest r)
    {
        var (op, _) = KernelCheck.Prepare<ChannelSelect>(r);
        var x = r.InputTypes[0].Shape;
        int a = x.Axis(op.Axis);
        _indices = op.Indices.ToArray();
        (_size, _inner) = (x[a], (int)x.Strides()[a]);
        _outer = KernelCheck.Count(r, x) / Math.Max(1, _size * _inner);
        _parts = Par.Parts((long)_outer * _indices.Length * _inner, (long)_outer * _indices.Length);
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
        ReadOnlySpan<float> x = _x.Span;
        var y = _y.Span;
        int k = _indices.Length;
        var (s, e) = Par.Range(p, _parts, (long)_outer * k);
        for (int item = s; item < e; item++)
        {
            int o = item / k, i = item % k;
            x.Slice((o * _size + _indices[i]) * _inner, _inner).CopyTo(y.Slice(item * _inner, _inner));
        }
    }
}

/// <summary>concat: per outer index, each input's contiguous block copied to its offset along the axis.</summary>
public sealed class ConcatKernel : CpuKernel
{
    private readonly int[] _block, _offset;
    private readonly int _outer, _rowOut, _parts;
    private readonly Action<int> _part;
    private Buf[] _xs = [];
    private Buf _y;

    /// <summary>Binds the kernel to a node.</summary>
    public ConcatKernel(KernelRequest r)
    {
        var (op, outs) = KernelCheck.Prepare<Concat>(r);
        var y = outs[0].Shape;
        int a = y.Axis(op.Axis), inner = (int)y.Strides()[a];
        _outer = KernelCheck.Count(r, y) / Math.Max(1, y[a] * inner);
        _rowOut = y[a] * inner;
        _block = r.InputTypes.Select(t => t.Shape[a] * inner).ToArray();
        _offset = new int[_block.Length];
        for (int i = 1; i < _block.Length; i++) _offset[i] = _offset[i - 1] + _block[i - 1];
        _parts = Par.Parts((long)_outer * _rowOut, (long)_outer * _block.Length);
        _part = Part;
    }

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        (_xs, _y) = (inputs, outputs[0]);
        Par.Run(_parts, _part);
    }

    private void Part(int p)
    {
        var y = _y.Span;
        int k = _block.Length;
        var (s, e) = Par.Range(p, _parts, (long)_outer * k);
        for (int item = s; item < e; item++)
        {
            int o = item / k, i = item % k;
            _xs[i].Span.Slice(o * _block[i], _block[i]).CopyTo(y.Slice(o * _rowOut + _offset[i], _block[i]));
        }
    }
}

/// <summary>
/// permute. At construction the permutation is reduced: size-one axes dropped, input axes that stay neighbours
/// merged. What is left is a copy (identity), a batched 2-D transpose (covers NCHW↔NHWC and any swap of two axis
/// groups behind a batch), or the general case: rows of the output's last axis gathered with a constant stride.
/// </summary>
public sealed class PermuteKernel : CpuKernel
{
    private const int Tile = 16;

    private enum Path { Copy, Transpose, General }

    private readonly Path _path;
    private readonly int _count, _parts;
    private readonly int _batch, _r, _c, _tilesR;
    private readonly int[] _outDims = [];
    private readonly long[] _srcStride = [];
    private readonly Action<int> _part;
    private Buf _x, _y;

    /// <summary>Binds the kernel to a node.</summary>
    public PermuteKernel(KernelRequest r)
    {
        var (op, _) = KernelCheck.Prepare<Permute>(r);
        _count = KernelCheck.Count(r, r.InputTypes[0].Shape);
        var (dims, perm) = Reduce(r.InputTypes[0].Shape.ToArray(), op.Perm.ToArray());
        _part = Part;
        if (perm.Length <= 1 || _count == 0)
        {
            _path = Path.Copy;
            _parts = 1;
            return;
        }
        if (perm.SequenceEqual([1, 0]) || perm.SequenceEqual([0, 2, 1]))
        {
            // (batch, R, C) → (batch, C, R)
            _path = Path.Transpose;
            (_batch, _r, _c) = perm.Length == 2 ? (1, dims[0], dims[1]) : (dims[0], dims[1], dims[2]);
            _tilesR = (_r + Tile - 1) / Tile;
            _parts = Par.Parts(_count, (long)_batch * _tilesR);
            return;
        }
        _path = Path.General;
        _outDims = perm.Select(a => dims[a]).ToArray();
        var inStride = new long[dims.Length];
        inStride[^1] = 1;
        for (int d = dims.Length - 2; d >= 0; d--) inStride[d] = inStride[d + 1] * dims[d + 1];
        _srcStride = perm.Select(a => inStride[a]).ToArray();
        _parts = Par.Parts(_count, _count / _outDims[^1]);
    }

    /// <summary>Which path the reduced permutation takes, for tests.</summary>
    public override string Label => $"{nameof(PermuteKernel)}[{_path}]";

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        (_x, _y) = (inputs[0], outputs[0]);
        if (_path == Path.Copy)
        {
            _x.Span.CopyTo(_y.Span);
            return;
        }
        Par.Run(_parts, _part);
    }

    private void Part(int p)
    {
        ReadOnlySpan<float> x = _x.Span;
        var y = _y.Span;
        if (_path == Path.Transpose)
        {
            var (s, e) = Par.Range(p, _parts, (long)_batch * _tilesR);
            for (int item = s; item < e; item++)
            {
                int b = item / _tilesR, i0 = item % _tilesR * Tile, i1 = Math.Min(_r, i0 + Tile);
                var xb = x.Slice(b * _r * _c, _r * _c);
                var yb = y.Slice(b * _r * _c, _r * _c);
                for (int j0 = 0; j0 < _c; j0 += Tile)
                {
                    int j1 = Math.Min(_c, j0 + Tile);
                    for (int j = j0; j < j1; j++)
                    for (int i = i0; i < i1; i++)
                    {
                        yb[j * _r + i] = xb[i * _c + j];
                    }
                }
            }
            return;
        }
        int inner = _outDims[^1];
        long step = _srcStride[^1];
        var (rs, re) = Par.Range(p, _parts, _count / inner);
        for (int row = rs; row < re; row++)
        {
            long src = 0;
            int rem = row;
            for (int d = _outDims.Length - 2; d >= 0; d--)
            {
                src += rem % _outDims[d] * _srcStride[d];
                rem /= _outDims[d];
            }
            var yr = y.Slice(row * inner, inner);
            for (int j = 0; j < inner; j++) yr[j] = x[(int)(src + j * step)];
        }
    }

    /// <summary>
    /// The smallest equivalent permutation: input dims and perm after dropping size-one axes and merging input
    /// axes that are adjacent in both input and output.
    /// </summary>
    internal static (int[] Dims, int[] Perm) Reduce(int[] dims, int[] perm)
    {
        // renumber the input axes that are not size one
        var keep = Enumerable.Range(0, dims.Length).Where(a => dims[a] != 1).ToArray();
        var newIndex = new int[dims.Length];
        for (int i = 0; i < keep.Length; i++) newIndex[keep[i]] = i;
        var p = perm.Where(a => dims[a] != 1).Select(a => newIndex[a]).ToArray();
        var d = keep.Select(a => dims[a]).ToArray();
        // groups of consecutive input axes, in output order
        var groups = new List<List<int>>();
        foreach (int a in p)
        {
            if (groups.Count > 0 && groups[^1][^1] == a - 1) groups[^1].Add(a);
            else groups.Add([a]);
        }
        var byInput = groups.OrderBy(g => g[0]).ToList();
        var outDims = byInput.Select(g => g.Aggregate(1, (acc, a) => acc * d[a])).ToArray();
        var outPerm = groups.Select(g => byInput.IndexOf(g)).ToArray();
        return (outDims, outPerm);
    }
}

/// <summary>reshape: row-major order is unchanged, so it is a copy (outputs never alias inputs).</summary>
public sealed class ReshapeKernel : CpuKernel
{
    /// <summary>Binds the kernel to a node.</summary>
    public ReshapeKernel(KernelRequest r) => KernelCheck.Prepare<Reshape>(r);

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs) => inputs[0].Span.CopyTo(outputs[0].Span);
}
