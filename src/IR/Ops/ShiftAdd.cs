namespace ShiftWise.IR.Ops;

/// <summary>
/// The multi-replica shift-add of SPEC 1.5 (addshift_kernel_vmp): input X (N, R·n, H+2e, W+2e), the output of the
/// small depthwise conv with padding k−1; outputs Y_h, Y_v, Y_i, each (N, R, H, W).
/// Tables as in the original: <see cref="PadHV"/> is (R·n) rows × 2G columns (horizontal shifts of replicas 0..G−1,
/// then vertical), <see cref="Ident"/> is R rows × G columns of global sub-channel indices.
/// </summary>
public sealed record ShiftAdd(int Big, int Small, int NRep, Vec<int> PadHV, Vec<int> Ident) : Op
{
    /// <inheritdoc/>
    public override string Name => "shift_add";

    /// <summary>n = ⌈B/k⌉ sub-kernels per rep channel.</summary>
    public int N => (Big + Small - 1) / Small;

    /// <summary>e = (k−1) − ⌊k/2⌋, the extra border of X on each side.</summary>
    public int Extra => Small - 1 - Small / 2;

    /// <summary>R, the number of rep channels.</summary>
    public int Rep => NRep > 0 ? Ident.Count / NRep : 0;

    /// <summary>ρ_m = ⌊B/2⌋ − m·k − (k−1), the shift of block m.</summary>
    public int Rho(int m) => Big / 2 - m * Small - (Small - 1);

    /// <summary>Horizontal shift of sub-channel t in replica g.</summary>
    public int ShiftH(int t, int g) => PadHV[t * 2 * NRep + g];

    /// <summary>Vertical shift of sub-channel t in replica g.</summary>
    public int ShiftV(int t, int g) => PadHV[t * 2 * NRep + NRep + g];

    /// <summary>The sub-channel that replica g's identity path takes for rep channel o.</summary>
    public int Identity(int o, int g) => Ident[o * NRep + g];

    /// <inheritdoc/>
    public override IReadOnlyList<string> OutputSuffixes => Suffixes;

    private static readonly string[] Suffixes = [".h", ".v", ".i"];

    /// <inheritdoc/>
    public override TensorType[] Infer(IReadOnlyList<TensorType> inputs)
    {
        Arity(inputs, 1, 1);
        var d = SameFloat(inputs);
        Check(Small >= 1 && Small % 2 == 1, $"small kernel {Small} must be odd and >= 1 (SPEC 8.6)");
        Check(Big >= Small, $"big kernel {Big} must be >= small kernel {Small}");
        Check(NRep >= 1, $"nrep {NRep} must be >= 1");
        Check(Ident.Count % NRep == 0 && Ident.Count > 0, $"idx_identit has {Ident.Count} entries, not R x {NRep}");
        int r = Rep, n = N;
        Check(PadHV.Count == r * n * 2 * NRep,
            $"pad_hv has {PadHV.Count} entries, expected R*n x 2G = {r}*{n} x {2 * NRep}");
        var rho = Enumerable.Range(0, n).Select(Rho).ToHashSet();
        for (int i = 0; i < PadHV.Count; i++)
        {
            Check(rho.Contains(PadHV[i]),
                $"pad_hv[{i / (2 * NRep)}][{i % (2 * NRep)}] = {PadHV[i]} is not a block shift of B={Big}, k={Small}");
        }
        for (int o = 0; o < r; o++)
        {
            for (int g = 0; g < NRep; g++)
            {
                int t = Identity(o, g);
                Check(t >= o * n && t < o * n + n,
                    $"idx_identit[{o}][{g}] = {t} is not a sub-channel of rep channel {o} ([{o * n}, {o * n + n}))");
            }
        }
        Rank(inputs, 0, 4, "x");
        var x = inputs[0].Shape;
        Check(x[1] == r * n, $"x has {x[1]} channels, the tables need R*n = {r * n}");
        int h = x[2] - 2 * Extra, w = x[3] - 2 * Extra;
        Check(h >= 1 && w >= 1, $"x spatial size {x[2]}x{x[3]} is smaller than the 2e = {2 * Extra} border");
        var t1 = TensorType.Of(d, x[0], r, h, w);
        return [t1, t1, t1];
    }

    /// <inheritdoc/>
    public override void WriteAttrs(AttrWriter w)
    {
        w.Int("big", Big);
        w.Int("small", Small);
        w.Int("nrep", NRep);
        w.Table("pad_hv", PadHV, 2 * NRep);
        w.Table("idx_identit", Ident, NRep);
    }

    /// <summary>Reads the attributes.</summary>
    public static ShiftAdd Read(AttrReader r)
    {
        var op = new ShiftAdd(r.Int32("big"), r.Int32("small"), r.Int32("nrep"), r.Table("pad_hv", out int c1),
            r.Table("idx_identit", out int c2));
        if (op.PadHV.Count > 0 && c1 != 2 * op.NRep || op.Ident.Count > 0 && c2 != op.NRep)
        {
            throw new IrException($"shift_add tables need rows of {2 * op.NRep} (pad_hv) and {op.NRep} (idx_identit)"
                + $" entries, got {c1} and {c2}");
        }
        return op;
    }
}
