using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;
using ShiftWise.Runtime.Cpu;
using ShiftWise.Runtime.Cpu.Kernels;

namespace ShiftWise.Runtime.Tests;

/// <summary>Runs one op through its CPU kernel and through the reference executor, and compares.</summary>
internal static class KernelHarness
{
    /// <summary>
    /// The bound for every f32 kernel against the float64 reference (the figure). Each output is a sum of
    /// at most a few thousand products rounded to f32 (unit roundoff 6e-8); with random signs the error grows like
    /// √K·u, about 1e-6 relative for the largest K here, so 1e-5 leaves headroom for a different summation order
    /// while an indexing bug (an O(1) error somewhere) still fails by orders of magnitude.
    /// </summary>
    public const double Tol = 1e-5;

    /// <summary>Guard values around each buffer: a kernel that writes outside its range changes them.</summary>
    private const int Pad = 5;

    public static Node NodeFor(Op op, IReadOnlyList<TensorType> inputs)
    {
        var types = op.Infer(inputs);
        var ins = Enumerable.Range(0, inputs.Count).Select(i => $"in{i}").ToArray();
        var outs = op.OutputSuffixes.Select(s => "y" + s).ToArray();
        return new Node(op, ins, outs, types);
    }

    public static CpuKernel Create(Op op, IReadOnlyList<TensorType> inputs) =>
        KernelTable.Create(new KernelRequest(NodeFor(op, inputs), inputs.ToArray(), new Tensor?[inputs.Count]));

    /// <summary>
    /// Runs the kernel twice (it must be reusable) on buffers placed at an offset inside larger arrays, outputs
    /// pre-filled with NaN (every element must be written), and returns the worst relative L2 error over outputs.
    /// </summary>
    public static double Check(Op op, params Tensor[] inputs)
    {
        var kernel = Create(op, inputs.Select(t => t.Type).ToArray());
        var expected = ReferenceExecutor.Evaluate(op, inputs);
        var ins = inputs.Select(t => Place(t.ToDoubles().Select(v => (float)v).ToArray(), 0f)).ToArray();
        var outs = expected.Select(t => Place(new float[t.Length], float.NaN)).ToArray();
        kernel.Run(ins, outs);
        var first = outs.Select(b => b.Span.ToArray()).ToArray();
        foreach (var b in outs) b.Span.Fill(float.NaN);
        kernel.Run(ins, outs);
        double worst = 0;
        for (int i = 0; i < outs.Length; i++)
        {
            Assert.Equal(first[i], outs[i].Span.ToArray());
            Guards(outs[i]);
            var got = outs[i].Span.ToArray().Select(v => (double)v).ToArray();
            worst = Math.Max(worst, RelL2(got, expected[i].ToDoubles()));
        }
        foreach (var b in ins) Guards(b);
        return worst;
    }

    /// <summary>Asserts the kernel matches the reference within <see cref="Tol"/>.</summary>
    public static void Matches(string what, Op op, params Tensor[] inputs)
    {
        double err = Check(op, inputs);
        Assert.True(err <= Tol, $"{what}: relative L2 error {err:e2} > {Tol:e0}");
    }

    private static Buf Place(float[] data, float fill)
    {
        var a = new float[data.Length + 2 * Pad];
        Array.Fill(a, -7.25f);
        var b = new Buf(a, Pad, data.Length);
        if (float.IsNaN(fill)) b.Span.Fill(fill);
        else data.CopyTo(b.Span);
        return b;
    }

    private static void Guards(Buf b)
    {
        for (int i = 0; i < Pad; i++)
        {
            Assert.Equal(-7.25f, b.Array[i]);
            Assert.Equal(-7.25f, b.Array[b.Offset + b.Length + i]);
        }
    }

    /// <summary>‖a − b‖₂ / max(‖b‖₂, tiny); NaN anywhere counts as infinite error.</summary>
    public static double RelL2(double[] a, double[] b)
    {
        Assert.Equal(b.Length, a.Length);
        return IR.Analysis.Error.RelL2(a, b);
    }

    public static Tensor Rand(Random rng, Shape s, double scale = 1, double offset = 0)
    {
        var v = new double[s.Elements];
        for (int i = 0; i < v.Length; i++) v[i] = (rng.NextDouble() * 2 - 1) * scale + offset;
        return Tensor.FromDoubles(new TensorType(DType.F32, s), v);
    }

    public static Tensor Rand(Random rng, params int[] dims) => Rand(rng, new Shape(dims));

    public static Shape RandShape(Random rng, int rank, int max = 6) =>
        new(Enumerable.Range(0, rank).Select(_ => rng.Next(1, max + 1)).ToArray());

    /// <summary>A shape that broadcasts to <paramref name="to"/>: maybe fewer leading axes, some set to 1.</summary>
    public static Shape BroadcastFrom(Random rng, Shape to)
    {
        int rank = rng.Next(3) == 0 ? rng.Next(0, to.Rank + 1) : to.Rank;
        return new Shape(Enumerable.Range(to.Rank - rank, rank).Select(d => rng.Next(3) == 0 ? 1 : to[d]).ToArray());
    }

    public static Tensor Labels(Random rng, int n, int k) =>
        Tensor.FromDoubles(TensorType.Of(DType.I64, n),
            Enumerable.Range(0, n).Select(_ => (double)rng.Next(k)).ToArray());

    public static string Describe(IEnumerable<Tensor> xs) => string.Join(" ", xs.Select(t => t.Shape.ToString()));
    /// <summary>
    /// Random inputs of a <see cref="Gemm"/>: x (NCHW with in_nchw, else NHWC), W (N×K, scaled by 1/√K), then bias,
    /// GRN's γ and β, and the residual, as the op's flags ask.
    /// </summary>
    public static Tensor[] GemmInputs(Random rng, Gemm op, int batch, int h, int w, int k, int n)
    {
        var list = new List<Tensor>
        {
            op.InNchw ? Rand(rng, batch, k, h, w) : Rand(rng, batch, h, w, k),
            Rand(rng, new Shape(n, k), 1 / Math.Sqrt(k)),
        };
        if (op.HasBias) list.Add(Rand(rng, n));
        if (op.HasGrn)
        {
            list.Add(Rand(rng, 1, 1, 1, n));
            list.Add(Rand(rng, 1, 1, 1, n));
        }
        if (op.HasResidual) list.Add(Rand(rng, op.OutNchw ? new[] { batch, n, h, w } : new[] { batch, h, w, n }));
        return list.ToArray();
    }

    /// <summary>
    /// Builds the kernel with <paramref name="make"/>, runs it twice on a NaN-filled output (every element must be
    /// written; the second run must give the same bits) and returns the relative L2 error against the reference.
    /// </summary>
    public static double RunTwiceError(Op op, Tensor[] inputs, Func<KernelRequest, CpuKernel> make)
    {
        var types = inputs.Select(t => t.Type).ToArray();
        var kernel = make(new KernelRequest(NodeFor(op, types), types, new Tensor?[types.Length]));
        var expected = ReferenceExecutor.Evaluate(op, inputs)[0].ToDoubles();
        var ins = inputs.Select(t => Buf.Of(t.ToDoubles().Select(v => (float)v).ToArray())).ToArray();
        var y = new float[expected.Length];
        Array.Fill(y, float.NaN);
        kernel.Run(ins, [Buf.Of(y)]);
        var first = (float[])y.Clone();
        Array.Fill(y, float.NaN);
        kernel.Run(ins, [Buf.Of(y)]);
        Assert.Equal(first, y);
        return RelL2(y.Select(v => (double)v).ToArray(), expected);
    }
}
