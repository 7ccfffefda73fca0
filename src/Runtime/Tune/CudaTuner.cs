using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.Passes.Lowering;
using ShiftWise.Runtime.Cuda;

namespace ShiftWise.Runtime.Tune;

/// <summary>
/// Tunes the CUDA SW layer kernels on GPU 0: for every distinct spec, the candidates of
/// <see cref="SwCudaTunables.Candidates"/> (pruned against this device's shared memory before compiling), searched by
/// <see cref="TuneSearch"/>. Each candidate is lowered as a graph of several copies of the layer on separate inputs
/// (enough copies that they do not fit in the L2 cache together), compiled by NVRTC for this device's arch under
/// the compile timeout, and timed with CUDA events around the copies back to back: ms per kernel = event time /
/// copies. Timing needs a GPU (<c>tests/Gpu</c>); everything above the driver also runs behind a fake
/// <see cref="CudaTuneDevice"/> (<c>tests/CudaEmu</c>).
/// </summary>
public sealed class CudaTuner(double budgetSeconds, Action<string>? warn = null, Action<TuneStatus>? progress = null)
    : ITuner
{
    /// <summary>The copies of the layer together take at least this many bytes (beyond any GPU's L2 today).</summary>
    private const long RotateBytes = 256L << 20;

    /// <summary>The longest one candidate's NVRTC compilation and load may take.</summary>
    public TimeSpan CompileTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Timed samples per candidate.</summary>
    public int Repeats { get; init; } = 7;

    /// <summary>Measure again kernels the cache has.</summary>
    public bool Force { get; init; }

    /// <summary>The key of an SW spec on GPU 0 with this driver, NVRTC and code generator.</summary>
    public static TuneKey KeyFor(SwLayerSpec spec)
    {
        var i = CudaDevice.Info;
        var (maj, min) = NvrtcCompiler.Version;
        var cg = typeof(CudaCodegen).Assembly;
        return new TuneKey(spec.Hash, i.Name, i.Arch, "cuda driver " + i.DriverVersion, $"nvrtc {maj}.{min}",
            $"{cg.GetName().Version} {cg.ManifestModule.ModuleVersionId:N}");
    }

    /// <summary>The cache file of GPU 0.</summary>
    public static string CacheFile => TuningCache.FileFor("cuda", CudaDevice.Info.Name);

    string ITuner.CacheFile => CacheFile;

    /// <inheritdoc/>
    public string Where => $"{CudaDevice.Info.Name} ({CudaDevice.Info.Arch})";

    /// <summary>Tunes every distinct SW spec of an optimised graph; entries go into the cache (saved).</summary>
    public IReadOnlyList<TuneRow> Tune(Graph g, IReadOnlyDictionary<string, Tensor> weights, TuningCache cache)
    {
        if (!CudaDevice.Available) throw new IrException(CudaDevice.MissingReason!);
        return Tune(g, weights, cache, CudaTuneDevice.Gpu0(warn));
    }

    /// <summary>
    /// The same with the device behind <paramref name="device"/>: which specs are tuned, the copies, the candidates,
    /// the budget and the cache are this code; the device only names the key, binds a lowered plan and times it.
    /// </summary>
    public IReadOnlyList<TuneRow> Tune(Graph g, IReadOnlyDictionary<string, Tensor> weights, TuningCache cache,
        CudaTuneDevice device)
    {
        var types = g.ValueTypes();
        return TuneSearch.All(g, device.KeyFor, cache, Force, budgetSeconds, progress,
            (node, spec, key, share, report) =>
        {
            int copies = CopiesFor(spec.Storage.Size() * (spec.Input.Elements
                + types[node.Outputs[0]].Shape.Elements));
            var (mini, w) = Copies(node, types, weights, copies);
            var rng = new Random(1);
            // inputs in the layer's storage type (bf16 / fp16 layers are tuned on their own kernels)
            var inputs = mini.Inputs.ToDictionary(i => i.Name, i => Tensor.FromDoubles(i.Type,
                Enumerable.Range(0, (int)i.Type.Shape.Elements).Select(_ => rng.NextDouble() * 2 - 1).ToArray()));
            var search = new TuneSearch { CompileTimeout = CompileTimeout, Repeats = Repeats };
            return search.Run(key, spec.Name, SwCudaTunables.Candidates(spec, device.MaxSharedPerBlock),
                share, cfg =>
            {
                var opts = new CudaOptions(device.Arch)
                {
                    Tunables = mini.Nodes.ToDictionary(n => n.Name, _ => cfg, StringComparer.Ordinal),
                };
                var run = device.Bind(CudaCodegen.Lower(mini, opts), mini, w, inputs);
                return new TuneTrial(() => run.Sample() / copies, run);
            }, report);
        });
    }

    /// <summary>
    /// Searches gemm_api (cuBLAS or cuBLASLt) for every gemm and linear node on GPU 0 (<see cref="GemmApiTuner"/>).
    /// </summary>
    public static IReadOnlyList<GemmApiRow> TuneGemmApi(Graph g, IReadOnlyDictionary<string, Tensor> weights,
        Action<string>? warn = null) => CudaDevice.Available
            ? new GemmApiTuner().Tune(g, weights, CudaTuneDevice.Gpu0(warn))
            : throw new IrException(CudaDevice.MissingReason!);

    /// <summary>
    /// Copies of a layer whose input and output take <paramref name="bytes"/> together: enough that all of them
    /// take at least 256 MiB (beyond any GPU's L2 today), at least 1 and at most 16.
    /// </summary>
    public static int CopiesFor(long bytes) => (int)Math.Clamp(RotateBytes / Math.Max(1, bytes), 1, 16);

    /// <summary>
    /// A graph of <paramref name="copies"/> copies of an SW node, each on its own input, sharing the parameters.
    /// </summary>
    public static (Graph Graph, Dictionary<string, Tensor> Weights) Copies(Node node,
        IReadOnlyDictionary<string, TensorType> types, IReadOnlyDictionary<string, Tensor> weights, int copies)
    {
        var b = new GraphBuilder("tune");
        var ps = node.Inputs.Skip(1).Select(p => b.Param(p, types[p])).ToArray();
        var outs = new List<Value>();
        for (int c = 0; c < copies; c++)
        {
            var x = b.Input($"x{c}", types[node.Inputs[0]]);
            outs.Add(b.Apply(node.Op, $"sw{c}", [x, .. ps])[0]);
        }
        b.Output([.. outs]);
        return (b.Build(), node.Inputs.Skip(1).ToDictionary(p => p, p => weights[p], StringComparer.Ordinal));
    }
}

/// <summary>
/// What <see cref="CudaTuner"/> needs of a device: its arch and static shared memory per block, the tuning key of a
/// spec on it, and a bound plan ready to time (each sample: ms for one run of the whole plan).
/// </summary>
public sealed record CudaTuneDevice(string Arch, int MaxSharedPerBlock, Func<SwLayerSpec, TuneKey> KeyFor,
    Func<CudaPlan, Graph, IReadOnlyDictionary<string, Tensor>, IReadOnlyDictionary<string, Tensor>, TuneTrial> Bind)
{
    /// <summary>GPU 0: NVRTC, the executor, CUDA events around one run.</summary>
    public static CudaTuneDevice Gpu0(Action<string>? warn) =>
        new(CudaDevice.Info.Arch, CudaDevice.Info.MaxSharedPerBlock, CudaTuner.KeyFor, (plan, g, w, inputs) =>
        {
            var exec = new CudaExecutor(plan, g, w, log: warn);
            exec.SetInputs(inputs);
            return new TuneTrial(() => exec.TimeRuns(1), exec);
        });
}
