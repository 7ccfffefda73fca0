using ShiftWise.Codegen;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>What every CUDA kernel view-model exposes to its template.</summary>
public abstract class CudaKernelModel
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
