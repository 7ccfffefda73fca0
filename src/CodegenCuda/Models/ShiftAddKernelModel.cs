using System.Globalization;
using System.Text;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// What the shift_add kernels share, the forward <see cref="ShiftAddModel"/> and its adjoint
/// <see cref="ShiftAddGradModel"/>: the geometry of X (N, R·n, H+2e, W+2e) and of the (N, R, H, W) outputs, and the
/// tables they bake. Every (sub-channel t, replica g) is the block index m of its horizontal and vertical shifts
/// ρ_m = ρ_0 − m·k, row-major t × G; every (rep channel o, replica g) is the local sub-channel j (t = o·n + j) its
/// identity path reads, row-major o × G. Entries are bytes when n ≤ 256, else 16 bits; the tables sit in constant
/// memory while their total size is at most <see cref="MaxConstantBytes"/>, in global memory above (the 64 KiB
/// constant bank cannot hold the large layers' tables). Table text wraps every 32 entries.
/// </summary>
public abstract class ShiftAddKernelModel : CudaKernelModel
{
    /// <summary>The largest total size of the tables kept in constant memory.</summary>
    public const int MaxConstantBytes = 32 * 1024;

    private const int PerLine = 32;

    /// <summary>
    /// Reads the geometry of <paramref name="op"/> on <paramref name="x"/> and builds the tables a kernel reads: the
    /// shift paths <paramref name="h"/> and <paramref name="v"/>, the <paramref name="identity"/> path.
    /// </summary>
    protected ShiftAddKernelModel(string name, string kind, int threads, ShiftAdd op, Shape x,
        KernelSignature signature, bool h, bool v, bool identity)
        : base(name, kind, threads, x.Elements)
    {
        Parameters = signature.Declarations;
        (Batch, SubChannels, InHeight, InWidth) = (x[0], x[1], x[2], x[3]);
        (Extra, N, Rep, NRep, Small) = (op.Extra, op.N, op.Rep, op.NRep, op.Small);
        if (SubChannels != Rep * N) throw new ArgumentException($"x has {SubChannels} channels, not R·n = {Rep * N}");
        Height = InHeight - 2 * Extra;
        Width = InWidth - 2 * Extra;
        Rho0 = op.Rho(0);
        int rn = Rep * N, nrep = NRep, rho0 = Rho0, n = N;
        bool narrow = N <= 256;
        TableType = narrow ? "unsigned char" : "unsigned short";
        int Block(int shift) => (rho0 - shift) / op.Small;
        IEnumerable<int> Pairs(int rows, Func<int, int, int> f) =>
            Enumerable.Range(0, rows).SelectMany(t => Enumerable.Range(0, nrep).Select(g => f(t, g)));
        BlocksH = h ? Table(Pairs(rn, (t, g) => Block(op.ShiftH(t, g)))) : "";
        BlocksV = v ? Table(Pairs(rn, (t, g) => Block(op.ShiftV(t, g)))) : "";
        IdentityJ = identity ? Table(Pairs(Rep, (o, g) => op.Identity(o, g) - o * n)) : "";
        long entries = ((h ? 1L : 0) + (v ? 1L : 0)) * rn * nrep + (identity ? (long)Rep * nrep : 0);
        TableBytes = entries * (narrow ? 1 : 2);
        Space = TableBytes <= MaxConstantBytes ? "__constant__" : "__device__ const";
    }

    /// <summary>The entry's parameter list.</summary>
    public string Parameters { get; }

    /// <summary>N.</summary>
    public int Batch { get; }

    /// <summary>R·n, the channels of X.</summary>
    public int SubChannels { get; }

    /// <summary>Rows of X (H + 2e).</summary>
    public int InHeight { get; }

    /// <summary>Columns of X (W + 2e).</summary>
    public int InWidth { get; }

    /// <summary>Rows of the outputs.</summary>
    public int Height { get; }

    /// <summary>Columns of the outputs.</summary>
    public int Width { get; }

    /// <summary>e, the extra border of X.</summary>
    public int Extra { get; }

    /// <summary>n, the sub-kernels per rep channel.</summary>
    public int N { get; }

    /// <summary>R, the rep channels.</summary>
    public int Rep { get; }

    /// <summary>G, the replicas.</summary>
    public int NRep { get; }

    /// <summary>k, the small kernel (the step between block shifts).</summary>
    public int Small { get; }

    /// <summary>ρ_0, the shift of block 0 (the largest).</summary>
    public int Rho0 { get; }

    /// <summary>−ρ_0 (the templates write it in parentheses).</summary>
    public int MinusRho0 => -Rho0;

    /// <summary>The C++ element type of the tables (unsigned char, or unsigned short when n &gt; 256).</summary>
    public string TableType { get; }

    /// <summary>Where the tables live: <c>__constant__</c>, or <c>__device__ const</c> above 32 KiB.</summary>
    public string Space { get; }

    /// <summary>The total size in bytes of the tables the kernel declares.</summary>
    public long TableBytes { get; }

    /// <summary>Block index of the horizontal shift of (t, g), row-major t × G, wrapped ("" when not read).</summary>
    public string BlocksH { get; }

    /// <summary>Block index of the vertical shift of (t, g), row-major t × G, wrapped ("" when not read).</summary>
    public string BlocksV { get; }

    /// <summary>
    /// The local sub-channel j (t = o·n + j) the identity path of (o, g) reads, row-major o × G, wrapped ("" when not
    /// read).
    /// </summary>
    public string IdentityJ { get; }

    /// <summary>Plane of X.</summary>
    public long InPlane => (long)InHeight * InWidth;

    /// <summary>Plane of an output.</summary>
    public long OutPlane => (long)Height * Width;

    private static string Table(IEnumerable<int> values)
    {
        var sb = new StringBuilder();
        int i = 0;
        foreach (int v in values)
        {
            if (i > 0) sb.Append(i % PerLine == 0 ? ",\n    " : ", ");
            sb.Append(v.ToString(CultureInfo.InvariantCulture));
            i++;
        }
        return sb.ToString();
    }
}
