using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes;
using ShiftWise.Runtime.Compile;

namespace ShiftWise.Bench;

/// <summary>One SW layer shape: C block channels of which R are rep channels, an H×W map, big kernel B, small k.</summary>
internal sealed record SwShape(string Stage, int C, int R, int H, int W, int B, int K = 3)
{
    /// <summary>The SW-tiny stage shapes of PERFORMANCE.md (k = 3).</summary>
    public static readonly IReadOnlyList<SwShape> Tiny =
    [
        new("s0", 80, 60, 56, 56, 51),
        new("s1", 160, 122, 28, 28, 49),
        new("s2", 320, 246, 14, 14, 47),
        new("s3", 640, 492, 7, 7, 13),
    ];

    /// <summary>n = ⌈B/k⌉, the k×k blocks per band.</summary>
    public int Blocks => (B + K - 1) / K;

    /// <summary>n·k, the band length.</summary>
    public int BandWidth => Blocks * K;

    /// <summary>μ = ⌊B/2⌋, the band's left/top extent.</summary>
    public int Mu => B / 2;

    /// <summary>r = (k−1)/2, the band's half thickness.</summary>
    public int Half => (K - 1) / 2;

    /// <summary>Taps per channel of the collapsed cross: 2·n·k·k − k².</summary>
    public int Taps => 2 * BandWidth * K - K * K;

    /// <summary>R rounded up to a multiple of 4 (what ORT's NCHWc depthwise path needs).</summary>
    public int RPadded4 => (R + 3) / 4 * 4;

    /// <summary>Collapsed FLOPs of the layer: N·R·H·W·taps·2.</summary>
    public double Flops(int batch) => 2.0 * batch * R * H * W * Taps;

    /// <summary>A short label for tables.</summary>
    public string Label => $"{Stage}: C{C} R{R} {H}x{W} B{B}";
}

/// <summary>
/// A benchmark problem: the shape, the batch, random cross kernels (the layout of <see cref="CrossKernels"/>), a
/// per-rep-channel bias and a random NCHW input of N×R×H×W floats.
/// </summary>
internal sealed class SwLayerProblem
{
    /// <summary>The layer shape.</summary>
    public required SwShape Shape { get; init; }

    /// <summary>Batch size N.</summary>
    public required int Batch { get; init; }

    /// <summary>The cross kernels (H band k×n·k and V band n·k×k per rep channel; they overlap in the centre).</summary>
    public required CrossKernels Cross { get; init; }

    /// <summary>Bias per rep channel (R values).</summary>
    public required float[] Bias { get; init; }

    /// <summary>The input, NCHW, N×R×H×W.</summary>
    public required float[] Input { get; init; }

    /// <summary>Elements of the output (N·R·H·W).</summary>
    public int OutputLength => Batch * Shape.R * Shape.H * Shape.W;

    /// <summary>The SW layer as built from the model zoo (no ghosts: C = R), unoptimised, with its weights.</summary>
    public required Model Layer { get; init; }

    /// <summary>The layer's weights (lively random init, ~30% zero sub-kernels).</summary>
    public required IReadOnlyDictionary<string, Tensor> Weights { get; init; }

    /// <summary>The layer after the inference pipeline: one fused_shiftwise node, and its parameters.</summary>
    public required OptimizedGraph Fused { get; init; }

    /// <summary>
    /// A real SW layer of the shape (seeded tables, N_path 2, N_rep 4, random weights and BN statistics, 30% zero
    /// sub-kernels), compiled by the pass pipeline; the cross kernels and bias every candidate and peer computes are
    /// the collapse of its fused node, so ORT, our lowerings and our unoptimised graph all compute the same function.
    /// </summary>
    public static SwLayerProblem Random(SwShape s, int batch, int seed = 1234)
    {
        var m = ShiftWiseV2.BuildLayer(s.R, s.H, s.W, s.B, s.K, 4, 0.0, batch);
        var w = WeightInit.Draw(m, InitScheme.Lively, (uint)seed);
        var rng = new Random(seed);
        foreach (var name in w.Keys.Where(k => k.StartsWith("LoRAs.", StringComparison.Ordinal)).ToList())
        {
            var t = w[name].ToDoubles();
            for (int i = 0; i < t.Length / (s.K * s.K); i++)
            {
                if (rng.NextDouble() < 0.3) Array.Clear(t, i * s.K * s.K, s.K * s.K);
            }
            w[name] = Tensor.FromDoubles(w[name].Type, t);
        }
        var ctx = Driver.Optimize(m.Graph, w, "inference");
        var node = ctx.Graph.Nodes.Single();
        var op = (FusedShiftWise)node.Op;
        var cross = SwCollapse.Collapse(op.Shift, op.Subs, ctx.Weights[node.Inputs[1]].ToDoubles(),
            ctx.Weights[node.Inputs[2]].ToDoubles());
        var bias = ctx.Weights[node.Inputs[3]].ToDoubles().Select(v => (float)v).ToArray();
        var x = new float[batch * s.R * s.H * s.W];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        return new SwLayerProblem
        {
            Shape = s,
            Batch = batch,
            Cross = cross,
            Bias = bias,
            Input = x,
            Layer = m,
            Weights = w,
            Fused = ctx,
        };
    }

    /// <summary>The union of both bands as one (n·k)×(n·k) square per channel, row = dy+μ, column = dx+μ.</summary>
    public float[] DenseSquare(int channelsOut)
    {
        SwShape s = Shape;
        int nk = s.BandWidth, k = s.K, top = s.Mu - s.Half;
        var d = new float[channelsOut * nk * nk];
        for (int o = 0; o < s.R; o++)
        {
            int b = o * nk * nk;
            for (int u = 0; u < k; u++)
            for (int c = 0; c < nk; c++)
            {
                d[b + (top + u) * nk + c] += (float)Cross.H[Cross.HAt(o, u, c)];
                d[b + c * nk + top + u] += (float)Cross.V[Cross.VAt(o, c, u)];
            }
        }
        return d;
    }

    /// <summary>
    /// The three-conv band split: H with its centre k columns zeroed (k×n·k), V with its centre k rows zeroed
    /// (n·k×k), and the centre k×k holding both centres. Their sum is exactly the cross.
    /// </summary>
    public (float[] H, float[] V, float[] Centre) BandSplit(int channelsOut)
    {
        SwShape s = Shape;
        int nk = s.BandWidth, k = s.K, top = s.Mu - s.Half;
        var h = new float[channelsOut * k * nk];
        var v = new float[channelsOut * nk * k];
        var ctr = new float[channelsOut * k * k];
        for (int o = 0; o < s.R; o++)
        for (int u = 0; u < k; u++)
        for (int c = 0; c < nk; c++)
        {
            float hw = (float)Cross.H[Cross.HAt(o, u, c)], vw = (float)Cross.V[Cross.VAt(o, c, u)];
            bool centre = c >= top && c < top + k;
            if (centre)
            {
                ctr[(o * k + u) * k + c - top] += hw; // H(dy = u−r, dx = c−μ)
                ctr[(o * k + c - top) * k + u] += vw; // V(dy = c−μ, dx = u−r)
            }
            else
            {
                h[(o * k + u) * nk + c] = hw;
                v[(o * nk + c) * k + u] = vw;
            }
        }
        return (h, v, ctr);
    }

    /// <summary>Relative L2 error ‖a−b‖/‖b‖ in double.</summary>
    public static double RelL2(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"length {a.Length} vs {b.Length}");
        double num = 0, den = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = (double)a[i] - b[i];
            num += d * d;
            den += (double)b[i] * b[i];
        }
        return Math.Sqrt(num / Math.Max(den, double.Epsilon));
    }

    /// <summary>The IR's double-precision oracle (<see cref="SwCollapse.Apply"/>) on the first image.</summary>
    public float[] OracleFirstImage()
    {
        SwShape s = Shape;
        int plane = s.R * s.H * s.W;
        var x = new double[plane];
        for (int i = 0; i < plane; i++) x[i] = Input[i];
        var bias = Bias.Select(b => (double)b).ToArray();
        double[] y = SwCollapse.Apply(Cross, x, 1, s.H, s.W, bias);
        return y.Select(v => (float)v).ToArray();
    }
}
