using System.Collections.Concurrent;
using System.Reflection;
using Scriban;
using Scriban.Runtime;
using ShiftWise.IR;

namespace ShiftWise.Codegen;

/// <summary>
/// Renders the embedded Scriban templates of the assembly it is compiled into (this file is linked into both
/// CodegenCpu and CodegenCuda, so each renders its own templates with the same settings). Each template is parsed once;
/// settings follow DESIGN.md: strict variables, no relaxed member access, no loop or output limits, "\n" newlines.
/// View-model members are exposed in snake_case. A template error is an exception naming the template and line, never
/// silent output.
/// </summary>
internal static class TemplateRenderer
{
    private static readonly ConcurrentDictionary<string, Template> Parsed = new(StringComparer.Ordinal);

    /// <summary>Renders template <paramref name="name"/> (e.g. "sw_cross.cs.sbn") with a view-model.</summary>
    public static string Render(string name, object model)
    {
        var template = Parsed.GetOrAdd(name, Load);
        var ctx = new TemplateContext
        {
            StrictVariables = true,
            EnableRelaxedMemberAccess = false,
            LoopLimit = 0,
            LimitToString = 0,
            RecursiveLimit = 0,
            NewLine = "\n",
            MemberRenamer = StandardMemberRenamer.Default,
        };
        var globals = new ScriptObject();
        globals.Import(model, renamer: StandardMemberRenamer.Default);
        if (model is ITemplateFunctions f)
        {
            foreach (var (fname, function) in f.Functions) globals.Import(fname, function);
        }
        ctx.PushGlobal(globals);
        try
        {
            return template.Render(ctx).Replace("\r\n", "\n", StringComparison.Ordinal);
        }
        catch (Scriban.Syntax.ScriptRuntimeException e)
        {
            throw new IrException($"template {name}: {e.Message}", e);
        }
    }

    private static Template Load(string name)
    {
        using var s = Assembly.GetExecutingAssembly().GetManifestResourceStream(name)
            ?? throw new IrException($"template {name} is not embedded in "
            + $"{Assembly.GetExecutingAssembly().GetName().Name}");
        using var r = new StreamReader(s);
        var t = Template.Parse(r.ReadToEnd(), name);
        if (t.HasErrors)
        {
            throw new IrException($"template {name} does not parse: {string.Join("; ", t.Messages)}");
        }
        return t;
    }
}

/// <summary>Literals for generated code, printed the same way in every target.</summary>
internal static class Literal
{
    /// <summary>A float literal: shortest round-trip digits, invariant culture, an 'f' suffix (1E-05f).</summary>
    public static string F(double v)
    {
        float f = (float)v;
        if (float.IsNaN(f) || float.IsInfinity(f)) throw new ArgumentException($"{v} has no float literal");
        var t = f.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        if (!t.Contains('.') && !t.Contains('E')) t += ".0";
        return t + "f";
    }
}

/// <summary>
/// A view-model that also gives its template functions (Scriban imports properties, not methods): each is called in
/// the template by its name, e.g. <c>{{ ld "x" "i" }}</c>.
/// </summary>
internal interface ITemplateFunctions
{
    /// <summary>The functions by their template name.</summary>
    IEnumerable<(string Name, Delegate Function)> Functions { get; }
}
