using System.Security.Cryptography;
using System.Text;
using ShiftWise.Codegen;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Passes;
using ShiftWise.Passes.Lowering;

namespace ShiftWise.CodegenCuda;

/// <summary>What the CUDA target is asked for.</summary>
/// <param name="Arch">The device arch the plan is meant for (sm_90); sources do not depend on it.</param>
public sealed record CudaOptions(string Arch = "sm_90")
{
    /// <summary>Tunable values per node name (missing nodes and names take the spec's defaults).</summary>
    public IReadOnlyDictionary<string, IReadOnlyDictionary<string, int>> Tunables { get; init; } =
        new Dictionary<string, IReadOnlyDictionary<string, int>>();

    /// <summary>
    /// The tuned configuration of an SW layer spec (null, or a null answer: the defaults); <see cref="Tunables"/>
    /// of the node's name go over it.
    /// </summary>
    public Func<SwLayerSpec, IReadOnlyDictionary<string, int>?>? Tuned { get; init; }

    /// <summary>
    /// Applied to every rendered view-model before rendering (tests use it to break a template on purpose).
    /// </summary>
    public Action<object>? MutateModel { get; init; }
}

/// <summary>
/// Lowers an optimised graph to a <see cref="CudaPlan"/>: one or more kernels or GEMM calls per node.
/// </summary>
public static class CudaCodegen
{
    /// <summary>Lowers every node; a node the CUDA target cannot run is an error that names it.</summary>
    public static CudaPlan Lower(Graph g, CudaOptions? options = null)
    {
        options ??= new CudaOptions();
        var types = g.ValueTypes();
        var paramNames = g.Params.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        var state = new PlanState();
        foreach (var n in g.Nodes)
        {
            var ctx = new NodeLowering(n, types, paramNames, options, state);
            try
            {
                Lower(ctx);
            }
            catch (IrException e) when (!e.Message.Contains(n.Describe(), StringComparison.Ordinal))
            {
                throw new IrException($"{n.Describe()}: {e.Message}", e);
            }
        }
        var memory = MemoryPlan.Of(g);
        var views = new SortedDictionary<string, string>(memory.Aliases.ToDictionary(), StringComparer.Ordinal);
        foreach (var (v, of) in state.Views) views.TryAdd(v, of);
        return new CudaPlan(g.Name, options.Arch, state.Kernels.Values.OrderBy(k => k.Name, StringComparer.Ordinal)
            .ToArray(), state.Steps, state.Derived, state.Scratch, memory)
        {
            Inputs = g.Inputs.ToArray(),
            Outputs = g.Outputs.ToArray(),
            Views = views,
        };
    }

    private static void Lower(NodeLowering ctx)
    {
        switch (ctx.Node.Op)
        {
            case FusedShiftWise:
                SwLowering.Lower(ctx);
                break;
            case Reshape:
            case DropPath { Mode: Mode.Eval }:
                ctx.Alias();
                break;
            case Gemm:
                GemmLowering.Lower(ctx);
                break;
            case GemmGrnFold:
                GrnFoldLowering.Lower(ctx);
                break;
            case ShiftAdd:
                ShiftAddLowering.Lower(ctx);
                break;
            case Linear:
                LinearLowering.Lower(ctx);
                break;
            case Conv2d:
                ConvLowering.Lower(ctx);
                break;
            case LayerNorm:
            case Grn:
                NormLowering.Lower(ctx);
                break;
            case BatchNorm { Mode: Mode.Train } bn:
                NormGradLowering.BatchNormTrain(ctx, bn);
                break;
            case Unary:
            case Binary:
            case ScaleBias:
                ElementwiseLowering.Lower(ctx);
                break;
            case Cast:
                CastLowering.Lower(ctx);
                break;
            case Mean:
                ReduceLowering.Lower(ctx);
                break;
            case Grad:
                GradLowering.Lower(ctx);
                break;
            case CrossEntropy:
            case DropPath { Mode: Mode.Train }:
                ElementGradLowering.LowerForward(ctx);
                break;
            case ChannelSelect:
            case Concat:
            case Permute:
                LayoutLowering.LowerForward(ctx);
                break;
            default:
                throw new IrException($"{ctx.Node.Describe()}: the CUDA target has no kernel for {ctx.Node.Op.Name}; " +
                    "compile with the inference pipeline, which leaves only ops it supports");
        }
    }
}

/// <summary>What the lowering of all nodes accumulates.</summary>
internal sealed class PlanState
{
    public SortedDictionary<string, CudaKernelSource> Kernels { get; } = new(StringComparer.Ordinal);
    public List<PlanStep> Steps { get; } = [];
    public List<DerivedTensor> Derived { get; } = [];
    public List<ScratchBuffer> Scratch { get; } = [];
    public List<(string Value, string Of)> Views { get; } = [];
}

/// <summary>The lowering of one node: its types and arguments, and the methods that add kernels and steps.</summary>
public sealed class NodeLowering
{
    private const string Placeholder = "swc_kernel_name_placeholder";
    private readonly IReadOnlyDictionary<string, TensorType> _types;
    private readonly HashSet<string> _params;
    private readonly PlanState _state;

    internal NodeLowering(Node node, IReadOnlyDictionary<string, TensorType> types, HashSet<string> paramNames,
        CudaOptions options, PlanState state)
    {
        Node = node;
        _types = types;
        _params = paramNames;
        Options = options;
        _state = state;
    }

    /// <summary>The node.</summary>
    public Node Node { get; }

    /// <summary>The options (tunables, test mutations).</summary>
    public CudaOptions Options { get; }

    /// <summary>Type of input <paramref name="i"/>.</summary>
    public TensorType InType(int i) => _types[Node.Inputs[i]];

    /// <summary>Type of output <paramref name="i"/>.</summary>
    public TensorType OutType(int i) => Node.Types[i];

    /// <summary>Input <paramref name="i"/> as an argument (a parameter or an activation).</summary>
    public ArgRef In(int i) => new(_params.Contains(Node.Inputs[i]) ? ArgKind.Param : ArgKind.Value, Node.Inputs[i]);

    /// <summary>Whether input <paramref name="i"/> is a graph parameter.</summary>
    public bool IsParam(int i) => _params.Contains(Node.Inputs[i]);

    /// <summary>Output <paramref name="i"/> as an argument.</summary>
    public ArgRef Out(int i = 0) => new(ArgKind.Value, Node.Outputs[i]);

    /// <summary>
    /// Tunable values of this node: the options' values for its name over the <paramref name="tuned"/> ones over
    /// <paramref name="defaults"/>.
    /// </summary>
    public IReadOnlyDictionary<string, int> Tunables(IReadOnlyDictionary<string, int> defaults,
        IReadOnlyDictionary<string, int>? tuned = null)
    {
        var d = new Dictionary<string, int>(defaults, StringComparer.Ordinal);
        foreach (var t in new[] { tuned, Options.Tunables.GetValueOrDefault(Node.Name) })
        {
            if (t is null) continue;
            foreach (var (k, v) in t)
            {
                if (!d.ContainsKey(k))
                {
                    throw new IrException(
                        $"{Node.Describe()} has no tunable '{k}' (it has {string.Join(", ", d.Keys)})");
                }
                d[k] = v;
            }
        }
        return d;
    }

    /// <summary>
    /// Renders template <paramref name="template"/> as a kernel named <paramref name="prefix"/>_&lt;hash8&gt;, the hash
    /// taken over the source rendered with a placeholder name, so equal kernels share one file. The view-model gets
    /// the final name through <paramref name="model"/>. Returns the kernel name.
    /// </summary>
    public string AddKernel(string prefix, string kind, string template, Func<string, object> model,
        Func<string, IReadOnlyList<string>>? entries = null)
    {
        if (!IsIdentifier(prefix)) throw new IrException($"kernel prefix '{prefix}' is not an identifier");
        string Render(string name)
        {
            var m = model(name);
            Options.MutateModel?.Invoke(m);
            return TemplateRenderer.Render(template, m);
        }
        var probe = Render(Placeholder);
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(template + "\n" + probe)))[..8];
        var name = prefix + "_" + hash;
        if (!_state.Kernels.ContainsKey(name))
        {
            var src = Render(name);
            var ents = entries?.Invoke(name) ?? [name];
            _state.Kernels[name] = new CudaKernelSource(name, kind, src, ents);
        }
        return name;
    }

    /// <summary>
    /// Adds a launch of <paramref name="entry"/> (default: the kernel's own name) of kernel <paramref name="kernel"/>.
    /// </summary>
    public void Launch(string kernel, Dim3 grid, Dim3 block, int sharedBytes, IReadOnlyList<ArgRef> args,
        string? entry = null)
    {
        if (block.Count > 1024) throw new IrException($"kernel {kernel}: a block of {block} exceeds 1024 threads");
        if (grid.Y > 65535 || grid.Z > 65535)
        {
            throw new IrException($"kernel {kernel}: grid {grid} exceeds 65535 in y or z");
        }
        _state.Steps.Add(new KernelLaunch(Node.Name, kernel, entry ?? kernel, grid, block, sharedBytes, args));
    }

    /// <summary>Adds a GEMM call (its Node is set to this node).</summary>
    public void Gemm(GemmCall call) => _state.Steps.Add(call with { Node = Node.Name });

    /// <summary>A scratch buffer of <paramref name="floats"/> floats, named after the node.</summary>
    public ArgRef Scratch(string suffix, long floats)
    {
        var name = Node.Name + "." + suffix;
        _state.Scratch.Add(new ScratchBuffer(name, floats));
        return new ArgRef(ArgKind.Scratch, name);
    }

    /// <summary>
    /// A tensor computed once from this node's parameters by <paramref name="recipe"/> (see <see cref="Derived"/>).
    /// </summary>
    public ArgRef Derived(string recipe, long floats)
    {
        var name = Node.Name + "." + recipe;
        _state.Derived.Add(new DerivedTensor(name, recipe, Node.Name, floats));
        return new ArgRef(ArgKind.Derived, name);
    }

    /// <summary>The output is the input under another shape: no kernel, the runtime aliases the buffer.</summary>
    public void Alias()
    {
        if (Node.Inputs.Count < 1 || Node.Outputs.Count != 1)
        {
            throw new IrException($"{Node.Describe()} cannot be an alias");
        }
        _state.Views.Add((Node.Outputs[0], Node.Inputs[0]));
    }

    private static bool IsIdentifier(string s) =>
        s.Length > 0 && (char.IsAsciiLetter(s[0]) || s[0] == '_')
            && s.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');
}
