using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using ShiftWise.Codegen;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// The trainable parameters laid out in one flat float buffer for the device optimizer: those with weight decay
/// first, then those without (the no-decay rule's), each group in ordinal name order, so a kernel tells the groups
/// apart by an index bound alone.
/// </summary>
/// <param name="Segments">Each parameter's offset and size, in buffer order.</param>
/// <param name="Total">Floats in all.</param>
/// <param name="Decaying">Floats of the parameters with weight decay (the buffer's first ones).</param>
public sealed record FlatParameters(IReadOnlyList<(string Name, long Offset, int Size)> Segments, long Total,
    long Decaying)
{
    /// <summary>The layout of parameters of the given sizes; <paramref name="decays"/> says which have decay.</summary>
    public static FlatParameters Of(IReadOnlyDictionary<string, int> sizes, Func<string, bool> decays)
    {
        var order = sizes.Keys.OrderBy(n => decays(n) ? 0 : 1).ThenBy(n => n, StringComparer.Ordinal).ToArray();
        var segments = new List<(string, long, int)>();
        long at = 0, decaying = 0;
        foreach (var n in order)
        {
            segments.Add((n, at, sizes[n]));
            at += sizes[n];
            if (decays(n)) decaying = at;
        }
        return new FlatParameters(segments, at, decaying);
    }
}

/// <summary>
/// Fused optimizer kernels over a <see cref="FlatParameters"/> buffer, one element per thread, with the CPU
/// trainer's float32 arithmetic step for step (Runtime.Train.AdamW and Sgd): AdamW (p, g, m, v, hyper), SGD with
/// momentum (p, g, buf, hyper), the gradient accumulation (acc, g, hyper) and fp16's unscale-and-check (g, found,
/// hyper). The per-step scalars (learning rate,
/// bias corrections) are the hyper buffer's, computed on the host as the CPU optimizer computes them; the constants
/// are baked in as bit patterns.
/// </summary>
public static class OptimizerKernels
{
    /// <summary>Threads per block.</summary>
    public const int Threads = 256;

    /// <summary>AdamW: hyper = [1 − lr·wd, lr / (1 − β₁ᵗ), √(1 − β₂ᵗ)].</summary>
    public static CudaKernelSource AdamW(FlatParameters f, double beta1, double beta2, double eps) =>
        Render(new OptimizerModel("adamw", f, "float* p, const float* g, float* m, float* v, const float* hyper")
        {
            Beta1 = Bits((float)beta1), OneMinusBeta1 = Bits((float)(1 - beta1)),
            Beta2 = Bits((float)beta2), OneMinusBeta2 = Bits((float)(1 - beta2)), Eps = Bits((float)eps),
        });

    /// <summary>
    /// SGD (coupled weight decay, momentum μ; no buffer when μ = 0): hyper = [lr, 1 on the first step].
    /// </summary>
    public static CudaKernelSource Sgd(FlatParameters f, double weightDecay, double momentum) =>
        Render(new OptimizerModel("sgd", f, momentum != 0 ? "float* p, const float* g, float* buf, const float* hyper"
            : "float* p, const float* g, const float* hyper")
        {
            WeightDecay = Bits((float)weightDecay), Mu = Bits((float)momentum), Momentum = momentum != 0,
        });

    /// <summary>acc += g · hyper[0] over <paramref name="f"/>'s buffer.</summary>
    public static CudaKernelSource Accumulate(FlatParameters f) =>
        Render(new OptimizerModel("accumulate", f, "float* acc, const float* g, const float* hyper"));

    /// <summary>
    /// fp16 loss scaling: g *= hyper[0] (1 / scale) over <paramref name="f"/>'s buffer, found[0] = 1 if any result
    /// is infinite or NaN.
    /// </summary>
    public static CudaKernelSource Unscale(FlatParameters f) =>
        Render(new OptimizerModel("unscale", f, "float* g, int* found, const float* hyper"));

    /// <summary>Blocks for one launch over the buffer.</summary>
    public static Dim3 Grid(FlatParameters f) => new((int)Math.Max(1, (f.Total + Threads - 1) / Threads));

    private static CudaKernelSource Render(OptimizerModel model)
    {
        var probe = TemplateRenderer.Render("optimizer.cu.sbn", model with { Name = "swc_kernel_name_placeholder" });
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(probe)))[..8];
        var name = $"optim_{model.Kind}_{hash}";
        return new CudaKernelSource(name, "optimizer_" + model.Kind,
            TemplateRenderer.Render("optimizer.cu.sbn", model with { Name = name }), [name]);
    }

    private static string Bits(float v) =>
        "0x" + BitConverter.SingleToInt32Bits(v).ToString("X8", CultureInfo.InvariantCulture);

    /// <summary>The view-model of optimizer.cu.sbn (constants as float bit patterns).</summary>
    private sealed record OptimizerModel(string Kind, FlatParameters F, string Params)
    {
        public string Name { get; init; } = "";

        public int Threads => OptimizerKernels.Threads;

        public long Total => F.Total;

        public long Decaying => F.Decaying;

        public string Beta1 { get; init; } = "0";

        public string OneMinusBeta1 { get; init; } = "0";

        public string Beta2 { get; init; } = "0";

        public string OneMinusBeta2 { get; init; } = "0";

        public string Eps { get; init; } = "0";

        public string WeightDecay { get; init; } = "0";

        public string Mu { get; init; } = "0";

        public bool Momentum { get; init; }
    }
}
