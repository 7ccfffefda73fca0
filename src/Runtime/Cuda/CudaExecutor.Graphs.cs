using ShiftWise.Runtime.Native;

namespace ShiftWise.Runtime.Cuda;

// The CUDA graph path of the executor: after two eager runs the steps are captured once and replayed.
public sealed partial class CudaExecutor
{
    private CudaHandle? _graph;
    private CudaHandle? _graphExec;
    private int _eagerRuns;

    /// <summary>
    /// Whether <see cref="Enqueue"/> replays the CUDA graph (capturing it first) after <paramref name="eagerRuns"/>
    /// eager runs: with <see cref="CudaRunOptions.Graphs"/>, from the third run on; never without.
    /// </summary>
    public static bool ReplaysGraph(CudaRunOptions options, int eagerRuns) => options.Graphs && eagerRuns >= 2;

    /// <summary>
    /// Enqueues one run on the stream: the CUDA graph when enabled (captured on the third call), else each step.
    /// </summary>
    public void Enqueue()
    {
        CudaDevice.MakeCurrent();
        if (ReplaysGraph(Options, _eagerRuns))
        {
            if (_graphExec is null) Capture();
            CudaDevice.Check(CudaDriver.GraphLaunch(_graphExec!.Raw, _stream), "cuGraphLaunch");
            return;
        }
        foreach (var s in _steps) s();
        _eagerRuns++;
    }

    private void Capture()
    {
        Synchronize();
        CudaDevice.Check(CudaDriver.StreamBeginCapture(_stream, 1), "cuStreamBeginCapture");
        try
        {
            foreach (var s in _steps) s();
        }
        finally
        {
            int r = CudaDriver.StreamEndCapture(_stream, out var g);
            if (g != IntPtr.Zero) _graph = CudaHandle.Graph(g);
            CudaDevice.Check(r, "cuStreamEndCapture");
        }
        _graphExec = CudaHandle.GraphExec(_graph!);
    }
}
