namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>
/// The x and weight gradients of a dense or grouped conv2d through GEMM, per (chunk of samples, group): with
/// col (K × S·P) the im2col of the chunk's S samples side by side and dYc (O/G × S·P) their output gradients
/// (copied side by side; used in place when S = 1),
/// <list type="bullet">
/// <item>dW_g (O/G × K) += dYc · colᵀ, summed over the chunks in order (β = 1 after the first);</item>
/// <item>dcol (K × S·P) = W_gᵀ · dYc, then col2im: each x position sums the columns that read it, one input
/// plane at a time, taps in a fixed order.</item>
/// </list>
/// A 1×1, stride-1, unpadded conv skips im2col and col2im (col is x, dcol is dX); on 1×1 maps (the SE convs) the
/// whole batch is one GEMM per group over x and dY as they lie (<c>rows</c>). As in the forward kernel, GEMMs
/// small enough that BLAS will not thread them run side by side, the batch split into one range of samples per
/// core, each part with its own scratch and its own dW partial sum, reduced in part order (<c>parts</c>); larger
/// ones run one chunk after another, BLAS threading each GEMM and im2col, the dY copy and col2im split over the
/// cores (<c>chunks</c>). Every partition is fixed at construction, so the results do not depend on the schedule.
/// </summary>
internal sealed class GemmConvGrad
{
    /// <summary>Below this m·n·k neither GEMM backend threads (OpenBLAS: 2¹⁸; the managed one forks at 2²¹
    /// flops).</summary>
    private const long SmallGemm = 1L << 18;

    /// <summary>
    /// The most floats an im2col chunk may take in the sequential mode (4 MB; col and dcol each): GEMMs of a few
    /// thousand columns are already efficient, and the chunk stays in the last-level cache between im2col, the
    /// GEMMs and col2im.
    /// </summary>
    private const long ScratchCap = 1L << 20;

    /// <summary>
    /// When positive, kernels built on this thread take the sequential schedule with this scratch cap instead of
    /// <see cref="ScratchCap"/> (for tests: several chunks on small shapes).
    /// </summary>
    [ThreadStatic]
    internal static long ScratchCapOverride;

    private readonly ConvGeom _g;
    private readonly bool _wx, _ww, _pointwise, _rows, _split;
    private readonly int _parts, _chunk, _helpParts, _reduceParts;
    private readonly float[][] _col, _dcol, _dyc, _acc;
    private readonly Action<int> _part, _reduce, _im2col, _copy, _col2im;
    private Buf _x, _w, _dy, _dx, _dw;
    private int _b0, _n, _grp;

    public GemmConvGrad(KernelRequest r, ConvGeom g, bool wantX, bool wantW)
    {
        (_g, _wx, _ww) = (g, wantX, wantW);
        _pointwise = g.Kh == 1 && g.Kw == 1 && g.S0 == 1 && g.S1 == 1 && g.P0 == 0 && g.P1 == 0;
        _rows = _pointwise && g.P == 1;
        (_part, _reduce, _im2col, _copy, _col2im) = (Part, ReducePart, Im2ColPart, CopyPart, Col2ImPart);
        _col = _dcol = _dyc = _acc = [];
        if (_rows) return;
        long perSample = (long)g.Opg * g.K * g.P;
        long flops = 2L * g.N * g.Groups * perSample * ((wantX ? 1 : 0) + (wantW ? 1 : 0));
        // split only when a part's chunk still makes GEMMs of at least 64 columns; narrower ones (small planes: the
        // downsample convs late in a network) re-read the weights per few samples, and do better as one big GEMM
        _split = g.N > 1 && perSample < SmallGemm && ScratchCapOverride <= 0
            && (_pointwise || Math.Min((SmallGemm - 1) / perSample, g.N) * g.P >= 64);
        if (_split)
        {
            _parts = Par.Parts(flops, g.N);
            int per = (g.N + _parts - 1) / _parts;
            _chunk = _pointwise ? 1 : (int)Math.Clamp((SmallGemm - 1) / perSample, 1, per);
        }
        else
        {
            _parts = 1;
            long cap = ScratchCapOverride > 0 ? ScratchCapOverride : ScratchCap;
            _chunk = _pointwise ? 1 : (int)Math.Clamp(cap / ((long)g.K * g.P), 1, g.N);
            int chunks = (g.N + _chunk - 1) / _chunk;
            _chunk = (g.N + chunks - 1) / chunks;
            _helpParts = Par.Parts((long)g.K * g.P * _chunk, (long)g.K * _chunk);
        }
        long cols = _pointwise ? 0 : (long)g.K * _chunk * g.P;
        long dyc = _chunk > 1 ? (long)g.Opg * _chunk * g.P : 0;
        if (cols > Array.MaxLength || dyc > Array.MaxLength)
        {
            throw KernelCheck.Fail(r, $"im2col scratch of {cols} floats is more than one array can hold");
        }
        int sets = _split ? _parts : 1;
        _col = Scratch(sets, wantW ? cols : 0);
        _dcol = Scratch(sets, wantX ? cols : 0);
        _dyc = Scratch(sets, dyc);
        _acc = Scratch(_split && _parts > 1 && wantW ? _parts : 0, (long)g.O * g.K);
        _reduceParts = Par.Parts((long)g.O * g.K * _parts, Math.Max(1, g.O * g.K / 64));
    }

    private static float[][] Scratch(int sets, long floats) =>
        Enumerable.Range(0, sets).Select(_ => new float[floats]).ToArray();

    /// <summary>Which schedule runs, for timing tables.</summary>
    public string Mode =>
        _rows ? "1x1 rows" : $"{(_pointwise ? "1x1" : "im2col")} {(_split ? "parts" : "chunks")} x{_chunk}";

    public void Run(Buf x, Buf w, Buf dy, Buf? dx, Buf? dw)
    {
        (_x, _w, _dy, _dx, _dw) = (x, w, dy, dx ?? default, dw ?? default);
        if (_rows)
        {
            Rows();
            return;
        }
        if (_split)
        {
            Par.Run(_parts, _part);
            if (_acc.Length > 0) Par.Run(_reduceParts, _reduce);
            return;
        }
        for (_b0 = 0; _b0 < _g.N; _b0 += _chunk)
        {
            _n = Math.Min(_chunk, _g.N - _b0);
            for (_grp = 0; _grp < _g.Groups; _grp++)
            {
                if (_n > 1) Par.Run(_helpParts, _copy);
                if (_ww && !_pointwise) Par.Run(_helpParts, _im2col);
                Unit(0, _b0, _n, _grp, _b0 == 0 ? 0f : 1f, _ww ? _dw.Span : default, prepared: true);
                if (_wx && !_pointwise) Par.Run(_helpParts, _col2im);
            }
        }
    }

    /// <summary>1×1 maps: per group, dW_g = dY_gᵀ·x_g and dX_g = dY_g·W_g over the batch rows (strided by O and
    /// C).</summary>
    private void Rows()
    {
        var g = _g;
        ReadOnlySpan<float> x = _x.Span, w = _w.Span, dy = _dy.Span;
        for (int grp = 0; grp < g.Groups; grp++)
        {
            var dyg = dy[(grp * g.Opg)..];
            if (_ww)
            {
                Blas.Sgemm(true, false, g.Opg, g.Cpg, g.N, 1f, dyg, g.O, x[(grp * g.Cpg)..], g.C, 0f,
                    _dw.Span.Slice(grp * g.Opg * g.Cpg, g.Opg * g.Cpg), g.Cpg);
            }
            if (_wx)
            {
                Blas.Sgemm(false, false, g.N, g.Cpg, g.Opg, 1f, dyg, g.O, w.Slice(grp * g.Opg * g.Cpg, g.Opg * g.Cpg),
                    g.Cpg, 0f, _dx.Span[(grp * g.Cpg)..], g.C);
            }
        }
    }

    /// <summary>Part <paramref name="p"/> of the split mode: its samples, chunk by chunk, into its own partial
    /// dW.</summary>
    private void Part(int p)
    {
        var (s, e) = Par.Range(p, _parts, _g.N);
        var dw = !_ww ? default : _acc.Length > 0 ? _acc[p].AsSpan() : _dw.Span;
        for (int b0 = s; b0 < e; b0 += _chunk)
        {
            int n = Math.Min(_chunk, e - b0);
            for (int grp = 0; grp < _g.Groups; grp++) Unit(p, b0, n, grp, b0 == s ? 0f : 1f, dw, prepared: false);
        }
    }

    /// <summary>
    /// The GEMMs of samples [b0, b0 + n) and group <paramref name="grp"/> with scratch set <paramref name="set"/>;
    /// unless <paramref name="prepared"/>, also the dY copy, im2col and col2im (otherwise the caller runs them split).
    /// </summary>
    private void Unit(int set, int b0, int n, int grp, float beta, Span<float> dw, bool prepared)
    {
        var g = _g;
        int ld = n * g.P, opgk = g.Opg * g.K;
        ReadOnlySpan<float> dyc;
        if (n == 1)
        {
            dyc = _dy.Span.Slice((b0 * g.O + grp * g.Opg) * g.P, g.Opg * g.P);
        }
        else
        {
            if (!prepared) CopyDy(_dyc[set], b0, n, grp, 0, g.Opg);
            dyc = _dyc[set];
        }
        if (_ww)
        {
            ReadOnlySpan<float> col;
            if (_pointwise)
            {
                col = _x.Span.Slice((b0 * g.C + grp * g.Cpg) * g.P, g.Cpg * g.P);
            }
            else
            {
                if (!prepared)
                {
                    for (int s = 0; s < n; s++)
                    {
                        ConvCols.Im2Col(g, SampleX(b0 + s, grp), _col[set], ld, s * g.P, 0, g.K);
                    }
                }
                col = _col[set];
            }
            Blas.Sgemm(false, true, g.Opg, g.K, ld, 1f, dyc, ld, col, ld, beta, dw.Slice(grp * opgk, opgk), g.K);
        }
        if (!_wx) return;
        ReadOnlySpan<float> wg = _w.Span.Slice(grp * opgk, opgk);
        if (_pointwise)
        {
            Blas.Sgemm(true, false, g.K, ld, g.Opg, 1f, wg, g.K, dyc, ld, 0f,
                _dx.Span.Slice((b0 * g.C + grp * g.Cpg) * g.P, g.Cpg * g.P), ld);
            return;
        }
        Blas.Sgemm(true, false, g.K, ld, g.Opg, 1f, wg, g.K, dyc, ld, 0f, _dcol[set], ld);
        if (prepared) return;
        for (int s = 0; s < n; s++) ConvCols.Col2Im(g, _dcol[set], ld, s * g.P, SampleDx(b0 + s, grp), 0, g.Cpg);
    }

    private ReadOnlySpan<float> SampleX(int b, int grp) =>
        _x.Span.Slice((b * _g.C + grp * _g.Cpg) * _g.Plane, _g.Cpg * _g.Plane);

    private Span<float> SampleDx(int b, int grp) =>
        _dx.Span.Slice((b * _g.C + grp * _g.Cpg) * _g.Plane, _g.Cpg * _g.Plane);

    /// <summary>Rows [q0, q1) of dYc: dYc[q][s·P + p] = dY[b0 + s, grp·O/G + q, p].</summary>
    private void CopyDy(Span<float> dyc, int b0, int n, int grp, int q0, int q1)
    {
        var g = _g;
        ReadOnlySpan<float> dy = _dy.Span;
        int ld = n * g.P;
        for (int q = q0; q < q1; q++)
        {
            for (int s = 0; s < n; s++)
            {
                dy.Slice(((b0 + s) * g.O + grp * g.Opg + q) * g.P, g.P).CopyTo(dyc.Slice(q * ld + s * g.P, g.P));
            }
        }
    }

    private void CopyPart(int p)
    {
        var (s, e) = Par.Range(p, _helpParts, _g.Opg);
        CopyDy(_dyc[0], _b0, _n, _grp, s, e);
    }

    private void Im2ColPart(int p)
    {
        var (r0, r1) = Par.Range(p, _helpParts, _g.K);
        for (int s = 0; s < _n; s++) ConvCols.Im2Col(_g, SampleX(_b0 + s, _grp), _col[0], _n * _g.P, s * _g.P, r0, r1);
    }

    private void Col2ImPart(int p)
    {
        var (i0, i1) = Par.Range(p, _helpParts, (long)_n * _g.Cpg);
        for (int i = i0; i < i1; i++)
        {
            int s = i / _g.Cpg, q = i % _g.Cpg;
            ConvCols.Col2Im(_g, _dcol[0], _n * _g.P, s * _g.P, SampleDx(_b0 + s, _grp), q, q + 1);
        }
    }

    /// <summary>dW = Σ_p partial_p over elements [s, e) of part <paramref name="p"/>, parts added in order.</summary>
    private void ReducePart(int p)
    {
        var (s, e) = Par.Range(p, _reduceParts, (long)_g.O * _g.K);
        var dst = _dw.Span.Slice(s, e - s);
        _acc[0].AsSpan(s, e - s).CopyTo(dst);
        for (int q = 1; q < _acc.Length; q++) Simd.AddTo(_acc[q].AsSpan(s, e - s), dst);
    }
}

/// <summary>im2col and its adjoint col2im for one sample and group, into columns of a wider matrix.</summary>
internal static class ConvCols
{
    /// <summary>
    /// Rows [r0, r1) of the sample's im2col, row (q·kh + u)·kw + v at col[row·ld + off ..]: the P values
    /// x[q](i·s − p + u·d, j·s − p + v·d), zero outside the image.
    /// </summary>
    public static void Im2Col(in ConvGeom g, ReadOnlySpan<float> xg, Span<float> col, int ld, int off, int r0, int r1)
    {
        for (int rr = r0; rr < r1; rr++)
        {
            int q = rr / g.Taps, u = rr / g.Kw % g.Kh, v = rr % g.Kw;
            var row = col.Slice(rr * ld + off, g.P);
            int dx = v * g.D1 - g.P1;
            var (jlo, jhi) = Conv2dKernel.Valid(dx, g.S1, g.W, g.Wo);
            for (int i = 0; i < g.Ho; i++)
            {
                var dst = row.Slice(i * g.Wo, g.Wo);
                int yy = i * g.S0 - g.P0 + u * g.D0;
                if (yy < 0 || yy >= g.H || jlo >= jhi)
                {
                    dst.Clear();
                    continue;
                }
                var src = xg.Slice((q * g.H + yy) * g.W, g.W);
                dst[..jlo].Clear();
                dst[jhi..].Clear();
                if (g.S1 == 1) src.Slice(jlo + dx, jhi - jlo).CopyTo(dst[jlo..jhi]);
                else for (int j = jlo; j < jhi; j++) dst[j] = src[j * g.S1 + dx];
            }
        }
    }

    /// <summary>
    /// Input planes [q0, q1) of the sample's x gradient from its dcol columns (laid out as <see cref="Im2Col"/>):
    /// each plane cleared, then every tap's row added onto the positions it read, taps in order.
    /// </summary>
    public static void Col2Im(in ConvGeom g, ReadOnlySpan<float> dcol, int ld, int off, Span<float> dxg, int q0, int q1)
    {
        for (int q = q0; q < q1; q++)
        {
            var plane = dxg.Slice(q * g.Plane, g.Plane);
            plane.Clear();
            for (int u = 0; u < g.Kh; u++)
            for (int v = 0; v < g.Kw; v++)
            {
                var row = dcol.Slice(((q * g.Kh + u) * g.Kw + v) * ld + off, g.P);
                int dx = v * g.D1 - g.P1;
                var (jlo, jhi) = Conv2dKernel.Valid(dx, g.S1, g.W, g.Wo);
                if (jlo >= jhi) continue;
                for (int i = 0; i < g.Ho; i++)
                {
                    int yy = i * g.S0 - g.P0 + u * g.D0;
                    if (yy < 0 || yy >= g.H) continue;
                    var src = row.Slice(i * g.Wo + jlo, jhi - jlo);
                    var dst = plane.Slice(yy * g.W, g.W);
                    if (g.S1 == 1) Simd.AddTo(src, dst.Slice(jlo + dx, jhi - jlo));
                    else for (int j = jlo; j < jhi; j++) dst[j * g.S1 + dx] += src[j - jlo];
                }
            }
        }
    }
}
