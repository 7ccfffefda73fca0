using Microsoft.ML.OnnxRuntime;
using ShiftWise.Bench.Onnx;

namespace ShiftWise.Bench;

/// <summary>Which ONNX graph an <see cref="OrtPeer"/> runs.</summary>
internal enum OrtPeerKind
{
    /// <summary>One depthwise Conv with the (n·k)×(n·k) dense-square equivalent, asymmetric pads.</summary>
    Dense,

    /// <summary>Three depthwise Convs (k×n·k, n·k×k, k×k) on the same input and two Adds.</summary>
    Band,
}

/// <summary>An ONNX Runtime peer: builds the model in memory and runs it on pinned, preallocated buffers.</summary>
internal sealed class OrtPeer(OrtPeerKind kind, int threads, bool pad4) : ISwLayerCandidate
{
    private SwLayerProblem _p = null!;
    private InferenceSession? _session;
    private RunOptions? _runOptions;
    private OrtValue? _x, _y;
    private float[] _ybuf = [];
    private int _rp;
    private readonly string[] _inNames = ["x"], _outNames = ["y"];

    /// <inheritdoc/>
    public string Name => kind == OrtPeerKind.Dense ? "ORT dense" : "ORT band";

    /// <inheritdoc/>
    public string Notes => $"ORT {OrtEnv.Instance().GetVersionString()} CPU EP, NCHW, "
        + (pad4 ? "R padded to a multiple of 4, " : "R unpadded, ")
        + $"{threads} intra-op threads, spinning off, ORT_ENABLE_ALL";

    /// <summary>When set before <see cref="Prepare"/>, ORT writes its optimized graph there.</summary>
    public string? OptimizedModelPath { get; set; }

    /// <summary>The serialized model of the last <see cref="Prepare"/> (for dumping).</summary>
    public byte[] ModelBytes { get; private set; } = [];

    /// <inheritdoc/>
    public float[] Output
    {
        get
        {
            SwShape s = _p.Shape;
            int plane = s.H * s.W;
            var y = new float[_p.OutputLength];
            for (int b = 0; b < _p.Batch; b++)
                _ybuf.AsSpan(b * _rp * plane, s.R * plane).CopyTo(y.AsSpan(b * s.R * plane));
            return y;
        }
    }

    /// <inheritdoc/>
    public void Prepare(SwLayerProblem problem)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("raw_data needs little-endian");
        _p = problem;
        SwShape s = problem.Shape;
        _rp = pad4 ? s.RPadded4 : s.R;
        long[] io = [problem.Batch, _rp, s.H, s.W];
        ModelBytes = (kind == OrtPeerKind.Dense ? DenseModel(problem, _rp, io) : BandModel(problem, _rp, io)).ToBytes();

        using var so = new SessionOptions
        {
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        if (OptimizedModelPath is not null) so.OptimizedModelFilePath = OptimizedModelPath;
        so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        so.AddSessionConfigEntry("session.inter_op.allow_spinning", "0");
        _session = new InferenceSession(ModelBytes, so);
        _runOptions = new RunOptions();

        int plane = s.H * s.W;
        var xbuf = new float[problem.Batch * _rp * plane]; // padded channels stay zero
        for (int b = 0; b < problem.Batch; b++)
            problem.Input.AsSpan(b * s.R * plane, s.R * plane).CopyTo(xbuf.AsSpan(b * _rp * plane));
        _ybuf = new float[xbuf.Length];
        _x = OrtValue.CreateTensorValueFromMemory(xbuf, io);
        _y = OrtValue.CreateTensorValueFromMemory(_ybuf, io);
    }

    /// <inheritdoc/>
    public void Run() => _session!.Run(_runOptions!, _inNames, [_x!], _outNames, [_y!]);

    private static float[] PaddedBias(SwLayerProblem p, int rp)
    {
        var b = new float[rp];
        p.Bias.CopyTo(b, 0);
        return b;
    }

    private static OnnxModel DenseModel(SwLayerProblem p, int rp, long[] io)
    {
        SwShape s = p.Shape;
        int nk = s.BandWidth, mu = s.Mu, tail = nk - 1 - mu;
        return new OnnxModel { Name = "sw_dense" }
            .Input("x", io).Output("y", io)
            .Initializer("w", [rp, 1, nk, nk], p.DenseSquare(rp))
            .Initializer("b", [rp], PaddedBias(p, rp))
            .Conv("x", "w", "b", "y", [nk, nk], [mu, mu, tail, tail], rp);
    }

    private static OnnxModel BandModel(SwLayerProblem p, int rp, long[] io)
    {
        SwShape s = p.Shape;
        int nk = s.BandWidth, k = s.K, r = s.Half, mu = s.Mu, tail = nk - 1 - mu;
        var (h, v, ctr) = p.BandSplit(rp);
        return new OnnxModel { Name = "sw_band" }
            .Input("x", io).Output("y", io)
            .Initializer("wh", [rp, 1, k, nk], h)
            .Initializer("wv", [rp, 1, nk, k], v)
            .Initializer("wc", [rp, 1, k, k], ctr)
            .Initializer("b", [rp], PaddedBias(p, rp))
            .Conv("x", "wh", null, "yh", [k, nk], [r, mu, r, tail], rp)
            .Conv("x", "wv", null, "yv", [nk, k], [mu, r, tail, r], rp)
            .Conv("x", "wc", "b", "yc", [k, k], [r, r, r, r], rp)
            .Add("yh", "yv", "yhv")
            .Add("yhv", "yc", "y");
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _x?.Dispose();
        _y?.Dispose();
        _runOptions?.Dispose();
        _session?.Dispose();
    }
}
