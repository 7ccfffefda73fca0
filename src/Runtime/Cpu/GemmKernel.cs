using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu;

/// <summary>
/// A <see cref="Gemm"/> or <see cref="Linear"/> node in float32: one BLAS call (per sample where a layout is NCHW)
/// followed by one fused epilogue pass (bias, activation, residual), plus a second pass when GRN needs its
/// per-sample statistics first. The layout changes cost nothing: with in_nchw a sample's input is the K×HW matrix
/// Xᵀ, so the GEMM reads it transposed; with out_nchw the kernel computes Yᵀ = W·Xᵀ (N×HW) directly by swapping
/// the operands. One <see cref="Run"/> at a time per instance: the epilogue's scratch is allocated here.
/// </summary>
public sealed unsafe class GemmKernel : CpuKernel
{
    private readonly Gemm _op;
    private readonly int _batch, _hw, _k, _n, _rows;
    private readonly int _xLength, _wLength, _yLength;
    private readonly GemmEpilogue _epilogue;

    /// <summary>
    /// Binds the kernel to a gemm or linear node; throws <see cref="IrException"/> for anything else.
    /// </summary>
    public GemmKernel(KernelRequest request)
    {
        var node = request.Node;
        _op = node.Op switch
        {
            Gemm g => g,
            Linear => Gemm.Plain(request.InputTypes.Count == 3),
            _ => throw new IrException($"{node.Describe()}: the GEMM kernel runs gemm and linear nodes only"),
        };
        for (int i = 0; i < request.InputTypes.Count; i++)
        {
            if (request.InputTypes[i].DType != DType.F32)
            {
                throw new IrException($"{node.Describe()}: input {i} is {request.InputTypes[i]}; the GEMM kernel runs "
                    + $"f32 only");
            }
        }
        TensorType y;
        try
        {
            // re-run inference so the kernel never trusts shapes it did not check
            y = node.Op.Infer(request.InputTypes)[0];
        }
        catch (IrException e)
        {
            throw new IrException($"{node.Describe()}: {e.Message}", e);
        }
        var x = request.InputTypes[0].Shape;
        var w = request.InputTypes[1].Shape;
        (_n, _k) = (w[0], w[1]);
        _xLength = Elements(node, x);
        _wLength = Elements(node, w);
        _yLength = Elements(node, y.Shape);
        if (_op.InNchw)
        {
            (_batch, _hw) = (x[0], x[2] * x[3]);
        }
        else if (_op.OutNchw || _op.HasGrn)
        {
            (_batch, _hw) = (x[0], x[1] * x[2]);
        }
        else
        {
            // plain: every leading axis is a row; for the epilogue the whole tensor is one "sample"
            (_batch, _hw) = (1, Elements(node, new Shape(x.ToArray()[..^1])));
        }
        _rows = checked(_batch * _hw);
        _epilogue = new GemmEpilogue(_op, _batch, _hw, _n, channelFirst: _op.OutNchw);
        Label = Describe(_op, _rows, _k, _n);
    }

    private GemmTiled? _tiled;
    private GemmBlocked? _blocked;

    /// <summary>
    /// Which GEMM runs; the tuner may pick per node. Tiled runs the register-tiled GEMM (<see cref="GemmTiled"/>)
    /// where it covers the layout and <see cref="Isa"/> is not None; Auto does too for in_nchw where
    /// <see cref="Blas.AutoTiled"/> (OpenBLAS missing: its dot-product form measured slower than the managed GEMM on
    /// channel-last inputs), and otherwise runs <see cref="Blocked"/> where it applies
    /// and one BLAS call per sample followed by the epilogue passes elsewhere, as OpenBlas and Managed always do.
    /// </summary>
    public BlasBackend Backend { get; init; } = BlasBackend.Auto;

    /// <summary>The vector ISA of the tiled GEMM (default: <see cref="GemmIsa.Current"/>, from SWC_CPU_ISA).</summary>
    public GemmVectors Isa { get; init; } = GemmIsa.Current;

    /// <summary>
    /// Whether <see cref="Run"/> makes BLAS calls on blocks of positions with each block's epilogue while it is in
    /// L2 (<see cref="GemmBlocked"/>): OpenBlasBlocked, or Auto where <see cref="Blas.AutoBlocked"/>, for in_nchw
    /// with a channel-last output (the expand GEMM of a pointwise pair).
    /// </summary>
    public bool Blocked => !Tiled && GemmBlocked.Supports(_op)
        && (Backend == BlasBackend.OpenBlasBlocked || (Backend == BlasBackend.Auto && Blas.AutoBlocked));

    /// <summary>Positions per block of the blocked path (0: sized to L2); tests set a few to get many blocks.</summary>
    internal int BlockRows { get; init; }

    /// <summary>Channels per block of the blocked path (0: chosen by shape); tests set a few.</summary>
    internal int BlockCols { get; init; }

    /// <summary>Whether <see cref="Run"/> goes through the register-tiled GEMM.</summary>
    public bool Tiled => (Backend == BlasBackend.Tiled
            || (Backend == BlasBackend.Auto && (Blas.TiledEverywhere || (Blas.AutoTiled && _op.InNchw))))
        && GemmTiled.Supports(_op, Isa);

    /// <inheritdoc/>
    public override string Label { get; }

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        var s = _op.Slots;
        int expected = 2 + (_op.HasBias ? 1 : 0) + (_op.HasGrn ? 2 : 0) + (_op.HasResidual ? 1 : 0);
        if (inputs.Length != expected || outputs.Length != 1)
        {
            throw new ArgumentException($"{Label}: expected {expected} inputs and 1 output, got {inputs.Length} and "
                + $"{outputs.Length}");
        }
        Expect(inputs[0], _xLength, "x");
        Expect(inputs[1], _wLength, "weight");
        Expect(outputs[0], _yLength, "output");
        if (Tiled)
        {
            RunTiled(inputs, outputs[0]);
            return;
        }
        if (Blocked)
        {
            RunBlocked(inputs, outputs[0]);
            return;
        }
        ReadOnlySpan<float> x = inputs[0].Span, w = inputs[1].Span;
        var y = outputs[0].Span;
        // BLAS wants every leading dimension ≥ 1, even for empty matrices
        int ldk = Math.Max(1, _k), ldn = Math.Max(1, _n), ldhw = Math.Max(1, _hw);
        if (!_op.InNchw && !_op.OutNchw)
        {
            Blas.SgemmUsing(Backend, false, true, _rows, _n, _k, 1f, x, ldk, w, ldk, 0f, y, ldn);
        }
        else
        {
            int xs = _k * _hw, ys = _n * _hw;
            for (int b = 0; b < _batch; b++)
            {
                var xb = x.Slice(b * xs, xs);
                var yb = y.Slice(b * ys, ys);
                if (_op.InNchw && !_op.OutNchw)
                {
                    // Y (HW×N) = (Xᵀ)ᵀ·Wᵀ, Xᵀ stored K×HW
                    Blas.SgemmUsing(Backend, true, true, _hw, _n, _k, 1f, xb, ldhw, w, ldk, 0f, yb, ldn);
                }
                else if (_op.InNchw)
                {
                    // Yᵀ (N×HW) = W·Xᵀ
                    Blas.SgemmUsing(Backend, false, false, _n, _hw, _k, 1f, w, ldk, xb, ldhw, 0f, yb, ldhw);
                }
                else
                {
                    // Yᵀ (N×HW) = W·Xᵀ, X stored HW×K
                    Blas.SgemmUsing(Backend, false, true, _n, _hw, _k, 1f, w, ldk, xb, ldk, 0f, yb, ldhw);
                }
            }
        }
        _epilogue.Run(outputs[0],
            _op.HasBias ? Checked(inputs[s.Bias], _n, "bias") : null,
            _op.HasGrn ? Checked(inputs[s.Gamma], _n, "gamma") : null,
            _op.HasGrn ? Checked(inputs[s.Beta], _n, "beta") : null,
            _op.HasResidual ? Checked(inputs[s.Residual], _yLength, "residual") : null);
    }

    /// <summary>
    /// The tiled path: GEMM, bias, activation and residual in one pass per tile; with GRN the tiles also give the
    /// sums of squares and one more pass applies the scale, β and the residual.
    /// </summary>
    private void RunTiled(Buf[] inputs, Buf output)
    {
        var s = _op.Slots;
        _tiled ??= new GemmTiled(_op, _batch, _hw, _k, _n, Isa, Blas.Threads);
        Buf? bias = _op.HasBias ? Checked(inputs[s.Bias], _n, "bias") : null;
        Buf? res = _op.HasResidual ? Checked(inputs[s.Residual], _yLength, "residual") : null;
        fixed (float* x = inputs[0].Span, w = inputs[1].Span, y = output.Span)
        fixed (float* pb = bias.HasValue ? bias.Value.Span : default, pr = res.HasValue ? res.Value.Span : default)
        {
            _tiled.Run(x, w, y, pb, pr, _op.HasGrn ? _epilogue.Sums : null, null);
        }
        if (_op.HasGrn)
        {
            _epilogue.ApplyGrn(output, Checked(inputs[s.Gamma], _n, "gamma"), Checked(inputs[s.Beta], _n, "beta"), res);
        }
    }

    private void RunBlocked(Buf[] inputs, Buf output)
    {
        var s = _op.Slots;
        _blocked ??= new GemmBlocked(_op, _batch, _hw, _k, _n, BlasBackend.OpenBlas, BlockRows, BlockCols);
        Buf? bias = _op.HasBias ? Checked(inputs[s.Bias], _n, "bias") : null;
        Buf? res = _op.HasResidual ? Checked(inputs[s.Residual], _yLength, "residual") : null;
        fixed (float* pb = bias.HasValue ? bias.Value.Span : default, pr = res.HasValue ? res.Value.Span : default)
        {
            _blocked.Run(inputs[0].Span, inputs[1].Span, output.Span, pb, pr, _op.HasGrn ? _epilogue.Sums : null);
        }
        if (_op.HasGrn)
        {
            _epilogue.ApplyGrn(output, Checked(inputs[s.Gamma], _n, "gamma"), Checked(inputs[s.Beta], _n, "beta"), res);
        }
    }

    /// <summary>
    /// "gemm 3136x80x320 [in_nchw,gelu,grn]": rows × K × N and the flags, for timing tables and errors.
    /// </summary>
    private static string Describe(Gemm op, int rows, int k, int n)
    {
        var flags = new List<string>();
        if (op.InNchw) flags.Add("in_nchw");
        if (op.OutNchw) flags.Add("out_nchw");
        if (op.Act != GemmAct.None) flags.Add(AttrWriter.EnumWord(op.Act));
        if (op.HasGrn) flags.Add("grn");
        if (op.HasResidual) flags.Add("residual");
        return $"gemm {rows}x{k}x{n}" + (flags.Count > 0 ? $" [{string.Join(",", flags)}]" : "");
    }

    private Buf Checked(Buf b, int length, string what)
    {
        Expect(b, length, what);
        return b;
    }

    private void Expect(Buf b, int length, string what)
    {
        if (b.Length != length)
        {
            throw new ArgumentException($"{Label}: {what} buffer holds {b.Length} floats, the node needs {length}");
        }
    }

    private static int Elements(Node node, Shape s) => s.Elements <= Array.MaxLength
        ? (int)s.Elements
        : throw new IrException($"{node.Describe()}: shape {s} has more elements than one buffer can hold");
}
