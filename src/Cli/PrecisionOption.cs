using System.CommandLine;
using ShiftWise.IR;

namespace ShiftWise.Cli;

/// <summary>--precision fp32|tf32|bf16|fp16, as every command that compiles takes it (issue 22).</summary>
public static class PrecisionOption
{
    /// <summary>A new --precision option (each command owns its option objects).</summary>
    public static Option<string> Create(string? extra = null) => new("--precision")
    {
        Description = "Storage and GEMM arithmetic: fp32 (default), tf32 (fp32 storage, TF32 tensor-core GEMMs), "
            + "bf16 or fp16 (activations and weights stored in 16 bits, fp32 accumulation; cuda and reference)."
            + (extra is null ? "" : " " + extra),
        DefaultValueFactory = _ => "fp32",
    };

    /// <summary>The parsed value; anything else is an <see cref="OptionException"/> naming the choices.</summary>
    public static Precision Read(ParseResult r, Option<string> o) => Parse(r.GetValue(o));

    /// <summary>A --precision value; anything else is an <see cref="OptionException"/> naming the choices.</summary>
    public static Precision Parse(string? word) => Precisions.TryParse(word, out var p) ? p
        : throw new OptionException($"option --precision: '{word}' is not one of "
            + string.Join(", ", Precisions.Names));
}
