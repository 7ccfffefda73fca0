using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;

namespace ShiftWise.Cli.Tests;

/// <summary>
/// The house rules of docs/ARCHITECTURE.md that the compiler cannot enforce: one place starts a pass pipeline, the
/// command line only talks to the driver, and the sources keep to 400 lines a file and 120 columns a line.
/// </summary>
public class ArchitectureTests
{
    private static string Src => Path.Combine(SwcRun.Repo, "src");

    private static IEnumerable<string> Sources() => Directory.EnumerateFiles(Src, "*.cs", SearchOption.AllDirectories)
        .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
            && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal));

    [Fact]
    public void APassPipelineIsStartedInExactlyOnePlace()
    {
        var starts = Sources().SelectMany(f => File.ReadLines(f).Select((l, i) => (File: f, Line: i + 1, Text: l)))
            .Where(l => l.Text.Contains("new PassManager(", StringComparison.Ordinal)).ToList();
        var only = Assert.Single(starts);
        Assert.EndsWith(Path.Combine("Runtime", "Compile", "Driver.cs"), only.File);
    }

    [Fact]
    public void TheCommandLineReferencesNoExecutorPassManagerPlanOrLowering()
    {
        // every type swc.dll names, whether in a signature, a member access or a construction
        using var pe = new PEReader(File.OpenRead(typeof(SwcApp).Assembly.Location));
        var md = pe.GetMetadataReader();
        var names = md.TypeReferences.Select(h => md.GetTypeReference(h))
            .Select(t => $"{md.GetString(t.Namespace)}.{md.GetString(t.Name)}").ToList();
        Assert.Contains("ShiftWise.Runtime.Compile.Driver", names); // the check sees the driver, so it sees types
        string[] forbidden = ["ShiftWise.IR.Reference.", "ShiftWise.Passes.PassManager", "ShiftWise.Passes.Lowering.",
            "ShiftWise.CodegenCuda.", "ShiftWise.CodegenCpu.", "ShiftWise.Runtime.Cpu.CpuLowering",
            "ShiftWise.Runtime.Cpu.CpuPlan", "ShiftWise.Runtime.Cuda.CudaTargetPlan"];
        var found = names.Where(n => forbidden.Any(f => n.StartsWith(f, StringComparison.Ordinal))).ToList();
        Assert.True(found.Count == 0, "swc.dll references " + string.Join(", ", found));
    }

    [Fact]
    public void SourceFilesKeepTo400LinesAnd120Columns()
    {
        var problems = new List<string>();
        foreach (var f in Sources())
        {
            var lines = File.ReadAllLines(f);
            if (lines.Length > 400) problems.Add($"{f}: {lines.Length} lines");
            problems.AddRange(lines.Select((l, i) => (l, i)).Where(x => x.l.Length > 120)
                .Select(x => $"{f}:{x.i + 1}: {x.l.Length} columns"));
        }
        Assert.Empty(problems);
    }
}
