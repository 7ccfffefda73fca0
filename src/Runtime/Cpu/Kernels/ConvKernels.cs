using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>
/// conv2d, any stride, padding, dilation and groups. Depthwise convs (one input channel per group) run as direct
/// loops, one (sample, output channel) plane at a time: with stride one over a zero-padded copy of the plane, eight
/// outputs per register accumulating every tap (<see cref="DirectConv"/>); otherwise tap by tap with clipping.
/// Everything else is per-(sample, group) im2col + <see cref="Blas.Sgemm"/>: Y_g (O/G × P) = W_g (O/G × K) ·
/// col (K × P) with K = C/G·kh·kw and P = Ho·Wo, the bias written into Y first and accumulated onto (β = 1);
/// a 1×1, stride-1, unpadded conv skips im2col and multiplies x directly. Blas threads a large GEMM itself, so
/// large units run one after another (im2col split over the cores); only units too small for Blas to thread (and
/// for OpenBLAS's own threshold) run side by side, each part with its own im2col scratch, so the two never nest.
/// </summary>
public sealed class Conv2dKernel : CpuKernel
{
    /// <summary>
    /// Below this many flops per GEMM neither backend threads (the managed GEMM forks at 2²¹, OpenBLAS at
    /// m·n·k = 2¹⁸), so calls may run concurrently without oversubscribing.
    /// </summary>
    private const long SmallGemmFlops = 1L << 19;

    private readonly Conv2d _op;
    /// <summary>The most floats each of the batched mode's two scratch matrices may take (4 MB).</summary>
    private const long BatchedCap = 1L << 20;

    private readonly bool _depthwise, _pointwise, _hasBias, _unitParallel, _flat, _batched;
    private readonly int _padLen, _chunk, _outParts;
    private readonly ConvGeom _geom;
    private readonly float[] _bcol = [], _bout = [];
    private readonly Action<int> _bColPart = null!, _bOutPart = null!;
    private int _b0, _bn;
    private readonly int _n, _c, _h, _w, _o, _cpg, _kh, _kw, _ho, _wo, _groups, _opg, _k, _units, _parts, _colParts;
    private readonly float[][] _col;
    private readonly Action<int> _part, _colPart;
    private Buf _x, _wt, _bias, _y;
    private int _unit;

    /// <summary>Binds the kernel to a node.</summary>
    public Conv2dKernel(KernelRequest r)
    {
        (_op, var outs) = KernelCheck.Prepare<Conv2d>(r);
        var x = r.InputTypes[0].Shape;
        var w = r.InputTypes[1].Shape;
        KernelCheck.Count(r, x);
        KernelCheck.Count(r, outs[0].Shape);
        (_n, _c, _h, _w) = (x[0], x[1], x[2], x[3]);
        (_o, _cpg, _kh, _kw) = (w[0], w[1], w[2], w[3]);
        (_ho, _wo) = (outs[0].Shape[2], outs[0].Shape[3]);
        _groups = _op.Groups;
        _opg = _o / _groups;
        _k = _cpg * _kh * _kw;
        _hasBias = r.InputTypes.Count == 3;
        // one input channel and one group (a grey-image stem) is an ordinary conv: im2col + GEMM beats direct loops
        _depthwise = _groups == _c && _cpg == 1 && _groups > 1;
        _pointwise = _kh == 1 && _kw == 1 && _op.Stride.All(s => s == 1) && _op.Padding.All(p => p == 0);
        long plane = (long)_ho * _wo, flops = 2L * _n * _o * plane * _k;
        _part = Part;
        _colPart = ColPart;
        if (_depthwise)
        {
            _parts = Par.Parts(flops, (long)_n * _o);
            // stride 1: each part zero-pads one input plane, so the taps need no bounds tests
            bool unit = _op.Stride.All(s => s == 1);
            int wp = _w + 2 * _op.Padding[1];
            long padded = unit ? (long)(_h + 2 * _op.Padding[0]) * wp : 0;
            // planes narrower than a vector with a ragged edge run flat (DirectConv.Flat): the padded plane gets the
            // zero slack its last vectors read past the end, and an output plane of padded width follows it
            _flat = unit && DirectConv.UseFlat(_wo);
            long slack = _flat ? DirectConv.FlatSlack(_kw, _op.Dilation[1]) : 0;
            long need = padded + slack + (_flat ? DirectConv.FlatOut(_ho, wp) : 0);
            if (need > Array.MaxLength) throw KernelCheck.Fail(r, $"padded plane of {need} floats is too large");
            _padLen = (int)(padded + slack);
            _col = Enumerable.Range(0, _parts).Select(_ => new float[need]).ToArray();
            return;
        }
        _units = _n * _groups;
        // one group and small planes: a GEMM per sample would be (nearly) matrix-vector work re-reading the weights
        // for every sample, so chunks of samples go side by side into one GEMM (im2col and the copy-out split)
        _batched = _groups == 1 && _n > 1 && plane < 64 && _k * plane <= BatchedCap && _o * plane <= BatchedCap;
        if (_batched)
        {
            _geom = ConvGeom.Of(_op, x, w);
            _chunk = (int)Math.Min(_n, BatchedCap / Math.Max((long)_k * plane, (long)_o * plane));
            int chunks = (_n + _chunk - 1) / _chunk;
            _chunk = (_n + chunks - 1) / chunks;
            _bcol = new float[(long)_k * _chunk * plane];
            _bout = new float[(long)_o * _chunk * plane];
            _colParts = Par.Parts((long)_k * _chunk * plane, _k);
            _outParts = Par.Parts((long)_o * _chunk * plane, _o);
            (_bColPart, _bOutPart) = (BatchedColPart, BatchedOutPart);
            _col = [];
            return;
        }
        _unitParallel = _units > 1 && 2L * _opg * plane * _k < SmallGemmFlops;
        _parts = _unitParallel ? Par.Parts(flops, _units) : 1;
        _colParts = _unitParallel || _pointwise ? 1 : Par.Parts(_k * plane, _k);
        long scratch = _pointwise ? 0 : _k * plane;
        if (scratch > Array.MaxLength)
        {
            throw KernelCheck.Fail(r, $"im2col scratch of {scratch} floats is more than one array can hold");
        }
        _col = Enumerable.Range(0, _parts).Select(_ => new float[scratch]).ToArray();
    }

    /// <summary>Depthwise or GEMM, for per-kernel timing tables.</summary>
    public override string Label =>
        $"{nameof(Conv2dKernel)}[{(_depthwise ? "depthwise" : _batched ? "batched gemm"
            : _pointwise ? "1x1 gemm" : "im2col gemm")}]";

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        (_x, _wt, _y) = (inputs[0], inputs[1], outputs[0]);
        _bias = _hasBias ? inputs[2] : default;
        if (_depthwise || _unitParallel)
        {
            Par.Run(_parts, _part);
            return;
        }
        if (_batched)
        {
            int plane = _ho * _wo;
            for (_b0 = 0; _b0 < _n; _b0 += _chunk)
            {
                _bn = Math.Min(_chunk, _n - _b0);
                int ld = _bn * plane;
                Par.Run(_colParts, _bColPart);
                Blas.Sgemm(false, false, _o, ld, _k, 1f, _wt.Span[..(_o * _k)], _k, _bcol, ld, 0f, _bout, ld);
                Par.Run(_outParts, _bOutPart);
            }
            return;
        }
        for (_unit = 0; _unit < _units; _unit++)
        {
            if (!_pointwise) Par.Run(_colParts, _colPart);
            Unit(_unit, _col[0], false);
        }
    }

    private void Part(int p)
    {
        if (_depthwise)
        {
            Depthwise(p);
            return;
        }
        var (s, e) = Par.Range(p, _parts, _units);
        for (int unit = s; unit < e; unit++) Unit(unit, _col[p], true);
    }

    /// <summary>Batched mode: rows of the chunk's im2col (K × samples·P, sample s at column s·P) for part
    /// p.</summary>
    private void BatchedColPart(int p)
    {
        var (r0, r1) = Par.Range(p, _colParts, _k);
        int plane = _ho * _wo, ld = _bn * plane, per = _c * _h * _w;
        for (int s = 0; s < _bn; s++)
        {
            ConvCols.Im2Col(_geom, _x.Span.Slice((_b0 + s) * per, per), _bcol, ld, s * plane, r0, r1);
        }
    }

    /// <summary>Batched mode: output channels of part p copied from the chunk's GEMM result into NCHW, plus
    /// bias.</summary>
    private void BatchedOutPart(int p)
    {
        var (o0, o1) = Par.Range(p, _outParts, _o);
        int plane = _ho * _wo, ld = _bn * plane;
        var y = _y.Span;
        for (int o = o0; o < o1; o++)
        {
            float bias = _hasBias ? _bias.Span[o] : 0f;
            for (int s = 0; s < _bn; s++)
            {
                var src = _bout.AsSpan(o * ld + s * plane, plane);
                var dst = y.Slice(((_b0 + s) * _o + o) * plane, plane);
                if (_hasBias) Simd.Affine(src, 1f, bias, dst);
                else src.CopyTo(dst);
            }
        }
    }

    /// <summary>im2col rows of the current unit for part <paramref name="p"/> of the sequential path.</summary>
    private void ColPart(int p)
    {
        var (s, e) = Par.Range(p, _colParts, _k);
        Im2Col(Input(_unit), _col[0], s, e);
    }

    private ReadOnlySpan<float> Input(int unit)
    {
        int b = unit / _groups, g = unit % _groups;
        return _x.Span.Slice((b * _c + g * _cpg) * _h * _w, _cpg * _h * _w);
    }

    /// <summary>One (sample, group) GEMM, after its own im2col when <paramref name="im2col"/>.</summary>
    private void Unit(int unit, float[] col, bool im2col)
    {
        int g = unit % _groups, plane = _ho * _wo;
        var y = _y.Span.Slice((unit * _opg) * plane, _opg * plane);
        float beta = 0f;
        if (_hasBias)
        {
            ReadOnlySpan<float> bias = _bias.Span;
            for (int q = 0; q < _opg; q++) y.Slice(q * plane, plane).Fill(bias[g * _opg + q]);
            beta = 1f;
        }
        ReadOnlySpan<float> wg = _wt.Span.Slice(g * _opg * _k, _opg * _k);
        if (_pointwise)
        {
            Blas.Sgemm(false, false, _opg, plane, _k, 1f, wg, _k, Input(unit), plane, beta, y, plane);
            return;
        }
        if (im2col) Im2Col(Input(unit), col, 0, _k);
        Blas.Sgemm(false, false, _opg, plane, _k, 1f, wg, _k, col, plane, beta, y, plane);
    }

    /// <summary>
    /// Rows [r0, r1) of col, row (q·kh + u)·kw + v: col[row][i·Wo + j] = x[q](i·s − p + u·d, j·s − p + v·d),
    /// zero outside the image.
    /// </summary>
    private void Im2Col(ReadOnlySpan<float> xg, Span<float> col, int r0, int r1)
    {
        int plane = _ho * _wo;
        var (s0, s1, p0, p1, d0, d1) = (_op.Stride[0], _op.Stride[1], _op.Padding[0], _op.Padding[1],
            _op.Dilation[0], _op.Dilation[1]);
        for (int rr = r0; rr < r1; rr++)
        {
            int q = rr / (_kh * _kw), u = rr / _kw % _kh, v = rr % _kw;
            var row = col.Slice(rr * plane, plane);
            int off = v * d1 - p1;
            var (jlo, jhi) = Valid(off, s1, _w, _wo);
            for (int i = 0; i < _ho; i++)
            {
                var dst = row.Slice(i * _wo, _wo);
                int yy = i * s0 - p0 + u * d0;
                if (yy < 0 || yy >= _h || jlo >= jhi)
                {
                    dst.Clear();
                    continue;
                }
                var src = xg.Slice((q * _h + yy) * _w, _w);
                dst[..jlo].Clear();
                dst[jhi..].Clear();
                if (s1 == 1) src.Slice(jlo + off, jhi - jlo).CopyTo(dst[jlo..jhi]);
                else for (int j = jlo; j < jhi; j++) dst[j] = src[j * s1 + off];
            }
        }
    }

    private void Depthwise(int p)
    {
        ReadOnlySpan<float> x = _x.Span, wt = _wt.Span;
        var y = _y.Span;
        var (s0, s1, p0, p1, d0, d1) = (_op.Stride[0], _op.Stride[1], _op.Padding[0], _op.Padding[1],
            _op.Dilation[0], _op.Dilation[1]);
        var (s, e) = Par.Range(p, _parts, (long)_n * _o);
        if (s0 == 1 && s1 == 1)
        {
            int hp = _h + 2 * p0, wp = _w + 2 * p1;
            var padded = _col[p].AsSpan(0, _padLen);
            var flatOut = _col[p].AsSpan(_padLen);
            int last = -1;
            for (int bo = s; bo < e; bo++)
            {
                int b = bo / _o, o = bo % _o, ch = o / _opg;
                // the group's outputs are adjacent, so each input plane is padded once per part and group
                if (b * _c + ch != last)
                {
                    DirectConv.Pad(x.Slice((b * _c + ch) * _h * _w, _h * _w), _h, _w, p0, p1, padded);
                }
                last = b * _c + ch;
                var yo = y.Slice(bo * _ho * _wo, _ho * _wo);
                float bias = _hasBias ? _bias.Span[o] : 0f;
                var wo = wt.Slice(o * _kh * _kw, _kh * _kw);
                if (_flat) DirectConv.Flat(padded, wp, wo, _kh, _kw, d0, d1, bias, yo, _ho, _wo, flatOut);
                else DirectConv.Stride1(padded, wp, wo, _kh, _kw, d0, d1, bias, yo, _ho, _wo);
            }
            return;
        }
        for (int bo = s; bo < e; bo++)
        {
            int b = bo / _o, o = bo % _o, ch = o / _opg;
            var xp = x.Slice((b * _c + ch) * _h * _w, _h * _w);
            var yp = y.Slice(bo * _ho * _wo, _ho * _wo);
            var wo = wt.Slice(o * _kh * _kw, _kh * _kw);
            yp.Fill(_hasBias ? _bias.Span[o] : 0f);
            for (int i = 0; i < _ho; i++)
            {
                var yr = yp.Slice(i * _wo, _wo);
                for (int u = 0; u < _kh; u++)
                {
                    int yy = i * s0 - p0 + u * d0;
                    if (yy < 0 || yy >= _h) continue;
                    var xr = xp.Slice(yy * _w, _w);
                    for (int v = 0; v < _kw; v++)
                    {
                        int off = v * d1 - p1;
                        var (jlo, jhi) = Valid(off, s1, _w, _wo);
                        if (jlo >= jhi) continue;
                        float wv = wo[u * _kw + v];
                        if (s1 == 1) Simd.Axpy(wv, xr.Slice(jlo + off, jhi - jlo), yr[jlo..jhi]);
                        else
                        {
                            for (int j = jlo; j < jhi; j++) yr[j] = MathF.FusedMultiplyAdd(wv, xr[j * s1 + off], yr[j]);
                        }
                    }
                }
            }
        }
    }

    /// <summary>The output columns j ∈ [lo, hi) whose source column j·s + off lies inside [0, w).</summary>
    internal static (int Lo, int Hi) Valid(int off, int s, int w, int wo)
    {
        int lo = off >= 0 ? 0 : (-off + s - 1) / s;
        int hi = w - 1 - off < 0 ? 0 : Math.Min(wo, (w - 1 - off) / s + 1);
        return (Math.Min(lo, wo), hi);
    }
}
