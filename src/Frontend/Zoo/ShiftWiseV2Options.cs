using System.Globalization;
using ShiftWise.IR;

namespace ShiftWise.Frontend.Zoo;

/// <summary>
/// The options of ShiftWise_v2 (SPEC 3), named as the original's constructor arguments, plus the input size.
/// Defaults are the original's training configuration (kernel sizes 51,49,47,13,3; ghost ratio 0.23; N_path 2;
/// N_rep 4).
/// </summary>
public sealed record ShiftWiseV2Options
{
    /// <summary>Input image channels.</summary>
    public int InChans { get; init; } = 3;

    /// <summary>Classes of the head.</summary>
    public int NumClasses { get; init; } = 1000;

    /// <summary>Blocks per stage (4 stages).</summary>
    public IReadOnlyList<int> Depths { get; init; } = [3, 3, 18, 3];

    /// <summary>Channels per stage before <see cref="WidthFactor"/>.</summary>
    public IReadOnlyList<int> Dims { get; init; } = [80, 160, 320, 640];

    /// <summary>Multiplies every stage width (int(d · factor), as Python truncates).</summary>
    public double WidthFactor { get; init; } = 1.0;

    /// <summary>Big kernel of each stage, then the small kernel (5 entries).</summary>
    public IReadOnlyList<int> KernelSize { get; init; } = [51, 49, 47, 13, 3];

    /// <summary>Fraction of channels an SW layer passes through untouched.</summary>
    public double GhostRatio { get; init; } = 0.23;

    /// <summary>Parallel small depthwise convs per SW layer.</summary>
    public int NPath { get; init; } = 2;

    /// <summary>Shift replicas per SW layer.</summary>
    public int NRep { get; init; } = 4;

    /// <summary>Whether SW layers have their three BNs.</summary>
    public bool Bn { get; init; } = true;

    /// <summary>Initial layer scale; no layer-scale parameter when ≤ 0.</summary>
    public double LayerScaleInit { get; init; } = 1e-6;

    /// <summary>Maximum stochastic-depth rate (linear over all blocks).</summary>
    public double DropPathRate { get; init; }

    /// <summary>
    /// Total stride of the stem: 4 is the original (two stride-2 convs); 2 gives the second stem conv stride 1, for
    /// small images such as Fashion-MNIST's 28×28 (stage 0 then runs at 14×14).
    /// </summary>
    public int StemStride { get; init; } = 4;

    /// <summary>Batch size of the graph's input.</summary>
    public int Batch { get; init; } = 1;

    /// <summary>Input height.</summary>
    public int Height { get; init; } = 224;

    /// <summary>Input width.</summary>
    public int Width { get; init; } = 224;

    /// <summary>
    /// Backbone mode (issue 23, the original's downstream backbones): the stages whose outputs the network returns,
    /// each through its own channels-first LayerNorm norm{i} (eps 1e-6), NCHW, one output per index in this order,
    /// and no pooling, final norm or head. Null or empty: the classifier.
    /// </summary>
    public IReadOnlyList<int>? OutIndices { get; init; }

    /// <summary>Whether the network is a backbone (<see cref="OutIndices"/> given).</summary>
    public bool IsBackbone => OutIndices is { Count: > 0 };

    /// <summary>Stage widths after the width factor.</summary>
    public int[] StageDims => Dims.Select(d => (int)(d * WidthFactor)).ToArray();

    /// <summary>The small kernel.</summary>
    public int SmallKernel => KernelSize[^1];

    /// <summary>Throws an <see cref="IrException"/> naming the first bad option.</summary>
    public void Validate()
    {
        void Check(bool ok, string option, string what)
        {
            if (!ok) throw new OptionException($"option {option}: {what}");
        }
        Check(InChans >= 1, "--in-chans", $"{InChans} must be >= 1");
        Check(NumClasses >= 1, "--num-classes", $"{NumClasses} must be >= 1");
        Check(Depths.Count == 4 && Depths.All(d => d is >= 0 and <= 1000), "--depths",
            $"needs 4 block counts in [0, 1000], got {L(Depths)}");
        Check(InChans <= MaxDim && NumClasses <= 1 << 20, InChans > MaxDim ? "--in-chans" : "--num-classes",
            $"{(InChans > MaxDim ? InChans : NumClasses)} is beyond what a model can hold here");
        Check(Dims.Count == 4, "--dims", $"needs 4 stage widths, got {L(Dims)}");
        Check(WidthFactor > 0 && WidthFactor <= 64, "--width-factor", $"{F(WidthFactor)} must be in (0, 64]");
        Check(Dims.Count != 4 || Dims.All(d => d <= MaxDim), "--dims", $"stage widths {L(Dims)} must be <= {MaxDim}");
        Check(StageDims.All(d => d >= 2), "--dims",
            $"stage widths {L(StageDims)} (after the width factor) must be >= 2");
        Check(StageDims.All(d => d <= MaxDim), "--dims",
            $"stage widths {L(StageDims)} (after the width factor) must be <= {MaxDim}");
        Check(KernelSize.Count == 5, "--kernel-size",
            $"needs 4 big kernels then the small kernel, got {L(KernelSize)}");
        Check(SmallKernel >= 1 && SmallKernel % 2 == 1, "--kernel-size",
            $"the small kernel {SmallKernel} must be odd: the original op misaligns X for even k (SPEC 8.6)");
        for (int i = 0; i < 4; i++)
        {
            Check(KernelSize[i] >= SmallKernel, "--kernel-size",
                $"big kernel {KernelSize[i]} of stage {i} must be >= the small kernel {SmallKernel}");
        }
        Check(GhostRatio is >= 0 and < 1, "--ghost-ratio", $"{F(GhostRatio)} must be in [0, 1)");
        foreach (var d in StageDims)
        {
            int rep = Tables.SwTables.RepCount(d, GhostRatio);
            Check(rep >= 2, "--ghost-ratio",
                $"{F(GhostRatio)} leaves {rep} rep channels of {d}; an SW layer needs >= 2");
        }
        Check(NPath >= 1, "--n-path", $"{NPath} must be >= 1");
        Check(NRep >= 1, "--n-rep", $"{NRep} must be >= 1");
        Check(DropPathRate is >= 0 and < 1, "--drop-path", $"{F(DropPathRate)} must be in [0, 1)");
        Check(Batch >= 1, "--batch", $"{Batch} must be >= 1");
        Check(StemStride is 2 or 4, "--stem-stride", $"{StemStride} must be 4 (the original stem) or 2");
        Check(Height >= 1 && Width >= 1, "--image-size", $"{Height}x{Width} must be at least 1x1");
        Check(Height <= MaxDim && Width <= MaxDim, "--image-size",
            $"{Height}x{Width} must be at most {MaxDim}x{MaxDim}");
        Check(Batch <= 1 << 20, "--batch", $"{Batch} must be <= {1 << 20}");
        Check(KernelSize.Count != 5 || KernelSize.All(k => k <= 1023), "--kernel-size",
            $"kernels {L(KernelSize)} must be <= 1023");
        Check(OutIndices is null || (OutIndices.All(i => i is >= 0 and <= 3) && OutIndices.Distinct().Count()
            == OutIndices.Count && OutIndices.SequenceEqual(OutIndices.Order())), "--features",
            $"{L(OutIndices ?? [])} must be distinct stage indices 0 to 3 in increasing order");
        Check(NPath <= 64 && NRep <= 64, NPath > 64 ? "--n-path" : "--n-rep", $"{Math.Max(NPath, NRep)} must be <= 64");
    }

    /// <summary>The largest channel count or image side accepted (sizes beyond it are typos, not models).</summary>
    public const int MaxDim = 1 << 16;

    private static string L(IEnumerable<int> v) => "[" + string.Join(",", v) + "]";

    private static string F(double v) => v.ToString(CultureInfo.InvariantCulture);

    /// <summary>The presets of the original (ShiftWise_v2_tiny/small/base/large) with the training defaults.</summary>
    public static ShiftWiseV2Options? Preset(string name) => name switch
    {
        "sw-tiny" => new ShiftWiseV2Options(),
        "sw-small" => new ShiftWiseV2Options { Depths = [3, 3, 27, 3], Dims = [96, 192, 384, 768] },
        "sw-base" => new ShiftWiseV2Options { Depths = [3, 3, 27, 3], Dims = [128, 256, 512, 1024] },
        "sw-large" => new ShiftWiseV2Options { Depths = [3, 3, 27, 3], Dims = [192, 384, 768, 1536] },
        "sw-v2" => new ShiftWiseV2Options(),
        "sw-fmnist" => FashionMnist,
        _ => null,
    };

    /// <summary>Names accepted by <see cref="Preset"/>.</summary>
    public static IReadOnlyList<string> PresetNames { get; } =
        ["sw-tiny", "sw-small", "sw-base", "sw-large", "sw-v2", "sw-fmnist"];

    /// <summary>
    /// sw-fmnist: a small ShiftWise_v2 for 28×28 grey images (Fashion-MNIST): the original stem (stride 4, so stage 0
    /// sees 7×7; stride 2 at widths 16–128 costs 1.3× the time for no better accuracy with the sample recipe), one
    /// block per stage, widths 24–192, big kernels 7, 5, 3, 3 (each covers its stage's plane), small kernel 3, layer
    /// scale 0.1 (1e-6 leaves the blocks near identity for most of a short schedule), 10 classes.
    /// </summary>
    public static ShiftWiseV2Options FashionMnist { get; } = new()
    {
        InChans = 1, NumClasses = 10, Height = 28, Width = 28, StemStride = 4, Depths = [1, 1, 1, 1],
        Dims = [24, 48, 96, 192], KernelSize = [7, 5, 3, 3, 3], LayerScaleInit = 0.1,
    };
}
