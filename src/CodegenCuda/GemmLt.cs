namespace ShiftWise.CodegenCuda;

/// <summary>
/// What cuBLASLt applies to a GEMM's result before it is stored (its <c>cublasLtEpilogue_t</c>), in the terms of the
/// plan. Only the epilogues that match our own kernels exactly in float32 are here: cuBLASLt's GELU is the tanh
/// approximation (PyTorch uses it only for gelu(approximate='tanh'), pytorch/pytorch#104061), our gelu is the erf
/// form, so a gelu node keeps its own epilogue kernel.
/// </summary>
public enum GemmEpilogue
{
    /// <summary>CUBLASLT_EPILOGUE_DEFAULT: the product, scaled, nothing else.</summary>
    Default,

    /// <summary>CUBLASLT_EPILOGUE_RELU: max(x, 0).</summary>
    Relu,

    /// <summary>CUBLASLT_EPILOGUE_BIAS: x + bias[row], one bias per row of C, the same for every batch.</summary>
    Bias,

    /// <summary>CUBLASLT_EPILOGUE_RELU_BIAS: max(x + bias[row], 0).</summary>
    ReluBias,
}

/// <summary>
/// A <see cref="GemmCall"/> that runs through <c>cublasLtMatmul</c> (issue 22) instead of cuBLAS: the same product in
/// the same layout, plus an epilogue that replaces the node's own pointwise kernel where it fits.
/// </summary>
/// <param name="Epilogue">The epilogue.</param>
/// <param name="Bias">The bias (M elements of the call's storage type) for the bias epilogues, else null.</param>
public sealed record GemmLt(GemmEpilogue Epilogue = GemmEpilogue.Default, ArgRef? Bias = null)
{
    /// <summary>Whether the epilogue reads <see cref="Bias"/>.</summary>
    public bool HasBias => Epilogue is GemmEpilogue.Bias or GemmEpilogue.ReluBias;
}
