using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// Which library runs the GEMM of a gemm or linear node (issue 22), the node's tunable gemm_api: 0 cuBLAS
/// (<c>cublasSgemmStridedBatched</c> in float32, <c>cublasGemmStridedBatchedEx</c> in 16 bits), 1 cuBLASLt
/// (<c>cublasLtMatmul</c>, the node's epilogue kernel unchanged), 2 cuBLASLt with its own epilogue where the node's
/// epilogue is only a bias and / or a ReLU on the output channels as the rows of C (then no epilogue kernel is
/// launched; elsewhere 2 is 1). The default is 0 until measured, or the environment's SWC_GEMM_API (0, 1, 2 or
/// cublas, lt, lt-epilogue), which <c>swc bench</c> and the GPU scripts use for side-by-side timings; a node's own
/// tunable overrides it.
/// </summary>
public static class GemmApi
{
    /// <summary>The tunable's name.</summary>
    public const string Tunable = "gemm_api";

    /// <summary>The environment variable that sets the default.</summary>
    public const string Environment = "SWC_GEMM_API";

    /// <summary>cuBLAS.</summary>
    public const int Cublas = 0;

    /// <summary>cuBLASLt, no epilogue.</summary>
    public const int Lt = 1;

    /// <summary>cuBLASLt with its bias / ReLU epilogue where it fits.</summary>
    public const int LtEpilogue = 2;

    /// <summary>The default of the tunable: <see cref="Environment"/> when set, else cuBLAS.</summary>
    public static int Default => Parse(System.Environment.GetEnvironmentVariable(Environment));

    /// <summary>A value of <see cref="Environment"/> (null or empty: cuBLAS).</summary>
    public static int Parse(string? s) => s?.Trim().ToLowerInvariant() switch
    {
        null or "" or "0" or "cublas" => Cublas,
        "1" or "lt" or "cublaslt" => Lt,
        "2" or "lt-epilogue" => LtEpilogue,
        _ => throw new IrException($"{Environment}={s}: expected 0 (cublas), 1 (lt) or 2 (lt-epilogue)"),
    };

    /// <summary>The node's block (threads of its epilogue kernels) and gemm_api, validated.</summary>
    public static (int Threads, int Api) Tunables(NodeLowering ctx)
    {
        var t = LoweringSupport.Tunables(ctx, new Dictionary<string, int>
        {
            ["block"] = LoweringSupport.DefaultBlock,
            [Tunable] = Default,
        });
        int api = t[Tunable];
        if (api is < Cublas or > LtEpilogue)
        {
            throw new IrException($"{ctx.Node.Describe()}: tunable {Tunable} = {api} must be 0 (cuBLAS), 1 (cuBLASLt) "
                + "or 2 (cuBLASLt with its epilogue)");
        }
        return (t["block"], api);
    }

    /// <summary>
    /// The call for <paramref name="api"/>, with the epilogue cuBLASLt applies (with 2 only): a bias (per row of C,
    /// so only when <paramref name="channelsOnRows"/>) and / or ReLU, when that is the node's whole epilogue
    /// (<paramref name="rest"/>: a residual, GRN or another activation follows). Fused tells whether it took it.
    /// </summary>
    public static (GemmCall Call, bool Fused) Choose(GemmCall call, int api, ArgRef? bias, string act,
        bool channelsOnRows, bool rest = false)
    {
        if (api == Cublas) return (call, false);
        var plain = call with { Lt = new GemmLt() };
        if (api != LtEpilogue || rest || !channelsOnRows || act is not ("none" or "relu")) return (plain, false);
        var e = (bias is null, act == "relu") switch
        {
            (true, false) => GemmEpilogue.Default,
            (true, true) => GemmEpilogue.Relu,
            (false, false) => GemmEpilogue.Bias,
            (false, true) => GemmEpilogue.ReluBias,
        };
        return e == GemmEpilogue.Default ? (plain, false) : (call with { Lt = new GemmLt(e, bias) }, true);
    }

    /// <summary>
    /// Adds a gemm node's call (<paramref name="call"/>, mapped by <see cref="GemmMapping"/>) for
    /// <paramref name="api"/>; true when cuBLASLt's epilogue is the node's whole epilogue (nothing else to launch).
    /// </summary>
    public static bool Add(NodeLowering ctx, GemmCall call, int api)
    {
        var op = (Gemm)ctx.Node.Op;
        var (c, fused) = Choose(call, api, op.HasBias ? ctx.In(op.Slots.Bias) : null, Activation.Word(op.Act),
            channelsOnRows: !op.OutNchw, rest: op.HasGrn || op.HasResidual);
        ctx.Gemm(c);
        return fused;
    }
}
