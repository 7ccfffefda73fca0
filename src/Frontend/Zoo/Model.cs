using ShiftWise.IR;

namespace ShiftWise.Frontend.Zoo;

/// <summary>What a parameter is, so initialisers know how to draw it.</summary>
public enum ParamRole
{
    /// <summary>Convolution or linear weight; drawn with its fan-in.</summary>
    Weight,
    /// <summary>Bias of a conv or linear layer.</summary>
    Bias,
    /// <summary>Scale of a BatchNorm or LayerNorm.</summary>
    NormWeight,
    /// <summary>Shift of a BatchNorm or LayerNorm.</summary>
    NormBias,
    /// <summary>BatchNorm running mean (a buffer).</summary>
    RunningMean,
    /// <summary>BatchNorm running variance (a buffer).</summary>
    RunningVar,
    /// <summary>GRN γ or β.</summary>
    Grn,
    /// <summary>Layer-scale γ.</summary>
    LayerScale,
}

/// <summary>A parameter's role and, for weights, the number of terms each output sums (its fan-in).</summary>
public sealed record ParamInfo(ParamRole Role, int FanIn = 1);

/// <summary>A built model: the graph and what each of its parameters is.</summary>
public sealed record Model(Graph Graph, IReadOnlyDictionary<string, ParamInfo> Params)
{
    /// <summary>What the graph's training values are, when it is a training form (null: an inference graph).</summary>
    public TrainingRoles? Training { get; init; }

    /// <summary>Trainable parameters, not counting buffers.</summary>
    public long TrainableCount => Graph.Params.Where(p => !p.Buffer).Sum(p => p.Type.Shape.Elements);
}

/// <summary>A <see cref="GraphBuilder"/> that also records parameter roles.</summary>
public sealed class ModelBuilder
{
    private readonly Dictionary<string, ParamInfo> _info = new(StringComparer.Ordinal);

    /// <summary>Starts a model.</summary>
    public ModelBuilder(string name, DType dtype)
    {
        B = new GraphBuilder(name);
        DType = dtype;
    }

    /// <summary>The underlying graph builder.</summary>
    public GraphBuilder B { get; }

    /// <summary>Element type of every parameter and activation.</summary>
    public DType DType { get; }

    /// <summary>Declares a parameter with its role.</summary>
    public Value Param(string name, ParamInfo info, params int[] shape)
    {
        _info[name] = info;
        return B.Param(name, TensorType.Of(DType, shape), info.Role is ParamRole.RunningMean or ParamRole.RunningVar);
    }

    /// <summary>The training form being built, or null for an eval graph.</summary>
    public TrainingForm? Training { get; init; }

    /// <summary>The training graph's step input, when some block drops paths.</summary>
    public Value? StepInput { get; set; }

    /// <summary>Blocks built so far (seeds each block's DropPath).</summary>
    public int Blocks { get; set; }

    /// <summary>The updated running statistics of the training-mode BatchNorms, in build order.</summary>
    public List<Value> RunningUpdates { get; } = [];

    /// <summary>The finished model.</summary>
    public Model Build() => new(B.Build(), _info);
}
