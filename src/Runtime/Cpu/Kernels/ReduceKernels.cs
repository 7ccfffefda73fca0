using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>
/// mean over any axes. At construction size-one axes are dropped and neighbouring axes that are both reduced or
/// both kept are merged. Up to three groups (keep, reduce, keep) run as contiguous vector sums: global average
/// pooling of NCHW (axes [2,3]) is one Σ per (n, c) row; a reduced middle (NHWC pooling, axis 1 of NCHW) is a
/// vector accumulation over rows, in float blocks added in double. Anything more interleaved takes a serial
/// odometer walk into a double accumulator.
/// </summary>
public sealed class MeanKernel : CpuKernel
{
    private const int RowBlock = 64;

    private readonly int _outer, _reduce, _inner, _parts;
    private readonly double _invCount;
    private readonly bool _general;
    private readonly int[] _dims = [];
    private readonly bool[] _reduced = [];
    private readonly int[] _idx = [];
    private readonly long[] _outStride = [];
    private readonly double[] _acc = [];
    private readonly float[][] _block = [];
    private readonly double[][] _sum = [];
    private readonly Action<int> _part;
    private Buf _x, _y;

    /// <summary>Binds the kernel to a node.</summary>
    public MeanKernel(KernelRequest r)
    {
        var (op, outs) = KernelCheck.Prepare<Mean>(r);
        var x = r.InputTypes[0].Shape;
        int count = KernelCheck.Count(r, x);
        var axes = op.Axes.Select(x.Axis).ToHashSet();
        long reduceCount = axes.Aggregate(1L, (acc, a) => acc * x[a]);
        _invCount = 1.0 / reduceCount;
        var dims = new List<int>();
        var red = new List<bool>();
        for (int d = 0; d < x.Rank; d++)
        {
            if (x[d] == 1) continue;
            bool rd = axes.Contains(d);
            if (dims.Count > 0 && red[^1] == rd) dims[^1] *= x[d];
            else
            {
                dims.Add(x[d]);
                red.Add(rd);
            }
        }
        // pad to the (keep, reduce, keep) pattern with size-one groups
        if (red.Count == 0 || red[0]) { dims.Insert(0, 1); red.Insert(0, false); }
        if (red.Count == 1) { dims.Add(1); red.Add(true); }
        if (red.Count == 2) { dims.Add(1); red.Add(false); }
        _part = Part;
        if (red.Count == 3)
        {
            (_outer, _reduce, _inner) = (dims[0], dims[1], dims[2]);
            _parts = Par.Parts(count, _inner == 1 ? _outer : (long)_outer * ((_inner + 255) / 256));
            _block = Enumerable.Range(0, _parts).Select(_ => new float[Math.Min(256, _inner)]).ToArray();
            _sum = Enumerable.Range(0, _parts).Select(_ => new double[Math.Min(256, _inner)]).ToArray();
            return;
        }
        _general = true;
        _parts = 1;
        (_dims, _reduced) = (dims.ToArray(), red.ToArray());
        _idx = new int[_dims.Length];
        _outStride = new long[_dims.Length];
        long run = 1;
        for (int d = _dims.Length - 1; d >= 0; d--)
        {
            _outStride[d] = _reduced[d] ? 0 : run;
            if (!_reduced[d]) run *= _dims[d];
        }
        _acc = new double[KernelCheck.Count(r, outs[0].Shape)];
    }

    /// <summary>Which path the reduced axes take, for tests.</summary>
    public override string Label =>
        $"{nameof(MeanKernel)}[{(_general ? "general" : _inner == 1 ? "rows" : "columns")}]";

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        (_x, _y) = (inputs[0], outputs[0]);
        if (_general) General();
        else Par.Run(_parts, _part);
    }

    private void Part(int p)
    {
        ReadOnlySpan<float> x = _x.Span;
        var y = _y.Span;
        if (_inner == 1)
        {
            var (s, e) = Par.Range(p, _parts, _outer);
            for (int o = s; o < e; o++) y[o] = (float)(Simd.Sum(x.Slice(o * _reduce, _reduce)) * _invCount);
            return;
        }
        int blocks = (_inner + 255) / 256;
        var (bs, be) = Par.Range(p, _parts, (long)_outer * blocks);
        for (int item = bs; item < be; item++)
        {
            int o = item / blocks, k0 = item % blocks * 256, len = Math.Min(256, _inner - k0);
            var block = _block[p].AsSpan(0, len);
            var sum = _sum[p].AsSpan(0, len);
            sum.Clear();
            for (int r0 = 0; r0 < _reduce; r0 += RowBlock)
            {
                block.Clear();
                for (int row = r0; row < Math.Min(_reduce, r0 + RowBlock); row++)
                {
                    Simd.AddTo(x.Slice((o * _reduce + row) * _inner + k0, len), block);
                }
                for (int k = 0; k < len; k++) sum[k] += block[k];
            }
            var yr = y.Slice(o * _inner + k0, len);
            for (int k = 0; k < len; k++) yr[k] = (float)(sum[k] * _invCount);
        }
    }

    private void General()
    {
        ReadOnlySpan<float> x = _x.Span;
        Array.Clear(_acc);
        Array.Clear(_idx);
        long o = 0;
        for (int k = 0; k < x.Length; k++)
        {
            _acc[o] += x[k];
            for (int d = _idx.Length - 1; d >= 0; d--)
            {
                o += _outStride[d];
                if (++_idx[d] < _dims[d]) break;
                o -= _outStride[d] * _dims[d];
                _idx[d] = 0;
            }
        }
        var y = _y.Span;
        for (int i = 0; i < y.Length; i++) y[i] = (float)(_acc[i] * _invCount);
    }
}

/// <summary>
/// softmax along one axis, max-shifted. A contiguous axis works row by row; otherwise blocks of positions run
/// with the axis in the outer loop and per-part scratch for the block's maxima and sums.
/// </summary>
public sealed class SoftmaxKernel : CpuKernel
{
    private const int Block = 256;

    private readonly int _outer, _c, _inner, _blocks, _parts;
    private readonly float[][] _max, _sum;
    private readonly Action<int> _part;
    private Buf _x, _y;

    /// <summary>Binds the kernel to a node.</summary>
    public SoftmaxKernel(KernelRequest r)
    {
        var (op, _) = KernelCheck.Prepare<Softmax>(r);
        var x = r.InputTypes[0].Shape;
        int a = x.Axis(op.Axis);
        (_c, _inner) = (x[a], (int)x.Strides()[a]);
        _outer = KernelCheck.Count(r, x) / Math.Max(1, _c * _inner);
        _blocks = _inner == 1 ? 1 : (_inner + Block - 1) / Block;
        _parts = Par.Parts(x.Elements * 16, (long)_outer * _blocks);
        int scratch = _inner == 1 ? 0 : Math.Min(Block, _inner);
        _max = Enumerable.Range(0, _parts).Select(_ => new float[scratch]).ToArray();
        _sum = Enumerable.Range(0, _parts).Select(_ => new float[scratch]).ToArray();
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
        var (s, e) = Par.Range(p, _parts, (long)_outer * _blocks);
        for (int item = s; item < e; item++)
        {
            if (_inner == 1)
            {
                var xr = x.Slice(item * _c, _c);
                var yr = y.Slice(item * _c, _c);
                double sum = Simd.ExpShift(xr, Simd.Max(xr), yr);
                Simd.MulScalar(yr, (float)(1 / sum), yr);
                continue;
            }
            int o = item / _blocks, k0 = item % _blocks * Block, len = Math.Min(Block, _inner - k0);
            int at = o * _c * _inner + k0;
            var max = _max[p].AsSpan(0, len);
            var total = _sum[p].AsSpan(0, len);
            x.Slice(at, len).CopyTo(max);
            for (int c = 1; c < _c; c++) Simd.MaxTo(x.Slice(at + c * _inner, len), max);
            total.Clear();
            for (int c = 0; c < _c; c++)
            {
                var yr = y.Slice(at + c * _inner, len);
                Simd.ExpShift(x.Slice(at + c * _inner, len), max, yr);
                Simd.AddTo(yr, total);
            }
            for (int k = 0; k < len; k++) total[k] = 1 / total[k];
            for (int c = 0; c < _c; c++)
            {
                var yr = y.Slice(at + c * _inner, len);
                Simd.Mul(yr, total, yr);
            }
        }
    }
}

/// <summary>
/// cross_entropy forward: mean over the batch of (1−ε)·NLL + ε·mean over classes of −log p, with log-sum-exp in
/// double. Labels are i32/i64 in the graph, but every CPU buffer is float: the executor converts integer inputs
/// to float when it binds them (exact for class indices below 2²⁴), and this kernel checks each label is an
/// integer class index when it runs, as the reference does.
/// </summary>
public sealed class CrossEntropyKernel : CpuKernel
{
    private readonly string _node;
    private readonly double _smoothing;
    private readonly int _n, _k;
    private readonly float[] _row;

    /// <summary>Binds the kernel to a node.</summary>
    public CrossEntropyKernel(KernelRequest r)
    {
        var (op, _) = KernelCheck.Prepare<CrossEntropy>(r, 1);
        _node = r.Node.Describe();
        _smoothing = op.LabelSmoothing;
        (_n, _k) = (r.InputTypes[0].Shape[0], r.InputTypes[0].Shape[1]);
        if (_k >= 1 << 24)
        {
            throw KernelCheck.Fail(r, $"{_k} classes: labels as float cannot represent every class index");
        }
        _row = new float[_k];
    }

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        ReadOnlySpan<float> logits = inputs[0].Span, labels = inputs[1].Span;
        double total = 0;
        for (int b = 0; b < _n; b++)
        {
            float label = labels[b];
            if (!(label >= 0 && label < _k && label == MathF.Floor(label)))
            {
                throw new IrException($"{_node}: label {label} of sample {b} is not a class index in [0, {_k})");
            }
            var x = logits.Slice(b * _k, _k);
            float max = Simd.Max(x);
            double lse = max + Math.Log(Simd.ExpShift(x, max, _row));
            double nll = lse - x[(int)label];
            double uniform = _k * lse - Simd.Sum(x);
            total += (1 - _smoothing) * nll + _smoothing * uniform / _k;
        }
        outputs[0].Span[0] = (float)(total / _n);
    }
}
