using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu.Kernels;

/// <summary>
/// The grad of linear (y = x·Wᵀ + b over the last axis) in float32, every leading axis a row: dX = dY·W and
/// dW = dYᵀ·X, one <see cref="Blas.Sgemm"/> each (BLAS threads them, splitting only the output, so the sums over
/// rows keep their order), and db the column sums of dY: columns split over the parts in blocks of eight, rows
/// summed in float blocks of <see cref="Block"/> that are added in double.
/// </summary>
public sealed class LinearGradKernel : GradKernel
{
    private const int Block = 64;

    private readonly int _rows, _k, _out, _biasParts;
    private readonly Buf _ones;
    private readonly float[][] _block;
    private readonly double[] _sum;
    private readonly Action<int> _biasPart;
    private Buf _dy, _db;

    /// <summary>Binds the kernel to a grad node of linear.</summary>
    public LinearGradKernel(KernelRequest r) : base(r)
    {
        var x = InputTypes[0].Shape;
        var w = InputTypes[1].Shape;
        KernelCheck.Count(r, x);
        KernelCheck.Count(r, OutputTypes[0].Shape);
        (_out, _k) = (w[0], w[1]);
        _rows = (int)new IR.Shape(x.ToArray()[..^1]).Elements;
        if (Seeds) _ones = ConvGradKernels.Ones(_rows * _out);
        _biasParts = Par.Parts((long)_rows * _out, (_out + 7) / 8);
        _block = Enumerable.Range(0, _biasParts).Select(_ => new float[_out]).ToArray();
        _sum = new double[_out];
        _biasPart = BiasPart;
    }

    /// <inheritdoc/>
    public override string Label => $"{nameof(LinearGradKernel)}[{_rows}x{_k}->{_out}]";

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        _dy = Gy(inputs, 0) ?? _ones;
        ReadOnlySpan<float> dy = _dy.Span;
        int ldy = Math.Max(1, _out), ldk = Math.Max(1, _k);
        if (N == 3 && Gx(outputs, 2) is { } db)
        {
            _db = db;
            Par.Run(_biasParts, _biasPart);
        }
        if (Gx(outputs, 0) is { } dx)
        {
            Blas.Sgemm(false, false, _rows, _k, _out, 1f, dy, ldy, X(inputs, 1).Span, ldk, 0f, dx.Span, ldk);
        }
        if (Gx(outputs, 1) is { } dw)
        {
            Blas.Sgemm(true, false, _out, _k, _rows, 1f, dy, ldy, X(inputs, 0).Span, ldk, 0f, dw.Span, ldk);
        }
    }

    /// <summary>Column sums of dY over columns [c0, c1) of part <paramref name="p"/>.</summary>
    private void BiasPart(int p)
    {
        var (b0, b1) = Par.Range(p, _biasParts, (_out + 7) / 8);
        int c0 = b0 * 8, c1 = Math.Min(_out, b1 * 8), n = c1 - c0;
        if (n <= 0) return;
        ReadOnlySpan<float> dy = _dy.Span;
        var block = _block[p].AsSpan(c0, n);
        var sum = _sum.AsSpan(c0, n);
        sum.Clear();
        for (int r0 = 0; r0 < _rows; r0 += Block)
        {
            int r1 = Math.Min(_rows, r0 + Block);
            dy.Slice(r0 * _out + c0, n).CopyTo(block);
            for (int row = r0 + 1; row < r1; row++) Simd.AddTo(dy.Slice(row * _out + c0, n), block);
            for (int c = 0; c < n; c++) sum[c] += block[c];
        }
        var db = _db.Span.Slice(c0, n);
        for (int c = 0; c < n; c++) db[c] = (float)sum[c];
    }
}
