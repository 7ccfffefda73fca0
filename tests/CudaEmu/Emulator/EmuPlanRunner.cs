using System.Diagnostics;
using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Runtime.Cuda;

namespace ShiftWise.CudaEmu;

/// <summary>
/// Runs a <see cref="CudaPlan"/> in emulation: kernels through <see cref="CudaEmulator"/>, GEMM calls as the argument
/// list the runtime passes to cuBLAS (<see cref="SgemmStridedBatchedArgs"/>) run by <see cref="CublasInterpreter"/>
/// (cuBLAS's documented semantics, not cuBLAS), every buffer guarded. After each step it checks the guards of every
/// buffer, that the arena changed only inside the step's value arguments, and that parameters and derived tensors did
/// not change, so a kernel that writes where it should not fails at its own step. Plans in bf16 or fp16 (issue 22)
/// run too: every value, input and parameter lives in its declared type (16-bit ones as packed 16-bit patterns, their
/// GEMMs as <see cref="GemmStridedBatchedExArgs"/>); derived tensors and scratch are float32. A GEMM with
/// <see cref="GemmCall.Lt"/> runs as the <see cref="LtMatmulArgs"/> the executor builds.
/// </summary>
public static class EmuPlanRunner
{
    /// <summary>
    /// Runs <paramref name="plan"/> (lowered from <paramref name="g"/>) on <paramref name="inputs"/> and
    /// <paramref name="weights"/> (each uploaded in its declared type: bf16 and fp16 as their 16-bit patterns, rounded
    /// to nearest even from a tensor of another type; float32 otherwise); returns the graph outputs by name, in their
    /// declared element types. <paramref name="log"/> gets one line per step.
    /// </summary>
    public static Dictionary<string, Tensor> Run(CudaPlan plan, Graph g, IReadOnlyDictionary<string, Tensor> weights,
        IReadOnlyDictionary<string, Tensor> inputs, Action<string>? log = null)
    {
        using var mem = new EmuPlanMemory(plan, g, weights, inputs);
        log?.Invoke($"emulating plan {plan.Graph}: {plan.Steps.Count} steps, {plan.Kernels.Count} kernels, " +
            $"arena {plan.Memory.ArenaBytes} bytes");
        for (int i = 0; i < plan.Steps.Count; i++)
        {
            var step = plan.Steps[i];
            var what = step switch
            {
                KernelLaunch k => $"step {i} (node %{step.Node}, kernel {k.Kernel} entry {k.Entry})",
                _ => $"step {i} (node %{step.Node}, GEMM)",
            };
            var watch = Stopwatch.StartNew();
            var arenaBefore = mem.ArenaBytes().ToArray();
            try
            {
                switch (step)
                {
                    case KernelLaunch k:
                    {
                        var module = CudaEmulator.Compile(plan.Kernel(k.Kernel));
                        var args = k.Args.Select(a => mem.Pointer(a)).ToArray();
                        module.Launch(k.Entry, k.Grid, k.Block, k.SharedBytes, args);
                        log?.Invoke($"{what}: grid {k.Grid} block {k.Block} smem {k.SharedBytes}: " +
                            $"{watch.Elapsed.TotalMilliseconds:F1} ms");
                        break;
                    }
                    case GemmCall c:
                    {
                        var call = Gemm(c, mem);
                        log?.Invoke($"{what}: emulated GEMM (reference, not cuBLAS): {call} interpreted: " +
                            $"{watch.Elapsed.TotalMilliseconds:F1} ms");
                        break;
                    }
                    default:
                        throw new EmuException($"unknown plan step {step.GetType().Name}");
                }
            }
            catch (Exception e) when (e is EmuException or IrException)
            {
                throw new EmuException($"{what}: {e.Message}");
            }
            mem.CheckAfter(what, step, arenaBefore);
        }
        return g.Outputs.ToDictionary(o => o, mem.Output, StringComparer.Ordinal);
    }

    // the argument list the runtime passes to cuBLAS for the step, interpreted by cuBLAS's documented semantics
    private static unsafe string Gemm(GemmCall c, EmuPlanMemory mem)
    {
        var (a, aElements) = mem.Region(c.A, c.Storage);
        var (b, bElements) = mem.Region(c.B, c.Storage);
        var (cc, cElements) = mem.Region(c.C, c.Storage);
        if (c.Lt is not null)
        {
            // cublasLtMatmul: the record the executor builds (TF32 is the executor's option, not the plan's)
            var l = LtMatmulArgs.Of(c);
            var (bias, biasElements) = l.Bias is null ? (IntPtr.Zero, 0L) : mem.Region(l.Bias, c.Storage);
            var lt = CublasInterpreter.RunLt(l, (void*)a, aElements, (void*)b, bElements, (void*)cc, cElements,
                (void*)bias, biasElements);
            if (lt.Code != 0) throw new EmuException($"cublasLtMatmul returned {lt}");
            return $"cublasLtMatmul({Describe(l.AsStridedBatched())}, type {l.CLayout.Type}, computeType " +
                $"{l.ComputeType}, epilogue {LtMatmulArgs.EpilogueName(l.Epilogue)}" +
                (l.Bias is null ? ")" : $", bias {l.Bias})");
        }
        if (c.Storage == DType.F32)
        {
            var s = SgemmStridedBatchedArgs.Of(c);
            var status = CublasInterpreter.Run(s, (float*)a, aElements, (float*)b, bElements, (float*)cc, cElements);
            if (status.Code != 0) throw new EmuException($"cublasSgemmStridedBatched returned {status}");
            return $"cublasSgemmStridedBatched({Describe(s)})";
        }
        var e = GemmStridedBatchedExArgs.Of(c);
        var st = CublasInterpreter.RunEx(e, (void*)a, aElements, (void*)b, bElements, (void*)cc, cElements);
        if (st.Code != 0) throw new EmuException($"cublasGemmStridedBatchedEx returned {st}");
        return $"cublasGemmStridedBatchedEx({Describe(e.Call)}, Atype {e.Atype}, Btype {e.Btype}, Ctype {e.Ctype}, " +
            $"computeType {e.ComputeType}, algo {e.Algo})";
    }

    private static string Describe(SgemmStridedBatchedArgs s) =>
        $"transa {s.TransA}, transb {s.TransB}, m {s.M}, n {s.N}, k {s.K}, alpha {s.Alpha}, lda {s.Lda}, " +
        $"strideA {s.StrideA}, ldb {s.Ldb}, strideB {s.StrideB}, beta {s.Beta}, ldc {s.Ldc}, strideC {s.StrideC}, " +
        $"batchCount {s.BatchCount}";

}
