using ShiftWise.Codegen;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>What every CUDA kernel view-model exposes to its template.</summary>
public abstract class CudaKernelModel : ITemplateFunctions
{
    /// <summary>Sets the members every template uses.</summary>
    /// <param name="name">The kernel's final name (its entry, or the prefix of its entries).</param>
    /// <param name="kind">The kernel kind written in the first line.</param>
    /// <param name="threads">Threads per block (the launch bound).</param>
    /// <param name="largest">Elements of the largest tensor the kernel indexes: above 2^31 indices are 64-bit.</param>
    protected CudaKernelModel(string name, string kind, int threads, long largest)
    {
        Name = name;
        Kind = kind;
        Threads = threads;
        Wide = largest + 2048 > int.MaxValue;
    }

    /// <summary>Kernel name.</summary>
    public string Name { get; }

    /// <summary>Kernel kind (first line of the source).</summary>
    public string Kind { get; }

    /// <summary>Threads per block, a power of two in [32, 1024].</summary>
    public int Threads { get; }

    /// <summary>Warps per block.</summary>
    public int Warps => Threads / 32;

    /// <summary>Whether element indices need 64 bits.</summary>
    public bool Wide { get; }

    /// <summary>The C++ type of element indices: int, or long long when a tensor has 2^31 elements or more.</summary>
    public string IndexType => Wide ? "long long" : "int";

    /// <summary>
    /// The storage type of the kernel's tensors: float32, or bf16 / fp16 (issue 22: 16-bit loads and stores, float32
    /// arithmetic). Templates that support 16 bits read and write through <see cref="Ld"/>, <see cref="Rd"/> and
    /// <see cref="St"/>, declare pointers of type <see cref="T"/> and start with <see cref="Prelude"/>; in float32
    /// these give the text the templates had before, so float32 kernels do not change.
    /// </summary>
    public DType Storage { get; init; } = DType.F32;

    /// <summary>The element type in the source: float, swc_bf16 or swc_fp16.</summary>
    public string T => TypeOf(Storage);

    /// <summary>Types16's definitions for a 16-bit kernel; nothing for float32.</summary>
    public string Prelude => Storage == DType.F32 ? "" : Types16.Prelude + "\n";

    /// <summary>A read-only load of p[i] as float (through the read-only cache in float32).</summary>
    public string Ld(string p, string i) => Storage == DType.F32 ? $"__ldg({p} + {i})" : $"swc_widen({p}[{i}])";

    /// <summary>A plain load of p[i] as float (a buffer the kernel also writes).</summary>
    public string Rd(string p, string i) => Storage == DType.F32 ? $"{p}[{i}]" : $"swc_widen({p}[{i}])";

    /// <summary>The statement storing float v at p[i] (rounded to nearest even in 16 bits), without its ';'.</summary>
    public string St(string p, string i, string v) =>
        Storage == DType.F32 ? $"{p}[{i}] = {v}" : $"{p}[{i}] = swc_round_{Types16.Name(Storage)}({v})";

    /// <inheritdoc/>
    IEnumerable<(string Name, Delegate Function)> ITemplateFunctions.Functions =>
    [
        ("ld", new Func<string, string, string>(Ld)),
        ("rd", new Func<string, string, string>(Rd)),
        ("st", new Func<string, string, string, string>(St)),
    ];

    /// <summary>The element type of <paramref name="storage"/> in kernel sources.</summary>
    public static string TypeOf(DType storage) => storage switch
    {
        DType.F32 => "float",
        DType.BF16 or DType.F16 => "swc_" + Types16.Name(storage),
        _ => throw new ArgumentException($"{storage.Name()} is not a storage type of the CUDA kernels"),
    };
}

/// <summary>Activations a kernel can apply, as the word its template switches on.</summary>
public static class Activation
{
    /// <summary>none, gelu, relu or sigmoid.</summary>
    public static string Word(GemmAct act) => act switch
    {
        GemmAct.None => "none",
        GemmAct.Gelu => "gelu",
        GemmAct.Relu => "relu",
        GemmAct.Sigmoid => "sigmoid",
        _ => throw new ArgumentOutOfRangeException(nameof(act)),
    };

    /// <summary>The word of a unary op.</summary>
    public static string Word(UnaryKind kind) => kind switch
    {
        UnaryKind.Gelu => "gelu",
        UnaryKind.Relu => "relu",
        UnaryKind.Sigmoid => "sigmoid",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>1/√2, the GELU argument scale, as a float literal.</summary>
    public static string InvSqrt2 => Literal.F(Math.Sqrt(0.5));
}

/// <summary>Checks and arithmetic every lowering shares.</summary>
internal static class LoweringSupport
{
    /// <summary>The default threads per block.</summary>
    public const int DefaultBlock = 256;

    /// <summary>
    /// The storage type every input and output of the node shares (float32, bf16 or fp16: the kernels with 16-bit
    /// variants); anything else is refused naming the node.
    /// </summary>
    public static DType Storage(NodeLowering ctx)
    {
        var t = ctx.Node.Outputs.Count > 0 ? ctx.OutType(0).DType : ctx.InType(0).DType;
        var all = Enumerable.Range(0, ctx.Node.Inputs.Count).Select(i => ctx.InType(i))
            .Concat(Enumerable.Range(0, ctx.Node.Outputs.Count).Select(ctx.OutType)).ToArray();
        if (t is not (DType.F32 or DType.BF16 or DType.F16) || all.Any(x => x.DType != t))
        {
            throw new IrException($"{ctx.Node.Describe()}: the CUDA target runs this op on tensors of one type, "
                + $"f32, bf16 or f16, got {string.Join(", ", all.Select(x => x.ToString()))}");
        }
        return t;
    }

    /// <summary>The kernel name's mark of a 16-bit variant: _bf16, _fp16; none for float32.</summary>
    public static string Suffix(DType storage) => storage == DType.F32 ? "" : "_" + Types16.Name(storage);

    /// <summary>Every input and output of the node must be float32: the kernels are written for float.</summary>
    public static void RequireF32(NodeLowering ctx)
    {
        for (int i = 0; i < ctx.Node.Inputs.Count; i++)
        {
            if (ctx.InType(i).DType != DType.F32)
            {
                throw new IrException($"{ctx.Node.Describe()}: the CUDA target runs float32 only, input {i} is "
                    + $"{ctx.InType(i)}");
            }
        }
        for (int i = 0; i < ctx.Node.Outputs.Count; i++)
        {
            if (ctx.OutType(i).DType != DType.F32)
            {
                throw new IrException($"{ctx.Node.Describe()}: the CUDA target runs float32 only, output {i} is "
                    + $"{ctx.OutType(i)}");
            }
        }
    }

    /// <summary>
    /// The node's tunables over <paramref name="defaults"/> (which must hold "block"), with "block" validated.
    /// </summary>
    public static IReadOnlyDictionary<string, int> Tunables(NodeLowering ctx,
        IReadOnlyDictionary<string, int>? defaults = null)
    {
        var t = ctx.Tunables(defaults ?? new Dictionary<string, int> { ["block"] = DefaultBlock });
        int b = t["block"];
        if (b < 32 || b > 1024 || (b & (b - 1)) != 0)
        {
            throw new IrException($"{ctx.Node.Describe()}: tunable block = {b} must be a power of two in [32, 1024]");
        }
        return t;
    }

    /// <summary>Blocks to cover <paramref name="work"/> items at <paramref name="perBlock"/> per block.</summary>
    public static Dim3 Grid(NodeLowering ctx, long work, long perBlock)
    {
        long blocks = Math.Max(1, (work + perBlock - 1) / perBlock);
        if (blocks > int.MaxValue)
        {
            throw new IrException($"{ctx.Node.Describe()}: {work} items need more than 2^31 blocks");
        }
        return new Dim3((int)blocks);
    }

    /// <summary>Shape as a compact tag for kernel prefixes (2x3x5).</summary>
    public static string Tag(Shape s) => s.Rank == 0 ? "scalar" : string.Join("x", s);
}
