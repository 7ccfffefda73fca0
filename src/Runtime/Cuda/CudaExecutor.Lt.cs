using System.Runtime.InteropServices;
using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.Runtime.Native;

namespace ShiftWise.Runtime.Cuda;

/// <summary>
/// The cuBLASLt GEMM steps (a <see cref="GemmCall"/> with <see cref="GemmCall.Lt"/>; issue 22): at bind time one
/// matmul descriptor, four layouts and the heuristic's best algorithm per step (<see cref="LtMatmulArgs"/> says what is
/// set), one cuBLASLt handle and one workspace for the executor (the steps run one after another on its stream); at
/// run time one <c>cublasLtMatmul</c>. Without libcublasLt the step runs through cuBLAS instead, said once in the
/// executor's log, unless its epilogue is cuBLASLt's (the bias would be lost): that is an error naming the node.
/// </summary>
public sealed unsafe partial class CudaExecutor
{
    private readonly List<(IntPtr Handle, Func<IntPtr, int> Destroy)> _ltObjects = [];
    private IntPtr _lt;
    private DeviceBuffer? _ltWorkspace;
    private Action<string>? _gemmLog;
    private bool _ltMissingSaid;

    // the cublasLtMatmul of an Lt step, or null to run it through cuBLAS
    private Action? BindLt(GemmCall c, float* scalars)
    {
        var lib = CublasLtApi.Library;
        if (!lib.Found)
        {
            if (c.Lt!.Epilogue != GemmEpilogue.Default)
            {
                throw new CudaException($"the GEMM of %{c.Node} (cuBLASLt epilogue {c.Lt.Epilogue}, gemm_api 2)",
                    lib.Missing("Lower the plan with gemm_api 0 or 1 (SWC_GEMM_API=0)."));
            }
            if (!_ltMissingSaid) _gemmLog?.Invoke(lib.Missing("The cuBLASLt GEMM steps run through cuBLAS."));
            _ltMissingSaid = true;
            return null;
        }
        var l = LtMatmulArgs.Of(c, Options.Tf32);
        var what = $"cublasLtMatmul ({GemmStridedBatchedExArgs.TypeName(l.CLayout.Type)}, " +
            $"{LtMatmulArgs.EpilogueName(l.Epilogue)}) for %{c.Node} (m {c.M}, n {c.N}, k {c.K}, batch {c.Batch})";
        if (_lt == IntPtr.Zero)
        {
            CublasCheck(CublasLtApi.Create(out _lt), "cublasLtCreate");
            _ltWorkspace = Track(DeviceBuffer.Alloc(LtMatmulArgs.WorkspaceBytes, "the cuBLASLt workspace"));
        }
        int bytes = c.Storage.Size();
        ulong bias = l.Bias is null ? 0 : Resolve(l.Bias, bytes);
        CublasCheck(CublasLtApi.MatmulDescCreate(out var desc, l.ComputeType, l.ScaleType), "cublasLtMatmulDescCreate");
        Own(desc, CublasLtApi.MatmulDescDestroy);
        foreach (var a in l.DescAttributes(bias))
        {
            Set(a, what, (buf, n) => CublasLtApi.MatmulDescSetAttribute(desc, a.Attr, (void*)buf, n));
        }
        IntPtr Layout(LtLayout x)
        {
            CublasCheck(CublasLtApi.MatrixLayoutCreate(out var h, x.Type, x.Rows, x.Cols, x.Ld),
                $"cublasLtMatrixLayoutCreate for {what}");
            Own(h, CublasLtApi.MatrixLayoutDestroy);
            foreach (var a in x.Attributes())
            {
                Set(a, what, (buf, n) => CublasLtApi.MatrixLayoutSetAttribute(h, a.Attr, (void*)buf, n));
            }
            return h;
        }
        // D is C in place: one descriptor for both
        IntPtr la = Layout(l.ALayout), lb = Layout(l.BLayout), lc = Layout(l.CLayout), ld = lc;
        ulong pa = Resolve(l.A, bytes), pb = Resolve(l.B, bytes), pc = Resolve(l.C, bytes);
        CublasCheck(CublasLtApi.MatmulPreferenceCreate(out var pref), "cublasLtMatmulPreferenceCreate");
        Own(pref, CublasLtApi.MatmulPreferenceDestroy);
        foreach (var a in LtMatmulArgs.PreferenceAttributes(pa, pb, pc))
        {
            Set(a, what, (buf, n) => CublasLtApi.MatmulPreferenceSetAttribute(pref, a.Attr, (void*)buf, n));
        }
        var result = (byte*)NativeMemory.AllocZeroed(LtMatmulArgs.HeuristicResultBytes);
        _native.Add((IntPtr)result);
        CublasCheck(CublasLtApi.MatmulAlgoGetHeuristic(_lt, desc, la, lb, lc, ld, pref, 1, result, out int found),
            $"cublasLtMatmulAlgoGetHeuristic for {what}");
        if (found < 1 || *(int*)(result + LtMatmulArgs.HeuristicStateOffset) != 0)
        {
            throw new CudaException($"cublasLtMatmulAlgoGetHeuristic for {what}",
                "no algorithm (lower the node with gemm_api 0)");
        }
        ulong ws = _ltWorkspace!.Ptr;
        IntPtr handle = _lt;
        return () => CublasCheck(CublasLtApi.Matmul(handle, desc, scalars, pa, la, pb, lb, scalars + 1, pc, lc, pc,
            ld, result, ws, (nuint)LtMatmulArgs.WorkspaceBytes, _stream), what);
    }

    // one attribute, its value written as its C type (4 bytes: int32_t / uint32_t; 8: int64_t / uint64_t / pointer)
    private static void Set(LtAttribute a, string what, Func<IntPtr, nuint, int> set)
    {
        int v4 = (int)a.Value;
        long v8 = a.Value;
        int status = a.Bytes switch
        {
            4 => set((IntPtr)(&v4), 4),
            8 => set((IntPtr)(&v8), 8),
            _ => throw new IrException($"{a.Name}: {a.Bytes}-byte attributes are not set"),
        };
        CublasCheck(status, $"{a.Name} = {a.Value} for {what}");
    }

    private void Own(IntPtr h, Func<IntPtr, int> destroy) => _ltObjects.Add((h, destroy));

    private void DisposeLt()
    {
        for (int i = _ltObjects.Count - 1; i >= 0; i--) _ltObjects[i].Destroy(_ltObjects[i].Handle);
        _ltObjects.Clear();
        if (_lt != IntPtr.Zero) CublasLtApi.Destroy(_lt);
        _lt = IntPtr.Zero;
    }
}
