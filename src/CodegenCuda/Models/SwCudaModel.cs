using ShiftWise.Codegen;
using ShiftWise.IR;
using ShiftWise.Passes.Lowering;

namespace ShiftWise.CodegenCuda;

/// <summary>What both CUDA SW kernels know of their layer: the node's shape, channel lists and small kernel.</summary>
public abstract class SwCudaModel : ITemplateFunctions
{
    /// <summary>
    /// Takes the facts of <paramref name="spec"/>; <paramref name="name"/> is the kernel's entry point.
    /// </summary>
    protected SwCudaModel(SwLayerSpec spec, string name)
    {
        Name = name;
        Batch = spec.Input[0];
        Channels = spec.Input[1];
        Height = spec.Input[2];
        Width = spec.Input[3];
        Rep = spec.Rep;
        Ghost = spec.Op.Ghost.Count;
        Small = spec.Op.Shift.Small;
        RepList = string.Join(", ", spec.Op.Rep);
        GhostList = string.Join(", ", spec.Op.Ghost);
    }

    /// <summary>Kernel name (the entry point).</summary>
    public string Name { get; }

    /// <summary>N.</summary>
    public int Batch { get; }

    /// <summary>Input channels C.</summary>
    public int Channels { get; }

    /// <summary>H.</summary>
    public int Height { get; }

    /// <summary>W.</summary>
    public int Width { get; }

    /// <summary>R, rep channels.</summary>
    public int Rep { get; }

    /// <summary>G, ghost channels.</summary>
    public int Ghost { get; }

    /// <summary>k.</summary>
    public int Small { get; }

    /// <summary>Input channel of each rep channel.</summary>
    public string RepList { get; }

    /// <summary>Input channel of each ghost channel.</summary>
    public string GhostList { get; }

    /// <summary>
    /// The storage type of x, y and the layer's parameters: float32, or bf16 / fp16 (issue 22; as
    /// <see cref="CudaKernelModel.Storage"/>: 16-bit loads and stores, float32 arithmetic and shared tiles).
    /// </summary>
    public DType Storage { get; init; } = DType.F32;

    /// <summary>The element type in the source: float, swc_bf16 or swc_fp16.</summary>
    public string T => CudaKernelModel.TypeOf(Storage);

    /// <summary>Whether the kernel stores 16-bit values.</summary>
    public bool Is16 => Storage != DType.F32;

    /// <summary>Types16's definitions for a 16-bit kernel; nothing for float32.</summary>
    public string Prelude => Is16 ? Types16.Prelude + "\n" : "";

    /// <inheritdoc/>
    IEnumerable<(string Name, Delegate Function)> ITemplateFunctions.Functions =>
    [
        ("ld", new Func<string, string, string>((p, i) => CudaKernelModel.Load(Storage, p, i))),
        ("st", new Func<string, string, string, string>((p, i, v) => CudaKernelModel.Store(Storage, p, i, v))),
    ];
}
