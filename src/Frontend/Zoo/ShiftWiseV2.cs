using ShiftWise.Frontend.Tables;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.Frontend.Zoo;

/// <summary>
/// What makes a graph a training graph: batch-statistics BatchNorm (each with its updated running statistics as
/// outputs), DropPath drawing per-step masks from <see cref="DropPathSeed"/> and an i64 <c>step</c> input, and the
/// mean cross-entropy against an i64 <c>labels</c> input as output 0 (then the logits, then the running statistics).
/// </summary>
/// <param name="LabelSmoothing">Label smoothing of the cross-entropy.</param>
/// <param name="DropPathSeed">Seed of the stochastic-depth masks (block i uses seed + i).</param>
/// <param name="DropPath">Whether DropPath is active (off: the blocks' drop path is left out, as `swc grad`
/// wants).</param>
public sealed record TrainingForm(double LabelSmoothing = 0, long DropPathSeed = 0, bool DropPath = true);

/// <summary>
/// Builds ShiftWise_v2 (SPEC 3): by default the graph the original runs in model.eval() (eval-mode batch norms), or
/// with a <see cref="TrainingForm"/> the graph of a training step's forward pass and loss. Parameter names equal the
/// original state_dict keys.
/// </summary>
public static class ShiftWiseV2
{
    /// <summary>The name of the training graph's label input.</summary>
    public const string Labels = "labels";

    /// <summary>The name of the training graph's step input (present when a block drops paths).</summary>
    public const string Step = "step";

    /// <summary>The name of the training graph's loss output.</summary>
    public const string Loss = "loss";

    private static readonly Unary Gelu = new(UnaryKind.Gelu);
    private static readonly Binary Add = new(BinaryKind.Add);
    private static readonly Binary Mul = new(BinaryKind.Mul);

    /// <summary>The whole network for an input of (Batch, InChans, Height, Width).</summary>
    public static Model Build(ShiftWiseV2Options o, string name = "shiftwise_v2", DType dtype = DType.F32,
        TrainingForm? training = null)
    {
        o.Validate();
        var m = new ModelBuilder(name, dtype) { Training = training };
        var dims = o.StageDims;
        var x = m.B.Input("x", TensorType.Of(dtype, o.Batch, o.InChans, o.Height, o.Width));
        int blocks = o.Depths.Sum(), cur = 0;
        Value? labels = training is null ? null : m.B.Input(Labels, TensorType.Of(DType.I64, o.Batch));
        if (training is { DropPath: true } && o.DropPathRate > 0)
        {
            m.StepInput = m.B.Input(Step, TensorType.Of(DType.I64));
        }
        if (training is not null && o.IsBackbone)
        {
            throw new OptionException("option --features: a backbone (stage outputs) has no classifier loss to train");
        }
        var features = new List<Value>();
        for (int s = 0; s < 4; s++)
        {
            if (s == 0)
            {
                x = Conv(m, "downsample_layers.0.0", x, dims[0] / 2, 3, 2, 1);
                x = LayerNormCf(m, "downsample_layers.0.1", x);
                x = m.B.Apply1(Gelu, "downsample_layers.0.2", x);
                x = Conv(m, "downsample_layers.0.3", x, dims[0], 3, o.StemStride / 2, 1);
                x = LayerNormCf(m, "downsample_layers.0.4", x);
            }
            else
            {
                x = Conv(m, $"downsample_layers.{s}.0", x, dims[s], 3, 2, 1);
                x = LayerNormCf(m, $"downsample_layers.{s}.1", x);
            }
            for (int j = 0; j < o.Depths[s]; j++, cur++)
            {
                double dp = blocks > 1 ? o.DropPathRate * cur / (blocks - 1) : 0;
                x = Block(m, $"stages.{s}.{j}", x, o, o.KernelSize[s], dp);
            }
            if (o.IsBackbone && o.OutIndices!.Contains(s)) features.Add(LayerNormCf(m, $"norm{s}", x));
        }
        if (o.IsBackbone)
        {
            m.B.Output([.. features]);
            return m.Build();
        }
        var pooled = m.B.Apply1(new Mean(Vec.Of(2, 3), false), "pool", x);
        var c = dims[3];
        var normed = m.B.Apply1(new LayerNorm(1e-6, NormLayout.ChannelsLast), "norm", pooled,
            m.Param("norm.weight", new(ParamRole.NormWeight), c), m.Param("norm.bias", new(ParamRole.NormBias), c));
        var logits = m.B.Apply1(new Linear(), "head", normed,
            m.Param("head.weight", new(ParamRole.Weight, c), o.NumClasses, c),
            m.Param("head.bias", new(ParamRole.Bias), o.NumClasses));
        if (labels is null)
        {
            m.B.Output(logits);
            return m.Build();
        }
        var loss = m.B.Apply1(new CrossEntropy(training!.LabelSmoothing), Loss, logits, labels.Value);
        m.B.Output([loss, logits, .. m.RunningUpdates]);
        return m.Build() with { Training = new TrainingRoles(loss.Name, logits.Name, "x", Labels, m.StepInput?.Name) };
    }

    /// <summary>
    /// A single SW layer (the sw-layer preset): input (batch, channels, height, width), parameters named as the
    /// layer's own state_dict (LoRAs.q.weight, bn_lora1.*, ...).
    /// </summary>
    public static Model BuildLayer(int channels, int height, int width, int big, int small, int nrep, double ghostRatio,
        int batch, int npath = 2, bool bn = true, DType dtype = DType.F32)
    {
        // sw-layer's own option names first (the network options below would name --dims and --kernel-size)
        void Check(bool ok, string option, string what)
        {
            if (!ok) throw new OptionException($"option {option}: {what}");
        }
        Check(channels >= 2, "--channels", $"{channels} must be >= 2 (an SW layer needs at least 2 rep channels)");
        Check(height >= 1 && width >= 1, height < 1 ? "--height" : "--width",
            $"the plane {height}x{width} must be at least 1x1");
        Check(small >= 1 && small % 2 == 1, "--small",
            $"the small kernel {small} must be odd: the original op misaligns X for even k (SPEC 8.6)");
        Check(big >= small, "--big", $"the big kernel {big} must be >= the small kernel {small}");
        var o = new ShiftWiseV2Options
        {
            Dims = [channels, channels, channels, channels], KernelSize = [big, big, big, big, small],
            GhostRatio = ghostRatio, NRep = nrep, NPath = npath, Bn = bn, Batch = batch,
        };
        o.Validate();
        var m = new ModelBuilder($"sw_layer_c{channels}_b{big}k{small}g{nrep}", dtype);
        var x = m.B.Input("x", TensorType.Of(dtype, batch, channels, height, width));
        m.B.Output(SwLayer(m, "", x, o, big));
        return m.Build();
    }

    /// <summary>
    /// The SW layer of SPEC 1: rep/ghost split, N_path depthwise k×k convs (padding k−1) summed, the shift-add,
    /// three BNs, the rep residual, then [rep channels, ghost channels].
    /// </summary>
    public static Value SwLayer(ModelBuilder m, string prefix, Value x, ShiftWiseV2Options o, int big)
    {
        int c = x.Shape[1], k = o.SmallKernel;
        var split = SwTables.Split(c, o.GhostRatio);
        int r = split.Rep.Length;
        var shift = SwTables.ShiftAdd(big, k, r, o.NRep);
        var rep = m.B.Apply1(new ChannelSelect(1, split.Rep), prefix + "rep", x);
        Value? sum = null;
        for (int q = 0; q < o.NPath; q++)
        {
            // the effective fan-in of a sub-kernel: k² taps, placed 2·N_rep times plus the identity picks
            var w = m.Param($"{prefix}LoRAs.{q}.weight", new(ParamRole.Weight, k * k * o.NRep * 2), r
                * shift.N, 1, k, k);
            var y = m.B.Apply1(Conv2d.Simple(k - 1, groups: r), $"{prefix}LoRAs.{q}", rep, w);
            sum = sum is null ? y : m.B.Apply1(Add, $"{prefix}LoRAs.sum{q}", sum.Value, y);
        }
        var paths = m.B.Apply(shift, prefix + "shift", sum!.Value);
        if (o.Bn)
        {
            string[] bns = ["bn_lora1", "bn_lora2", "bn_small"];
            for (int i = 0; i < 3; i++) paths[i] = BatchNorm(m, prefix + bns[i], paths[i]);
        }
        var z = m.B.Apply1(Add, prefix + "sum_hv", paths[0], paths[1]);
        z = m.B.Apply1(Add, prefix + "sum_hvi", z, paths[2]);
        z = m.B.Apply1(Add, prefix + "residual", z, rep);
        if (split.Ghost.Length == 0) return z;
        var ghost = m.B.Apply1(new ChannelSelect(1, split.Ghost), prefix + "ghost", x);
        return m.B.Apply1(new Concat(1), prefix + "out", z, ghost);
    }

    private static Value Block(ModelBuilder m, string p, Value input, ShiftWiseV2Options o, int big, double dropPath)
    {
        int c = input.Shape[1];
        var x = SwLayer(m, p + ".large_kernel.", input, o, big);
        x = BatchNorm(m, p + ".norm", x);
        // SE: pool, 1x1 down + ReLU, 1x1 up + sigmoid, scale
        var s = m.B.Apply1(new Mean(Vec.Of(2, 3), true), p + ".se.pool", x);
        s = Conv(m, p + ".se.down", s, c / 4, 1, 1, 0);
        s = m.B.Apply1(new Unary(UnaryKind.Relu), p + ".se.relu", s);
        s = Conv(m, p + ".se.up", s, c, 1, 1, 0);
        s = m.B.Apply1(new Unary(UnaryKind.Sigmoid), p + ".se.sigmoid", s);
        x = m.B.Apply1(Mul, p + ".se", x, s);
        x = m.B.Apply1(new Permute(Vec.Of(0, 2, 3, 1)), p + ".pwconv1.0", x);
        x = m.B.Apply1(new Linear(), p + ".pwconv1.1", x,
            m.Param(p + ".pwconv1.1.weight", new(ParamRole.Weight, c), 4 * c, c),
            m.Param(p + ".pwconv1.1.bias", new(ParamRole.Bias), 4 * c));
        x = m.B.Apply1(Gelu, p + ".act.0", x);
        var grn = new List<Value> { x, m.Param(p + ".act.1.gamma", new(ParamRole.Grn), 1, 1, 1, 4 * c) };
        grn.Add(m.Param(p + ".act.1.beta", new(ParamRole.Grn), 1, 1, 1, 4 * c));
        x = m.B.Apply1(new Grn(1e-6), p + ".act.1", grn.ToArray());
        x = m.B.Apply1(new Linear(), p + ".pwconv2.0", x,
            m.Param(p + ".pwconv2.0.weight", new(ParamRole.Weight, 4 * c), c, 4 * c));
        x = m.B.Apply1(new Permute(Vec.Of(0, 3, 1, 2)), p + ".pwconv2.1", x);
        x = BatchNorm(m, p + ".pwconv2.2", x);
        if (o.LayerScaleInit > 0)
        {
            var g = m.Param(p + ".gamma", new(ParamRole.LayerScale), c);
            var g4 = m.B.Apply1(new Reshape(Vec.Of(1, c, 1, 1)), p + ".gamma.view", g);
            x = m.B.Apply1(Mul, p + ".layer_scale", x, g4);
        }
        if (dropPath > 0 && m.Training is null)
        {
            x = m.B.Apply1(new DropPath(dropPath, Mode.Eval, 0), p + ".drop_path", x);
        }
        else if (dropPath > 0 && m.StepInput is { } step)
        {
            x = m.B.Apply1(new DropPath(dropPath, Mode.Train, m.Training!.DropPathSeed + m.Blocks), p
                + ".drop_path", x, step);
        }
        m.Blocks++;
        return m.B.Apply1(Add, p, input, x);
    }

    private static Value Conv(ModelBuilder m, string name, Value x, int cout, int k, int stride, int pad)
    {
        int cin = x.Shape[1];
        var w = m.Param(name + ".weight", new(ParamRole.Weight, cin * k * k), cout, cin, k, k);
        var b = m.Param(name + ".bias", new(ParamRole.Bias), cout);
        return m.B.Apply1(Conv2d.Simple(pad, stride), name, x, w, b);
    }

    private static Value LayerNormCf(ModelBuilder m, string name, Value x)
    {
        int c = x.Shape[1];
        return m.B.Apply1(new LayerNorm(1e-6, NormLayout.ChannelsFirst), name, x,
            m.Param(name + ".weight", new(ParamRole.NormWeight), c),
            m.Param(name + ".bias", new(ParamRole.NormBias), c));
    }

    private static Value BatchNorm(ModelBuilder m, string name, Value x)
    {
        int c = x.Shape[1];
        var outs = m.B.Apply(new BatchNorm(1e-5, 0.1, m.Training is null ? Mode.Eval : Mode.Train), name, x,
            m.Param(name + ".weight", new(ParamRole.NormWeight), c),
            m.Param(name + ".bias", new(ParamRole.NormBias), c),
            m.Param(name + ".running_mean", new(ParamRole.RunningMean), c),
            m.Param(name + ".running_var", new(ParamRole.RunningVar), c));
        m.RunningUpdates.AddRange(outs.Skip(1));
        return outs[0];
    }
}
