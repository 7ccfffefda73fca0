using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>
/// The grad of shift_add in float32: the adjoint of the gather as a gather. Each (sample, sub-channel t) plane of
/// dX is written by one part: cleared, then for each replica g the rows of dY_h, dY_v and dY_i that read plane t
/// (shifted back by −ShiftH(t, g), −ShiftV(t, g), and the identity path where Ident(o, g) = t) are added on as
/// contiguous spans, in the order of the float64 rule (per element: h, v, i of replica 0, then replica 1, ...).
/// Outputs without a gradient contribute nothing; no atomics, no scatter between parts.
/// </summary>
public sealed class ShiftAddGradKernel : GradKernel
{
    private readonly ShiftAdd _s;
    private readonly int _batch, _rn, _hin, _win, _h, _w, _parts;
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
        (_h, _w) = (_hin - 2 * _s.Extra, _win - 2 * _s.Extra);
        if (Seeds) _ones = ConvGradKernels.Ones(_batch * _s.Rep * _h * _w);
        _parts = Par.Parts(x.Elements * 3L * _s.NRep, (long)_batch * _rn);
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
        int r = _s.Rep, n = _s.N, e = _s.Extra, h = _h, w = _w, win = _win, plane = h * w, inPlane = _hin * win;
        ReadOnlySpan<float> ghAll = _hasH ? _gh.Span : default, gvAll = _hasV ? _gv.Span : default;
        ReadOnlySpan<float> giAll = _hasI ? _gi.Span : default;
        var (s, end) = Par.Range(p, _parts, (long)_batch * _rn);
        for (int bt = s; bt < end; bt++)
        {
            int b = bt / _rn, t = bt % _rn, o = t / n, at = (b * r + o) * plane;
            var dst = _dx.Span.Slice(bt * inPlane, inPlane);
            dst.Clear();
            for (int g = 0; g < _s.NRep; g++)
            {
                if (_hasH)
                {
                    // dX(e + yy, jj) += dY_h(yy, jj + sh) for 0 ≤ jj + sh < w
                    int sh = _s.ShiftH(t, g), lo = Math.Max(0, -sh), hi = Math.Min(win, w - sh);
                    if (lo < hi)
                    {
                        var gh = ghAll.Slice(at, plane);
                        for (int yy = 0; yy < h; yy++)
                        {
                            Simd.AddTo(gh.Slice(yy * w + lo + sh, hi - lo), dst.Slice((yy + e) * win + lo, hi - lo));
                        }
                    }
                }
                if (_hasV)
                {
                    // dX(ii, e + xx) += dY_v(ii + sv, xx) for 0 ≤ ii + sv < h
                    int sv = _s.ShiftV(t, g), lo = Math.Max(0, -sv), hi = Math.Min(_hin, h - sv);
                    var gv = gvAll.Slice(at, plane);
                    for (int ii = lo; ii < hi; ii++) Simd.AddTo(gv.Slice((ii + sv) * w, w), dst.Slice(ii * win + e, w));
                }
                if (_hasI && _s.Identity(o, g) == t)
                {
                    var gi = giAll.Slice(at, plane);
                    for (int yy = 0; yy < h; yy++) Simd.AddTo(gi.Slice(yy * w, w), dst.Slice((yy + e) * win + e, w));
                }
            }
        }
    }
}
