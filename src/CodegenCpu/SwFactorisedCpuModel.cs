using ShiftWise.Passes.Lowering;

namespace ShiftWise.CodegenCpu;

/// <summary>
/// Index arithmetic and tables of the CPU factorised kernel: per rep channel, the kept sub-kernels' k×k convs of
/// the channel (padding k−1, the (H+2e)×(W+2e) map X) are each added into one accumulator plane at their 2·N_rep
/// shifted positions and identity picks, scaled by the path scales. The shift tables are baked into the class.
/// </summary>
public sealed class SwFactorisedCpuModel
{
    /// <summary>Builds the model of a spec.</summary>
    public SwFactorisedCpuModel(SwLayerSpec spec)
    {
        var s = spec.Op.Shift;
        var subs = spec.Op.Subs;
        Name = spec.NameAtBatch1 + "_f";
        ClassName = "F_" + spec.NameAtBatch1;
        Height = spec.Input[2];
        Width = spec.Input[3];
        Small = s.Small;
        Extra = s.Extra;
        Pad = s.Small - 1;
        NRep = s.NRep;
        Rep = s.Rep;
        InHeight = Height + 2 * Extra;
        InWidth = Width + 2 * Extra;
        MapPitch = (InWidth + 7) / 8 * 8;
        PadPitch = MapPitch + 2 * Pad + 8;
        PadRows = Height + 2 * Pad;
        var slot = spec.KeptSlots();
        SubStart = string.Join(", ", spec.SubStart());
        ShiftsH = string.Join(", ", spec.KeptShifts(vertical: false));
        ShiftsV = string.Join(", ", spec.KeptShifts(vertical: true));
        Identity = string.Join(", ", Enumerable.Range(0, Rep).SelectMany(o => Enumerable.Range(0, s.NRep)
            .Select(g => slot.TryGetValue(s.Identity(o, g), out int i) ? i : -1)));
    }

    /// <summary>Kernel name.</summary>
    public string Name { get; }

    /// <summary>Generated class name.</summary>
    public string ClassName { get; }

    /// <summary>Plane height.</summary>
    public int Height { get; }

    /// <summary>Plane width.</summary>
    public int Width { get; }

    /// <summary>k.</summary>
    public int Small { get; }

    /// <summary>e = (k−1) − ⌊k/2⌋.</summary>
    public int Extra { get; }

    /// <summary>p = k−1, the small conv's padding.</summary>
    public int Pad { get; }

    /// <summary>N_rep.</summary>
    public int NRep { get; }

    /// <summary>R.</summary>
    public int Rep { get; }

    /// <summary>H + 2e.</summary>
    public int InHeight { get; }

    /// <summary>W + 2e.</summary>
    public int InWidth { get; }

    /// <summary>Row pitch of X, whole vectors.</summary>
    public int MapPitch { get; }

    /// <summary>Row pitch of the padded input.</summary>
    public int PadPitch { get; }

    /// <summary>Rows of the padded input.</summary>
    public int PadRows { get; }

    /// <summary>Per rep channel, the first kept sub-kernel (R + 1 entries).</summary>
    public string SubStart { get; }

    /// <summary>Per kept sub-kernel and replica, the horizontal shift.</summary>
    public string ShiftsH { get; }

    /// <summary>Per kept sub-kernel and replica, the vertical shift.</summary>
    public string ShiftsV { get; }

    /// <summary>Per rep channel and replica, the kept index of the identity pick or −1 (pruned).</summary>
    public string Identity { get; }

    /// <summary>Taps of the small kernel as 0..k−1.</summary>
    public int[] Taps => Enumerable.Range(0, Small).ToArray();

    /// <summary>Scratch floats per worker: padded input, X, accumulator.</summary>
    public int ScratchFloats => PadRows * PadPitch + InHeight * MapPitch + Height * MapPitch + 16;
}
