using Microsoft.ML.OnnxRuntime;
using ShiftWise.Frontend;
using ShiftWise.IR;
using ShiftWise.Runtime.Compile;
using ShiftWise.Runtime.Export;

namespace ShiftWise.Bench;

/// <summary>
/// A whole model as ONNX Runtime runs it: exported by swc export-onnx to a temporary file (deleted once the session
/// has read it), one CPU session with as many intra-op threads as the machine has cores, input and output buffers
/// preallocated.
/// </summary>
internal sealed class OrtModel : IDisposable
{
    private readonly InferenceSession _session;
    private readonly RunOptions _options = new();
    private readonly OrtValue _x, _y;
    private readonly float[] _ybuf;
    private readonly string[] _in, _out;

    private OrtModel(InferenceSession session, float[] x, long[] xDims, long[] yDims, int threads)
    {
        _session = session;
        Threads = threads;
        _in = [session.InputMetadata.Keys.Single()];
        _out = [session.OutputMetadata.Keys.Single()];
        _ybuf = new float[yDims.Aggregate(1L, (a, d) => a * d)];
        _x = OrtValue.CreateTensorValueFromMemory(x, xDims);
        _y = OrtValue.CreateTensorValueFromMemory(_ybuf, yDims);
    }

    /// <summary>Intra-op threads of the session.</summary>
    public int Threads { get; }

    /// <summary>ONNX Runtime's version.</summary>
    public string Version => OrtEnv.Instance().GetVersionString();

    /// <summary>Exports <paramref name="m"/> and opens a session that runs it on <paramref name="x"/>.</summary>
    public static OrtModel Export(LoadedModel m, Tensor x)
    {
        var path = Path.Combine(Path.GetTempPath(), $"swc-bench-{Guid.NewGuid():N}.onnx");
        try
        {
            Driver.ExportOnnx(m, path, new OnnxExportOptions(), "bench");
            int threads = Environment.ProcessorCount;
            using var so = new SessionOptions
            {
                IntraOpNumThreads = threads, InterOpNumThreads = 1, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
                GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            };
            var session = new InferenceSession(path, so);
            var yShape = session.OutputMetadata[session.OutputMetadata.Keys.Single()].Dimensions;
            var xs = x.ToDoubles().Select(v => (float)v).ToArray();
            return new OrtModel(session, xs, x.Shape.ToArray().Select(d => (long)d).ToArray(),
                yShape.Select(d => (long)d).ToArray(), threads);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>Runs the model once; returns the output.</summary>
    public double[] Run()
    {
        _session.Run(_options, _in, [_x], _out, [_y]);
        return _ybuf.Select(v => (double)v).ToArray();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _x.Dispose();
        _y.Dispose();
        _options.Dispose();
        _session.Dispose();
    }
}
