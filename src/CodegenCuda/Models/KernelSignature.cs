using ShiftWise.IR;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// One pointer parameter of a kernel entry: its identifier in the source and whether it is read-only.
/// </summary>
/// <param name="Name">A fixed identifier chosen by the lowering (y, x, bias, ...), never a value name.</param>
/// <param name="IsConst">Read-only (<c>const float* __restrict__</c>) rather than written.</param>
/// <param name="Type">The element type in the source: float, or swc_bf16 / swc_fp16 (Types16).</param>
public sealed record KernelParam(string Name, bool IsConst, string Type = "float")
{
    /// <summary>The declaration as it appears in the entry's parameter list.</summary>
    public string Declaration => (IsConst ? "const " : "") + Type + "* __restrict__ " + Name;
}

/// <summary>
/// The parameter list of one kernel entry and the launch arguments that match it, built together so that the two
/// cannot disagree in order or count.
/// </summary>
public sealed class KernelSignature
{
    private readonly List<KernelParam> _params = [];
    private readonly List<ArgRef> _args = [];

    /// <summary>Adds a written pointer (to float, or to the 16-bit <paramref name="storage"/>).</summary>
    public KernelSignature Out(string name, ArgRef arg, DType storage = DType.F32) =>
        Add(name, false, arg, CudaKernelModel.TypeOf(storage));

    /// <summary>Adds a read-only pointer (to float, or to the 16-bit <paramref name="storage"/>).</summary>
    public KernelSignature In(string name, ArgRef arg, DType storage = DType.F32) =>
        Add(name, true, arg, CudaKernelModel.TypeOf(storage));

    /// <summary>The parameters in order.</summary>
    public IReadOnlyList<KernelParam> Params => _params;

    /// <summary>The launch arguments in the same order.</summary>
    public IReadOnlyList<ArgRef> Args => _args;

    /// <summary>The whole parameter list as C++ text ("float* __restrict__ y, const float* __restrict__ x").</summary>
    public string Declarations => string.Join(", ", _params.Select(p => p.Declaration));

    private KernelSignature Add(string name, bool isConst, ArgRef arg, string type)
    {
        if (name.Length == 0 || !name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '_'))
        {
            throw new IrException($"kernel parameter name '{name}' is not a lower-case identifier");
        }
        if (_params.Any(p => p.Name == name)) throw new IrException($"kernel parameter '{name}' is declared twice");
        _params.Add(new KernelParam(name, isConst, type));
        _args.Add(arg);
        return this;
    }
}
