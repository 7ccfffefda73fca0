using ShiftWise.IR;

namespace ShiftWise.Runtime.Cpu;

/// <summary>A float32 buffer: a range of an arena or of a tensor's own array.</summary>
public readonly record struct Buf(float[] Array, int Offset, int Length)
{
    /// <summary>The range as a span.</summary>
    public Span<float> Span => Array.AsSpan(Offset, Length);

    /// <summary>A buffer over a whole array.</summary>
    public static Buf Of(float[] a) => new(a, 0, a.Length);
}

/// <summary>
/// A CPU kernel bound to one node's shapes and constant parameters at construction; <see cref="Run"/> does the
/// work for one execution. Inputs that are parameters arrive as buffers too (the executor binds them once).
/// </summary>
public abstract class CpuKernel
{
    /// <summary>Computes the node's outputs from its inputs. Output buffers never alias input buffers.</summary>
    public abstract void Run(Buf[] inputs, Buf[] outputs);

    /// <summary>A short label for per-kernel timing tables.</summary>
    public virtual string Label => GetType().Name;
}

/// <summary>
/// What a kernel factory sees: the node, the types of its inputs, and the values of its parameter inputs.
/// </summary>
public sealed record KernelRequest(Node Node, IReadOnlyList<TensorType> InputTypes, IReadOnlyList<Tensor?> Constants);
