using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>
/// The grad of shift_add in float32: the adjoint of the gather as a gather, one (sample, rep channel o) per item,
/// so each plane of dX (sub-channel t = o·n + j) is written by one part. The three output gradients of (b, o) are
/// first laid into zero-bordered planes with rows of L = win + the shift range, so that every shift becomes a
/// flat offset: for each of o's n sub-channels, an accumulator plane (hin rows of L) is cleared, then for each
/// replica g the dY_h plane offset by ShiftH(t, g), the dY_v plane offset by ShiftV(t, g) rows and the dY_i plane
/// (where Ident(o, g) = t) are added as whole planes, the order of the float64 rule per element (h, v, i of replica
/// 0, then replica 1, ...); the hin×win window is copied out. The borders stay zero between runs (only the content
/// is rewritten), so there are no per-element bounds tests. Outputs without a gradient contribute nothing.
/// </summary>
public sealed class ShiftAddGradKernel : GradKernel
{
    private readonly ShiftAdd _s;
    private readonly int _batch, _rn, _hin, _win, _h, _w, _parts;
    private readonly int _off, _l, _area, _mh, _mv;
    private readonly float[][] _acc, _ph, _pv, _pi;
    private readonly Buf _ones;
    private readonly Action<int> _part;
    private Buf _gh, _gv, _gi, _dx;
    private bool _hasH, _hasV, _hasI;

    /// <summary>Binds the kernel to a grad node of shift_add.</summary>
    public ShiftAddGradKernel(KernelRequest r) : base(r)
    {
        _s = (ShiftAdd)Op.Of;
        var x = InputTypes[0].Shape;
        KernelCheck.Count(r, x);
        (_batch, _rn, _hin, _win) = (x[0], x[1], x[2], x[3]);
        int e = _s.Extra;
        (_h, _w) = (_hin - 2 * e, _win - 2 * e);
        if (Seeds) _ones = ConvGradKernels.Ones(_batch * _s.Rep * _h * _w);
        int g2 = 2 * _s.NRep;
        var sh = Enumerable.Range(0, _s.PadHV.Count).Where(i => i % g2 < _s.NRep).Select(i => _s.PadHV[i]).ToArray();
        var sv = Enumerable.Range(0, _s.PadHV.Count).Where(i => i % g2 >= _s.NRep).Select(i => _s.PadHV[i])
            .Append(-e).ToArray();
        int hmin = Math.Min(0, sh.Min()), hmax = Math.Max(0, sh.Max());
        int vmin = Math.Min(0, sv.Min()), vmax = Math.Max(0, sv.Max());
        // the accumulator: hin rows of L; the window column jj lies at off + jj
        (_off, _l) = (-hmin, -hmin + _win + hmax);
        long area = (long)_hin * _l;
        // dY_h content at rows e.., columns off..; read at every offset in [hmin, hmax]
        _mh = -hmin;
        long lenH = _mh + area + hmax;
        // dY_v and dY_i content at rows 0.., columns off + e..; read at row offsets in [vmin, vmax]
        _mv = -vmin * _l;
        long lenV = _mv + Math.Max((long)_h * _l, area + (long)vmax * _l);
        if (lenV > Array.MaxLength || lenH > Array.MaxLength) throw KernelCheck.Fail(r, "shifted planes are too large");
        _area = (int)area;
        _parts = Par.Parts(x.Elements * 3L * _s.NRep, (long)_batch * _s.Rep);
        _acc = Enumerable.Range(0, _parts).Select(_ => new float[area]).ToArray();
        _ph = Enumerable.Range(0, _parts).Select(_ => new float[lenH]).ToArray();
        _pv = Enumerable.Range(0, _parts).Select(_ => new float[lenV]).ToArray();
        _pi = Enumerable.Range(0, _parts).Select(_ => new float[lenV]).ToArray();
        _part = Part;
    }

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        var gh = Gy(inputs, 0) ?? (Seeds ? _ones : null);
        var (gv, gi) = (Gy(inputs, 1), Gy(inputs, 2));
        (_hasH, _hasV, _hasI) = (gh.HasValue, gv.HasValue, gi.HasValue);
        (_gh, _gv, _gi) = (gh ?? default, gv ?? default, gi ?? default);
        if (Gx(outputs, 0) is not { } dx) return;
        _dx = dx;
        Par.Run(_parts, _part);
    }

    private void Part(int p)
    {
        int r = _s.Rep, n = _s.N, e = _s.Extra, h = _h, w = _w, l = _l, plane = h * w, inPlane = _hin * _win;
        Span<float> acc = _acc[p], ph = _ph[p], pv = _pv[p], pi = _pi[p];
        var (s, end) = Par.Range(p, _parts, (long)_batch * r);
        for (int bo = s; bo < end; bo++)
        {
            int b = bo / r, o = bo % r;
            // lay (b, o)'s output gradients into the bordered planes
            for (int yy = 0; yy < h; yy++)
            {
                if (_hasH) _gh.Span.Slice(bo * plane + yy * w, w).CopyTo(ph.Slice(_mh + (yy + e) * l + _off, w));
                if (_hasV) _gv.Span.Slice(bo * plane + yy * w, w).CopyTo(pv.Slice(_mv + yy * l + _off + e, w));
                if (_hasI) _gi.Span.Slice(bo * plane + yy * w, w).CopyTo(pi.Slice(_mv + yy * l + _off + e, w));
            }
            for (int j = 0; j < n; j++)
            {
                int t = o * n + j;
                acc.Clear();
                for (int g = 0; g < _s.NRep; g++)
                {
                    // dX(ii, jj) += dY_h(ii − e, jj + sh): the bordered plane read sh further on
                    if (_hasH) Simd.AddTo(ph.Slice(_mh + _s.ShiftH(t, g), _area), acc);
                    // dX(ii, jj) += dY_v(ii + sv, jj − e): sv rows further on
                    if (_hasV) Simd.AddTo(pv.Slice(_mv + _s.ShiftV(t, g) * l, _area), acc);
                    // dX(ii, jj) += dY_i(ii − e, jj − e) where replica g's identity path takes t
                    if (_hasI && _s.Identity(o, g) == t) Simd.AddTo(pi.Slice(_mv - e * l, _area), acc);
                }
                var dst = _dx.Span.Slice((b * _rn + t) * inPlane, inPlane);
                for (int ii = 0; ii < _hin; ii++) acc.Slice(ii * l + _off, _win).CopyTo(dst.Slice(ii * _win, _win));
            }
        }
    }
}
