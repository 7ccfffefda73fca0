using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>
/// channel_select: the gathered blocks scattered back. Split over (outer, input channel): each channel of the
/// input gradient is written by one part, as a copy of the first output block that picked it plus the later ones
/// (in index order: repeats sum), or zeros when no index picked it.
/// </summary>
internal sealed class ChannelSelectGradKernel : ElementGradKernel
{
    private readonly int[][] _pickedBy;
    private readonly int _outer, _size, _picks, _inner, _parts;
    private readonly Action<int> _part;
    private Buf _g, _gx;

    public ChannelSelectGradKernel(KernelRequest r) : base(r)
    {
        var op = (ChannelSelect)Op.Of;
        var x = InputTypes[0].Shape;
        int a = x.Axis(op.Axis);
        (_size, _inner, _picks) = (x[a], (int)x.Strides()[a], op.Indices.Count);
        _outer = Count(r, x) / Math.Max(1, _size * _inner);
        _pickedBy = Enumerable.Range(0, _size)
            .Select(c => Enumerable.Range(0, _picks).Where(i => op.Indices[i] == c).ToArray()).ToArray();
        _parts = Par.Parts((long)_outer * Math.Max(_size, _picks) * _inner, (long)_outer * _size);
        _part = Part;
    }

    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        (_g, _gx) = (Dy(inputs), Gx(outputs, 0)!.Value);
        Par.Run(_parts, _part);
    }

    private void Part(int p)
    {
        ReadOnlySpan<float> g = _g.Span;
        var gx = _gx.Span;
        var (s, e) = Par.Range(p, _parts, (long)_outer * _size);
        for (int item = s; item < e; item++)
        {
            int o = item / _size, c = item % _size;
            var dst = gx.Slice(item * _inner, _inner);
            var from = _pickedBy[c];
            if (from.Length == 0)
            {
                dst.Clear();
                continue;
            }
            g.Slice((o * _picks + from[0]) * _inner, _inner).CopyTo(dst);
            for (int k = 1; k < from.Length; k++) Simd.AddTo(g.Slice((o * _picks + from[k]) * _inner, _inner), dst);
        }
    }
}

/// <summary>concat: each wanted input's gradient is its slice of the output gradient, block copies per (outer,
/// input).</summary>
internal sealed class ConcatGradKernel : ElementGradKernel
{
    private readonly int[] _wanted, _block, _offset;
    private readonly int _outer, _rowOut, _parts;
    private readonly Action<int> _part;
    private readonly Buf[] _gx;
    private Buf _g;

    public ConcatGradKernel(KernelRequest r) : base(r)
    {
        var y = OutputTypes[0].Shape;
        int a = y.Axis(((Concat)Op.Of).Axis), inner = (int)y.Strides()[a];
        _outer = Count(r, y) / Math.Max(1, y[a] * inner);
        _rowOut = y[a] * inner;
        var block = InputTypes.Select(t => t.Shape[a] * inner).ToArray();
        var offset = new int[N];
        for (int i = 1; i < N; i++) offset[i] = offset[i - 1] + block[i - 1];
        _wanted = Enumerable.Range(0, N).Where(Wants).ToArray();
        _block = _wanted.Select(i => block[i]).ToArray();
        _offset = _wanted.Select(i => offset[i]).ToArray();
        _gx = new Buf[_wanted.Length];
        _parts = Par.Parts((long)_outer * _block.Sum(), (long)_outer * _wanted.Length);
        _part = Part;
    }

    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        _g = Dy(inputs);
        for (int j = 0; j < _wanted.Length; j++) _gx[j] = Gx(outputs, _wanted[j])!.Value;
        Par.Run(_parts, _part);
    }

    private void Part(int p)
    {
        ReadOnlySpan<float> g = _g.Span;
        int k = _wanted.Length;
        var (s, e) = Par.Range(p, _parts, (long)_outer * k);
        for (int item = s; item < e; item++)
        {
            int o = item / k, j = item % k;
            g.Slice(o * _rowOut + _offset[j], _block[j]).CopyTo(_gx[j].Span.Slice(o * _block[j], _block[j]));
        }
    }
}
