using System.Globalization;
using System.Text;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// The forward of the SW shift-add (<see cref="ShiftAdd"/>, SPEC 1.5) as the gather of its equivalent formula: one
/// thread per output position (b, o, y, x) writes Y_h, Y_v and Y_i there, each the sum over the replicas g (outer)
/// and the n sub-channels j of rep channel o (inner) of the input elements its shifts select, clipped along the
/// shifted axis only. No atomics and no element written twice: the sums run in a fixed order. The adjoint of
/// <see cref="ShiftAddGradModel"/>. Every (sub-channel, replica) is baked as the block index m of its shift
/// ρ_m = ⌊B/2⌋ − (k−1) − m·k (a byte when n ≤ 256, else 16 bits), the identity path as the local sub-channel each
/// (rep channel, replica) picks; the tables sit in constant memory up to <see cref="MaxConstantBytes"/>, in global
/// memory above (the 64 KiB constant bank cannot hold the large layers' tables).
/// </summary>
public sealed class ShiftAddModel : CudaKernelModel
{
    /// <summary>The largest total size of the tables kept in constant memory.</summary>
    public const int MaxConstantBytes = 32 * 1024;

    private const int PerLine = 32;

    /// <summary>Builds the model for input <paramref name="x"/> (N, R·n, H+2e, W+2e).</summary>
    public ShiftAddModel(string name, int threads, ShiftAdd op, Shape x, KernelSignature signature)
        : base(name, "shift_add", threads, x.Elements)
    {
        Parameters = signature.Declarations;
        (Batch, SubChannels, InHeight, InWidth) = (x[0], x[1], x[2], x[3]);
        (Extra, N, Rep, NRep, Small) = (op.Extra, op.N, op.Rep, op.NRep, op.Small);
        if (SubChannels != Rep * N) throw new ArgumentException($"x has {SubChannels} channels, not R·n = {Rep * N}");
        Height = InHeight - 2 * Extra;
        Width = InWidth - 2 * Extra;
        Rho0 = op.Rho(0);
        int rn = Rep * N;
        bool narrow = N <= 256;
        TableType = narrow ? "unsigned char" : "unsigned short";
        long bytes = ((long)rn * NRep * 2 + (long)Rep * NRep) * (narrow ? 1 : 2);
        Space = bytes <= MaxConstantBytes ? "__constant__" : "__device__ const";
        // the block index m of every shift: ρ_m = ρ_0 − m·k
        int Block(int shift) => (Rho0 - shift) / Small;
        BlocksH = Table(Enumerable.Range(0, rn).SelectMany(t => Enumerable.Range(0, NRep)
            .Select(g => Block(op.ShiftH(t, g)))));
        BlocksV = Table(Enumerable.Range(0, rn).SelectMany(t => Enumerable.Range(0, NRep)
            .Select(g => Block(op.ShiftV(t, g)))));
        IdentityJ = Table(Enumerable.Range(0, Rep).SelectMany(o => Enumerable.Range(0, NRep)
            .Select(g => op.Identity(o, g) - o * N)));
    }

    /// <summary>The entry's parameter list (fixed identifiers: yh, yv, yi, then x).</summary>
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

    /// <summary>−ρ_0 (the template writes it in parentheses: a shift's column is x − ρ_0 + m·k).</summary>
    public int MinusRho0 => -Rho0;

    /// <summary>The C++ element type of the tables (unsigned char, or unsigned short when n &gt; 256).</summary>
    public string TableType { get; }

    /// <summary>Where the tables live: <c>__constant__</c>, or <c>__device__ const</c> when they are too large.</summary>
    public string Space { get; }

    /// <summary>Block index of the horizontal shift of (t, g), row-major t × G, wrapped lines.</summary>
    public string BlocksH { get; }

    /// <summary>Block index of the vertical shift of (t, g), row-major t × G, wrapped lines.</summary>
    public string BlocksV { get; }

    /// <summary>The local sub-channel j (t = o·n + j) the identity path of (o, g) reads, row-major o × G.</summary>
    public string IdentityJ { get; }

    /// <summary>Threads in all: one per output position.</summary>
    public long Work => (long)Batch * Rep * Height * Width;

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
