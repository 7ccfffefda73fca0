using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Runtime.Cpu;

/// <summary>
/// A <see cref="GemmGrnFold"/> node on the CPU: its two GEMMs as they were before the fold (two
/// <see cref="GemmKernel"/>s, GRN's β zero, the folded bias on the second), with the first GEMM's output in a
/// scratch of this instance. The CPU gains nothing from folding GRN's apply into the weights (it reads the
/// activation from cache either way), so it keeps the plain form. On the register-tiled path (in_nchw, an ISA the
/// tiled GEMM runs) it does fold: the intermediate is channel-first, the first GEMM's tiles give GRN's sums of
/// squares, and GRN's per-sample scale multiplies the second GEMM's weight columns (N×K per sample, against
/// HW×N×K multiply-adds), so the activation is not passed over again. One <see cref="Run"/> at a time per instance.
/// </summary>
public sealed unsafe class GemmGrnFoldKernel : CpuKernel
{
    private readonly GemmGrnFold _op;
    private readonly KernelRequest _r1, _r2;
    private GemmKernel? _first, _second, _first1, _second1;
    private readonly float[] _beta;
    private readonly long _uElements;
    private float[]? _u;
    private readonly int _batch, _hw, _c, _e, _yLength;
    private (GemmTiled First, GemmTiled Second, GemmEpilogue Grn)? _tiled;

    /// <summary>Binds the kernel to a gemm_grn_fold node; throws <see cref="IrException"/> for anything else.</summary>
    public GemmGrnFoldKernel(KernelRequest request)
    {
        var node = request.Node;
        _op = node.Op as GemmGrnFold
            ?? throw new IrException($"{node.Describe()}: the folded GRN kernel runs gemm_grn_fold nodes only");
        var (a, b) = _op.Split(request.InputTypes);
        var (ca, cb) = _op.Split(request.Constants);
        ca[^1] = null;
        TensorType u;
        try
        {
            u = _op.First.Infer(a)[0];
        }
        catch (IrException e)
        {
            throw new IrException($"{node.Describe()}: {e.Message}", e);
        }
        var uName = node.Name + ".grn";
        var n1 = new Node(_op.First, a.Select((_, i) => $"{node.Name}.in{i}").ToArray(), new[] { uName }, new[] { u });
        var n2 = new Node(_op.Second, new[] { uName }.Concat(b.Select((_, i) => $"{node.Name}.in2_{i}")).ToArray(),
            node.Outputs, node.Types);
        _r1 = new KernelRequest(n1, a, ca);
        _r2 = new KernelRequest(n2, [u, .. b], [null, .. cb]);
        // bind both now so that a node the GEMM kernel refuses fails here, not at the first run
        var (k1, k2) = (new GemmKernel(_r1), new GemmKernel(_r2));
        _uElements = u.Shape.Elements;
        _beta = new float[a[^1].Shape.Elements];
        var x = a[0].Shape;
        (_batch, _hw, _c, _e) = (x[0], _op.InNchw ? x[2] * x[3] : x[1] * x[2], a[1].Shape[1], a[1].Shape[0]);
        _yLength = (int)node.Types[0].Shape.Elements;
        Label = "grn fold: " + k1.Label + " + " + k2.Label;
    }

    /// <inheritdoc/>
    public override string Label { get; }

    /// <summary>The vector ISA of the tiled path (default: <see cref="GemmIsa.Current"/>).</summary>
    public GemmVectors Isa { get; init; } = GemmIsa.Current;

    /// <summary>The backend, as <see cref="GemmKernel.Backend"/>: Tiled, or Auto where
    /// <see cref="Blas.AutoTiled"/>, takes the tiled path; the others run the two GEMMs with it.</summary>
    public BlasBackend Backend { get; init; } = BlasBackend.Auto;

    /// <summary>Whether <see cref="Run"/> takes the register-tiled, folded path.</summary>
    public bool Tiled => (Backend == BlasBackend.Tiled || (Backend == BlasBackend.Auto && Blas.AutoTiled))
        && _op.InNchw && GemmTiled.Supports(_op.First, Isa);

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs)
    {
        if (Tiled)
        {
            RunTiled(inputs, outputs[0]);
            return;
        }
        var (a, b) = _op.Split(inputs);
        a[^1] = Buf.Of(_beta);
        if (_batch > 1)
        {
            RunPerSample(a, b, outputs[0]);
            return;
        }
        var u = Buf.Of(Intermediate(_batch));
        _first ??= new GemmKernel(_r1) { Backend = Backend, Isa = Isa };
        _second ??= new GemmKernel(_r2) { Backend = Backend, Isa = Isa };
        _first.Run(a, [u]);
        _second.Run([u, .. b], outputs);
    }

    /// <summary>
    /// Batch &gt; 1: both GEMMs one sample at a time (GRN's statistics are per sample), so the intermediate, four
    /// times the input's width, stays in the last-level cache: at batch 8 in sw-tiny's stage 0 it is 32 MB for the
    /// whole batch against 4 MB for a sample.
    /// </summary>
    private void RunPerSample(Buf[] a, Buf[] b, Buf output)
    {
        _first1 ??= new GemmKernel(AtBatch1(_r1, _op.First)) { Backend = Backend, Isa = Isa };
        _second1 ??= new GemmKernel(AtBatch1(_r2, _op.Second)) { Backend = Backend, Isa = Isa };
        int xs = a[0].Length / _batch, ys = output.Length / _batch;
        int res = _op.HasResidual ? _op.Second.Slots.Residual - 1 : -1;
        var u = Buf.Of(Intermediate(1));
        var a1 = (Buf[])a.Clone();
        var b1 = (Buf[])b.Clone();
        for (int n = 0; n < _batch; n++)
        {
            a1[0] = Slice(a[0], n, xs);
            if (res >= 0) b1[res] = Slice(b[res], n, ys);
            _first1.Run(a1, [u]);
            _second1.Run([u, .. b1], [Slice(output, n, ys)]);
        }
    }

    /// <summary>
    /// The first GEMM's output for <paramref name="samples"/> samples, allocated at the first run: one sample where
    /// the pair runs per sample (8× less memory at batch 8), the whole batch elsewhere. Which path runs is fixed at
    /// construction, so one size serves every run.
    /// </summary>
    private float[] Intermediate(int samples) => _u ??= new float[_uElements / _batch * samples];

    private static Buf Slice(Buf b, int sample, int per) => new(b.Array, b.Offset + sample * per, per);

    /// <summary>The request at batch 1: x (and the residual) lose their batch; weights, bias, γ and β keep theirs.
    /// </summary>
    private static KernelRequest AtBatch1(KernelRequest r, Gemm op)
    {
        var types = r.InputTypes.ToArray();
        types[0] = One(types[0]);
        if (op.HasResidual) types[op.Slots.Residual] = One(types[op.Slots.Residual]);
        return r with { InputTypes = types };

        static TensorType One(TensorType t) => t with { Shape = new Shape([1, .. t.Shape.ToArray()[1..]]) };
    }

    private void RunTiled(Buf[] inputs, Buf output)
    {
        var s = _op.Slots;
        if (_tiled is null)
        {
            // the first GEMM writes its channel-first intermediate; the second reads it as in_nchw
            var first = new Gemm(true, true, _op.Act, _op.HasBias, true, _op.GrnEps, false);
            var second = new Gemm(true, _op.OutNchw, _op.Act2, true, false, 1e-6, _op.HasResidual);
            _tiled = (new GemmTiled(first, _batch, _hw, _c, _e, Isa, Blas.Threads),
                new GemmTiled(second, _batch, _hw, _e, _c, Isa, Blas.Threads),
                new GemmEpilogue(first, _batch, _hw, _e, channelFirst: true));
        }
        var (t1, t2, grn) = _tiled.Value;
        Expect(inputs[0], _batch * _hw * _c, "x");
        Expect(inputs[1], _e * _c, "weight");
        Expect(inputs[s.Gamma], _e, "gamma");
        Expect(inputs[s.W2], _c * _e, "second weight");
        Expect(inputs[s.Bias2], _c, "second bias");
        Expect(output, _yLength, "output");
        if (_op.HasBias) Expect(inputs[s.Bias], _e, "bias");
        if (_op.HasResidual) Expect(inputs[s.Residual], _yLength, "residual");
        fixed (float* x = inputs[0].Span, w1 = inputs[1].Span, u = Intermediate(_batch), w2 = inputs[s.W2].Span,
            y = output.Span)
        fixed (float* b1 = _op.HasBias ? inputs[s.Bias].Span : default, b2 = inputs[s.Bias2].Span)
        fixed (float* r = _op.HasResidual ? inputs[s.Residual].Span : default)
        {
            t1.Run(x, w1, u, b1, null, grn.Sums, null);
            fixed (float* scale = grn.GrnScales(inputs[s.Gamma].Span))
            {
                t2.Run(u, w2, y, b2, r, null, scale);
            }
        }
    }

    private void Expect(Buf b, int length, string what)
    {
        if (b.Length != length)
        {
            throw new ArgumentException($"{Label}: {what} buffer holds {b.Length} floats, the node needs {length}");
        }
    }
}
