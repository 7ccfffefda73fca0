using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using ShiftWise.Frontend;
using ShiftWise.Frontend.Zoo;
using ShiftWise.IR;

namespace ShiftWise.Cli;

/// <summary>
/// The MODEL argument and the options that shape a preset, shared by every command that takes a model.
/// </summary>
public sealed class ModelOptions
{
    /// <summary>MODEL: a preset or a .swir file.</summary>
    public Argument<string> Model { get; } = new("MODEL")
    {
        Description = $"A preset ({string.Join(", ", ModelSource.Names)}) or a .swir file.",
    };

    private readonly Option<string?> _inChans = new("--in-chans") { Description = "Input image channels." };
    private readonly Option<string?> _numClasses = new("--num-classes")
    {
        Description = "Classes of the head (default: the checkpoint's head, else 1000).",
    };
    private readonly Option<string?> _depths = new("--depths") { Description = "Blocks per stage, e.g. 3,3,18,3." };
    private readonly Option<string?> _dims = new("--dims") { Description = "Channels per stage, e.g. 80,160,320,640." };
    private readonly Option<string?> _kernel = new("--kernel-size")
    {
        Description = "Big kernel per stage, then the small kernel, e.g. 51,49,47,13,3.",
    };
    private readonly Option<string?> _ghost = new("--ghost-ratio")
    {
        Description = "Fraction of channels an SW layer passes through (0.23).",
    };
    private readonly Option<string?> _nPath = new("--n-path")
    {
        Description = "Parallel small convs per SW layer (2).",
    };
    private readonly Option<string?> _nRep = new("--n-rep") { Description = "Shift replicas per SW layer (4)." };
    private readonly Option<string?> _width = new("--width-factor")
    {
        Description = "Multiplies every stage width (1).",
    };
    private readonly Option<string?> _layerScale = new("--layer-scale-init")
    {
        Description = "Layer-scale init; <= 0 removes layer scale (1e-6).",
    };
    private readonly Option<string?> _stemStride = new("--stem-stride")
    {
        Description = "Total stride of the stem: 4 (the original) or 2 (small images, e.g. 28x28).",
    };
    private readonly Option<string?> _dropPath = new("--drop-path")
    {
        Description = "Maximum stochastic-depth rate, linear over the blocks (training only; 0).",
    };
    private readonly Option<bool> _noBn = new("--no-bn") { Description = "SW layers without their three batch norms." };
    private readonly Option<string?> _batch = new("--batch") { Description = "Batch size (1)." };
    private readonly Option<string?> _imageSize = new("--image-size")
    {
        Description = "Input size: N (square) or HxW, e.g. 512x640 (224).",
    };
    private readonly Option<string?> _features = new("--features")
    {
        Description = "Backbone mode: return these stages' outputs, each through its LayerNorm norm{i} (NCHW, no "
            + "head), e.g. 0,1,2,3.",
    };
    private readonly Option<string?> _channels = new("--channels") { Description = "sw-layer: channels (80)." };
    private readonly Option<string?> _height = new("--height") { Description = "sw-layer: height (56)." };
    private readonly Option<string?> _widthPx = new("--width") { Description = "sw-layer: width (56)." };
    private readonly Option<string?> _big = new("--big") { Description = "sw-layer: big kernel (51)." };
    private readonly Option<string?> _small = new("--small") { Description = "sw-layer: small kernel (3)." };
    private readonly Option<string?> _checkpointKey = new("--checkpoint-key")
    {
        Description = "The entry of a .pth checkpoint that holds the weights, e.g. model_ema (default: model, "
            + "state_dict or model_ema, the first present, else a bare state_dict).",
    };

    /// <summary>Adds the argument and options to a command.</summary>
    public void AddTo(Command cmd)
    {
        cmd.Arguments.Add(Model);
        foreach (var o in new Option[]
                 {
                     _inChans, _numClasses, _depths, _dims, _kernel, _ghost, _nPath, _nRep, _width, _layerScale,
                         _stemStride, _dropPath, _noBn,
                     _batch, _imageSize, _features, _channels, _height, _widthPx, _big, _small, _checkpointKey,
                 })
        {
            cmd.Options.Add(o);
        }
    }

    /// <summary>Reads the options into <see cref="ModelArgs"/>; a malformed value names its option.</summary>
    public ModelArgs Read(ParseResult r) => new()
    {
        InChans = Int(r, _inChans),
        NumClasses = Int(r, _numClasses),
        Depths = Ints(r, _depths),
        Dims = Ints(r, _dims),
        KernelSize = Ints(r, _kernel),
        GhostRatio = Dbl(r, _ghost),
        NPath = Int(r, _nPath),
        NRep = Int(r, _nRep),
        WidthFactor = Dbl(r, _width),
        LayerScaleInit = Dbl(r, _layerScale),
        NoBn = r.GetValue(_noBn),
        StemStride = Int(r, _stemStride),
        DropPath = Dbl(r, _dropPath),
        Batch = Int(r, _batch),
        ImageSize = Image(r).Height,
        ImageWidth = Image(r).Width,
        Features = Ints(r, _features),
        Channels = Int(r, _channels),
        Height = Int(r, _height),
        Width = Int(r, _widthPx),
        Big = Int(r, _big),
        Small = Int(r, _small),
        CheckpointKey = r.GetValue(_checkpointKey),
    };

    // --image-size N or HxW: the height, and the width when it differs
    private (int? Height, int? Width) Image(ParseResult r)
    {
        var s = r.GetValue(_imageSize);
        if (s is null) return (null, null);
        var parts = s.Split('x', 'X');
        if (parts.Length is 1 or 2 && parts.All(p => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture,
                out _)))
        {
            var v = parts.Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToArray();
            return (v[0], v.Length == 2 ? v[1] : null);
        }
        throw new OptionException($"option --image-size: '{s}' is not N or HxW (e.g. 224 or 512x640)");
    }

    /// <summary>Parses an integer option value, naming the option when it is not one.</summary>
    public static int? Int(ParseResult r, Option<string?> o)
    {
        var s = r.GetValue(o);
        if (s is null) return null;
        return int.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int v)
            ? v
            : throw new OptionException($"option {o.Name}: '{s}' is not an integer");
    }

    /// <summary>Parses a number option value.</summary>
    public static double? Dbl(ParseResult r, Option<string?> o)
    {
        var s = r.GetValue(o);
        if (s is null) return null;
        return double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && double.IsFinite(v)
            ? v
            : throw new OptionException($"option {o.Name}: '{s}' is not a number");
    }

    /// <summary>A comma-separated list of integers (null when the option is absent).</summary>
    public static int[]? Ints(ParseResult r, Option<string?> o)
    {
        var s = r.GetValue(o);
        if (s is null) return null;
        var parts = s.Split(',', StringSplitOptions.TrimEntries);
        var v = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out v[i]))
            {
                throw new OptionException($"option {o.Name}: '{s}' is not a comma-separated list of integers");
            }
        }
        return v;
    }
}
