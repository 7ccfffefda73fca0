using ShiftWise.CodegenCpu;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes.Lowering;

namespace ShiftWise.Runtime.Cpu;

/// <summary>
/// A <see cref="FusedShiftWise"/> node run by its generated, specialised kernel in one of two lowerings (tunable
/// "lowering"): 0, the collapsed cross, whose bands are computed once from the node's parameters (SwCollapse) with
/// the vertical band's centre merged into the horizontal one; 1, the factorised form, which keeps the sub-kernels and
/// bakes the shift tables into the generated class. The cross is generated for <see cref="CpuIsa.Current"/>: Vector512
/// where the CPU has AVX-512F (unless SWC_CPU_ISA=avx2), else Vector256.
/// </summary>
public sealed class SwLayerKernel : CpuKernel
{
    private delegate void RunFn(float[] x, int xOff, float[] y, int yOff, float[] hb, float[] vb, float[] bias,
        float[] gs, int[] rep, int[] ghost, int batch, int channels, float[][] scratch);

    private readonly RunFn _run;
    // cross: the horizontal and vertical bands; factorised: the kept sub-kernels and the path scales
    private readonly float[] _wa;
    private readonly float[] _wb;
    private readonly float[] _bias;
    private readonly float[] _gs;
    private readonly int[] _rep;
    private readonly int[] _ghost;
    private readonly int _batch;
    private readonly int _channels;
    private readonly float[][] _scratch;

    /// <summary>
    /// Renders, compiles (or loads from cache) and binds the kernel of <paramref name="spec"/> (the node's, as the
    /// lowering computed it) with <paramref name="tunables"/> (null: <see cref="SwCpuTunables.Defaults"/>).
    /// </summary>
    public SwLayerKernel(KernelRequest r, SwLayerSpec spec, IReadOnlyDictionary<string, int>? tunables = null,
        Action<string>? warn = null)
    {
        var op = spec.Op;
        if (r.Constants.Skip(1).Any(c => c is null))
        {
            throw new IrException($"{r.Node.Describe()}: the CPU cross kernel needs constant weights");
        }
        Isa = CpuIsa.Current;
        // AVX-512 runs Vector512 where a row is wider than 8, Vector256 (with its 32 registers) on narrower planes
        int width = SwCrossCpuModel.WidthFor(spec, CpuIsa.Width(Isa));
        VectorWidth = width;
        var t = tunables ?? SwCpuTunables.Defaults(spec, width);
        Lowering = t.TryGetValue("lowering", out int lw) && lw == 1 ? "factorised" : "cross";
        var src = Lowering == "cross" ? CpuCodegen.SwCross(spec, t, width) : CpuCodegen.SwFactorised(spec);
        Source = src;
        var m = RoslynCompiler.GetMethod(src.Source, src.ClassName, "Run", out var outcome, warn);
        Cache = outcome;
        _run = m.CreateDelegate<RunFn>();
        // the kernel forks on swc's CPU workers, as the GEMMs do, rather than on the thread pool beside them
        m.DeclaringType!.GetField("Fork")!.SetValue(null, (Action<int, Action<int>>)CpuWorkers.For);
        _bias = r.Constants[3]!.ToDoubles().Select(v => (float)v).ToArray();
        _gs = r.Constants[4]!.ToDoubles().Select(v => (float)v).ToArray();
        _rep = op.Rep.ToArray();
        _ghost = op.Ghost.ToArray();
        _batch = spec.Input[0];
        _channels = spec.Input[1];
        int workers = Math.Max(1, Environment.ProcessorCount);
        _scratch = Enumerable.Range(0, workers).Select(_ => new float[src.ScratchFloats]).ToArray();
        if (Lowering == "factorised")
        {
            // the generated class reads the kept sub-kernels and the path scales as they are
            _wa = r.Constants[1]!.ToDoubles().Select(v => (float)v).ToArray();
            _wb = r.Constants[2]!.ToDoubles().Select(v => (float)v).ToArray();
            return;
        }
        var cross = SwCollapse.Collapse(op.Shift, op.Subs, r.Constants[1]!.ToDoubles(), r.Constants[2]!.ToDoubles());
        (_wa, var vb) = cross.Merged();
        _wb = new SwCrossCpuModel(spec, t, width).PadVertical(vb);
    }

    /// <summary>Whether this CPU runs the generated kernels (AVX2 and FMA).</summary>
    public static bool Supported => System.Runtime.Intrinsics.X86.Avx2.IsSupported
        && System.Runtime.Intrinsics.X86.Fma.IsSupported;

    /// <summary>The vector ISA the kernel was generated for (<see cref="CpuIsa.Current"/> when it was built).</summary>
    public CpuIsaKind Isa { get; }

    /// <summary>Floats per vector of the cross kernel: 16 (Vector512) or 8 (Vector256).</summary>
    public int VectorWidth { get; }

    /// <summary>Where the compiled kernel came from (memory, the disk cache, or Roslyn now).</summary>
    public CacheOutcome Cache { get; }

    /// <summary>"cross" or "factorised".</summary>
    public string Lowering { get; }

    /// <summary>The rendered source (for --emit and tests).</summary>
    public CpuKernelSource Source { get; }

    /// <inheritdoc/>
    public override string Label => Source.Name;

    /// <inheritdoc/>
    public override void Run(Buf[] inputs, Buf[] outputs) =>
        _run(inputs[0].Array, inputs[0].Offset, outputs[0].Array, outputs[0].Offset, _wa, _wb, _bias, _gs, _rep, _ghost,
            _batch, _channels, _scratch);
}
