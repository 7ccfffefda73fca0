using ShiftWise.CodegenCuda;
using ShiftWise.Runtime.Native;

namespace ShiftWise.Runtime.Cuda;

/// <summary>The time of one step of a profiled run.</summary>
public sealed record StepTime(PlanStep Step, string Kind, double Ms);

// Timing with CUDA events on the executor's stream: the per-step profile and the runs timed back to back.
public sealed partial class CudaExecutor
{
    /// <summary>One eager run with an event before and after every step; the time of each step.</summary>
    public IReadOnlyList<StepTime> Profile()
    {
        CudaDevice.MakeCurrent();
        var handles = new List<CudaHandle>();
        try
        {
            for (int i = 0; i <= _steps.Count; i++) handles.Add(CudaHandle.Event());
            var events = handles.Select(h => h.Raw).ToArray();
            for (int i = 0; i < _steps.Count; i++)
            {
                CudaDevice.Check(CudaDriver.EventRecord(events[i], _stream), "cuEventRecord");
                _steps[i]();
            }
            CudaDevice.Check(CudaDriver.EventRecord(events[^1], _stream), "cuEventRecord");
            CudaDevice.Check(CudaDriver.EventSynchronize(events[^1]), "cuEventSynchronize");
            var kinds = _plan.Kernels.ToDictionary(k => k.Name, k => k.Kind, StringComparer.Ordinal);
            var times = new List<StepTime>();
            for (int i = 0; i < _steps.Count; i++)
            {
                CudaDevice.Check(
                    CudaDriver.EventElapsedTime(out float ms, events[i], events[i + 1]), "cuEventElapsedTime");
                var step = _plan.Steps[i];
                times.Add(new StepTime(step, step is KernelLaunch l ? kinds[l.Kernel]
                    : step is GemmCall { Lt: not null } ? "gemm (cuBLASLt)" : "gemm (cuBLAS)", ms));
            }
            return times;
        }
        finally
        {
            foreach (var h in handles) h.Dispose();
        }
    }

    /// <summary>
    /// Milliseconds per run over <paramref name="runs"/> runs back to back, timed with events on the stream.
    /// </summary>
    public double TimeRuns(int runs)
    {
        CudaDevice.MakeCurrent();
        using var ea = CudaHandle.Event();
        using var eb = CudaHandle.Event();
        CudaDevice.Check(CudaDriver.EventRecord(ea.Raw, _stream), "cuEventRecord");
        for (int i = 0; i < runs; i++) Enqueue();
        CudaDevice.Check(CudaDriver.EventRecord(eb.Raw, _stream), "cuEventRecord");
        CudaDevice.Check(CudaDriver.EventSynchronize(eb.Raw), "cuEventSynchronize (a kernel of the plan failed)");
        CudaDevice.Check(CudaDriver.EventElapsedTime(out float ms, ea.Raw, eb.Raw), "cuEventElapsedTime");
        return ms / runs;
    }
}
