using ShiftWise.IR;

namespace ShiftWise.Runtime.Compile;

/// <summary>
/// The names of a model's classes, by index: the ImageNet-1k names that ship with swc (Data/imagenet-1k-classes.txt,
/// written by tools/fixtures/gen_imagenet_classes.py from torchvision), or a file of one name per line.
/// </summary>
public static class ClassNames
{
    private static readonly Lazy<string[]> ImageNetNames = new(() =>
    {
        using var s = typeof(ClassNames).Assembly.GetManifestResourceStream("imagenet-1k-classes.txt")
            ?? throw new InvalidOperationException("the ImageNet-1k class names are not embedded in swc");
        using var r = new StreamReader(s);
        return r.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
    });

    /// <summary>The 1000 ImageNet-1k class names in index order.</summary>
    public static IReadOnlyList<string> ImageNet => ImageNetNames.Value;

    /// <summary>
    /// The names for a head of <paramref name="classes"/> classes: <paramref name="file"/>'s lines when given (their
    /// count must match), else the ImageNet-1k names for 1000 classes, else null (classes are shown by index).
    /// </summary>
    public static IReadOnlyList<string>? For(int classes, string? file)
    {
        if (file is null) return classes == 1000 ? ImageNet : null;
        string[] lines;
        try
        {
            lines = File.ReadAllLines(file).Select(l => l.Trim()).Where(l => l.Length > 0).ToArray();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new OptionException($"option --labels: cannot read {file}: {e.Message}");
        }
        if (lines.Length != classes)
        {
            throw new OptionException($"option --labels: {file} names {lines.Length} classes; the model has {classes}");
        }
        return lines;
    }
}
