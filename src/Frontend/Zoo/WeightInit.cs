using System.Text;
using ShiftWise.Frontend.Tables;
using ShiftWise.IR;

namespace ShiftWise.Frontend.Zoo;

/// <summary>How to draw weights for a model run without a checkpoint.</summary>
public enum InitScheme
{
    /// <summary>
    /// Every parameter random and O(1) in effect (weights N(0, 1/fan-in), biases N(0, 0.1²), norm scales U(0.5, 1.5),
    /// running means N(0, 0.2²), running variances U(0.5, 2), GRN γ/β N(0, 0.3²), layer scale U(0.5, 1.5)), so that
    /// every op visibly shapes the output: the default, because it makes a wrong kernel show up in the logits.
    /// </summary>
    Lively,
    /// <summary>
    /// The original's _init_weights: conv and linear weights N(0, 0.02²) (timm's trunc_normal_ cuts at ±2, which
    /// never binds at this std), biases 0, norm scales 1 and shifts 0, running statistics 0 and 1, GRN 0, layer scale
    /// at its init value (1e-6: each block starts as nearly the identity).
    /// </summary>
    Original,
}

/// <summary>
/// Seeded initialisation. Each tensor gets its own MT19937 stream seeded from the run's seed and a hash of the
/// tensor's name, so a tensor's values do not depend on which other tensors exist or their order.
/// </summary>
public static class WeightInit
{
    /// <summary>Draws every parameter of the model.</summary>
    public static Dictionary<string, Tensor> Draw(Model m, InitScheme scheme, uint seed, double layerScaleInit = 1e-6)
    {
        // each tensor has its own stream, so drawing them in parallel gives the same values as in order
        var drawn = new Tensor[m.Graph.Params.Count];
        Parallel.For(0, drawn.Length, j =>
        {
            var p = m.Graph.Params[j];
            var info = m.Params.TryGetValue(p.Name, out var i) ? i : new ParamInfo(ParamRole.Weight, 1);
            var rng = new Mt19937(seed ^ Fnv1a(p.Name));
            var v = new double[p.Type.Shape.Elements];
            for (int k = 0; k < v.Length; k++) v[k] = Sample(info, scheme, rng, layerScaleInit);
            drawn[j] = Tensor.FromDoubles(p.Type, v);
        });
        var w = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        for (int j = 0; j < drawn.Length; j++) w[m.Graph.Params[j].Name] = drawn[j];
        return w;
    }

    private static double Sample(ParamInfo info, InitScheme scheme, Mt19937 r, double layerScaleInit)
    {
        if (scheme == InitScheme.Original)
        {
            return info.Role switch
            {
                ParamRole.Weight => 0.02 * Normal(r),
                ParamRole.NormWeight or ParamRole.RunningVar => 1,
                ParamRole.LayerScale => layerScaleInit,
                _ => 0,
            };
        }
        return info.Role switch
        {
            ParamRole.Weight => Normal(r) / Math.Sqrt(Math.Max(1, info.FanIn)),
            ParamRole.Bias or ParamRole.NormBias => 0.1 * Normal(r),
            ParamRole.NormWeight or ParamRole.LayerScale => 0.5 + r.NextDouble(),
            ParamRole.RunningMean => 0.2 * Normal(r),
            ParamRole.RunningVar => 0.5 + 1.5 * r.NextDouble(),
            ParamRole.Grn => 0.3 * Normal(r),
            _ => throw new ArgumentOutOfRangeException(nameof(info)),
        };
    }

    /// <summary>A standard normal draw (Box-Muller; one of the pair is discarded to keep the stream simple).</summary>
    public static double Normal(Mt19937 r)
    {
        double u = 1 - r.NextDouble(); // (0, 1]: the log is finite
        return Math.Sqrt(-2 * Math.Log(u)) * Math.Cos(2 * Math.PI * r.NextDouble());
    }

    private static uint Fnv1a(string s)
    {
        uint h = 2166136261;
        foreach (var b in Encoding.UTF8.GetBytes(s)) h = (h ^ b) * 16777619;
        return h;
    }
}
