using ShiftWise.Passes;

namespace ShiftWise.CodegenCuda;

/// <summary>Where a pointer argument of a launch or a GEMM points.</summary>
public enum ArgKind
{
    /// <summary>
    /// An activation of the graph (a graph input, or a value that lives in the arena; aliases resolved by the runtime).
    /// </summary>
    Value,
    /// <summary>A parameter of the graph, uploaded once.</summary>
    Param,
    /// <summary>A tensor computed once from parameters at bind time (<see cref="DerivedTensor"/>).</summary>
    Derived,
    /// <summary>A temporary buffer of the plan (<see cref="ScratchBuffer"/>), valid during one step.</summary>
    Scratch,
}

/// <summary>A pointer argument: a named buffer plus an offset in elements of the buffer's type.</summary>
public sealed record ArgRef(ArgKind Kind, string Name, long Offset = 0)
{
    /// <summary>Short form for plan.json and messages: value:%x, param:@w, derived:..., scratch:....</summary>
    public override string ToString() => $"{Kind.ToString().ToLowerInvariant()}:{Name}"
        + (Offset != 0 ? $"+{Offset}" : "");
}

/// <summary>A CUDA launch dimension.</summary>
public sealed record Dim3(int X, int Y = 1, int Z = 1)
{
    /// <summary>X·Y·Z.</summary>
    public long Count => (long)X * Y * Z;

    /// <inheritdoc/>
    public override string ToString() => $"[{X},{Y},{Z}]";
}

/// <summary>One rendered CUDA source file: its kernel entry points (extern "C", so names are not mangled).</summary>
public sealed record CudaKernelSource(string Name, string Kind, string Source, IReadOnlyList<string> Entries)
{
    /// <summary>The file name under kernels/.</summary>
    public string FileName => Name + ".cu";
}

/// <summary>A step of a plan, produced for graph node <see cref="Node"/>.</summary>
public abstract record PlanStep(string Node);

/// <summary>A kernel launch. Every argument is a pointer (all sizes are baked into the kernel).</summary>
public sealed record KernelLaunch(string Node, string Kernel, string Entry, Dim3 Grid, Dim3 Block, int SharedBytes,
    IReadOnlyList<ArgRef> Args) : PlanStep(Node);

/// <summary>
/// A strided-batched GEMM in cuBLAS's column-major convention: for each batch i,
/// C_i = Alpha·op(A_i)·op(B_i) + Beta·C_i with op(A_i) M×K, op(B_i) K×N, C_i M×N (leading dimension Ldc), and
/// X_i = X + i·StrideX, leading dimensions, strides and offsets counted in elements of <see cref="Storage"/>. Run by
/// cuBLAS on a GPU (SGEMM in float32, the Ex call with float32 compute in 16 bits) and by a plain reference GEMM in
/// emulation.
/// </summary>
public sealed record GemmCall(string Node, bool TransA, bool TransB, int M, int N, int K,
    ArgRef A, int Lda, long StrideA, ArgRef B, int Ldb, long StrideB, ArgRef C, int Ldc, long StrideC,
    int Batch, float Alpha, float Beta) : PlanStep(Node)
{
    /// <summary>
    /// The element type of A, B and C: float32, or bf16 / fp16 (issue 22: the products are summed in float32, Alpha
    /// and Beta stay float, C is rounded once to the type).
    /// </summary>
    public ShiftWise.IR.DType Storage { get; init; } = ShiftWise.IR.DType.F32;

    /// <summary>
    /// Null: the call runs through cuBLAS (SGEMM or the Ex call); otherwise through <c>cublasLtMatmul</c> with this
    /// epilogue (<see cref="GemmLt"/>; tunable gemm_api).
    /// </summary>
    public GemmLt? Lt { get; init; }
}

/// <summary>A tensor the runtime computes once from the graph's parameters (e.g. the SW cross bands).</summary>
/// <param name="Name">Unique name in the plan.</param>
/// <param name="Recipe">What to compute (see <see cref="Derived"/>).</param>
/// <param name="Node">The node whose parameters it reads.</param>
/// <param name="Floats">Its size.</param>
public sealed record DerivedTensor(string Name, string Recipe, string Node, long Floats);

/// <summary>A temporary buffer of the plan.</summary>
public sealed record ScratchBuffer(string Name, long Floats);

/// <summary>
/// A compiled CUDA plan: the kernel sources, the steps in order, the derived tensors, the scratch buffers and the
/// graph's memory plan (arena offsets of every value; reshapes are aliases).
/// </summary>
public sealed record CudaPlan(string Graph, string Arch, IReadOnlyList<CudaKernelSource> Kernels,
    IReadOnlyList<PlanStep> Steps, IReadOnlyList<DerivedTensor> Derived, IReadOnlyList<ScratchBuffer> Scratch,
    MemoryPlan Memory)
{
    /// <summary>The graph's inputs (name and type), each in its own buffer.</summary>
    public IReadOnlyList<ShiftWise.IR.ValueDecl> Inputs { get; init; } = [];

    /// <summary>
    /// Values that are another value under another shape (reshapes, eval-mode drop-path): the memory plan's aliases,
    /// plus views of graph inputs and parameters, which the memory plan gives a slot but no step ever writes.
    /// Runtimes resolve a value through these (recursively) before looking up its arena slot.
    /// </summary>
    public IReadOnlyDictionary<string, string> Views { get; init; } = new Dictionary<string, string>();

    /// <summary>The graph's outputs (values in the arena, or views of them).</summary>
    public IReadOnlyList<string> Outputs { get; init; } = [];

    /// <summary>The source that holds a kernel.</summary>
    public CudaKernelSource Kernel(string name) => Kernels.First(k => k.Name == name);

    /// <summary>
    /// The value that holds <paramref name="v"/>'s data: <paramref name="v"/> followed through <see cref="Views"/>.
    /// </summary>
    public string Root(string v)
    {
        for (int guard = 0; Views.TryGetValue(v, out var of); guard++)
        {
            if (guard > 10_000) throw new ShiftWise.IR.IrException($"the plan's views of %{v} form a cycle");
            v = of;
        }
        return v;
    }

    /// <summary>
    /// Where each scratch buffer starts in one scratch allocation (in floats, each on a 64-float boundary), and the
    /// allocation's size: the layout every runtime of a plan uses.
    /// </summary>
    public (IReadOnlyDictionary<string, long> Offsets, long Floats) ScratchLayout()
    {
        var at = new Dictionary<string, long>(StringComparer.Ordinal);
        long total = 0;
        foreach (var s in Scratch)
        {
            at[s.Name] = total;
            total += (s.Floats + 63) / 64 * 64;
        }
        return (at, total);
    }
}
