using System.Diagnostics;
using static ShiftWise.Cli.Tests.SwcRun;

namespace ShiftWise.Cli.Tests;

/// <summary>
/// bench/cpu_check.sh (issue 24's evidence) is a benchmark, not a test; what CI checks is that the script parses and
/// that its table reads every file the script writes and judges each acceptance line (the table's own self-test: a run
/// of made-up files, each verdict asserted).
/// </summary>
public sealed class BenchScriptTests
{
    private static (int Code, string Output) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output + err.Result);
    }

    [Fact]
    public void TheCpuCheckScriptParsesAndItsTablePassesItsSelfTest()
    {
        var (code, output) = Run("bash", "-n", Path.Combine(Repo, "bench", "cpu_check.sh"));
        Assert.True(code == 0, output);
        (code, output) = Run("/usr/bin/python3", Path.Combine(Repo, "bench", "cpu_check_table.py"), "--self-test");
        Assert.True(code == 0, output);
        Assert.Contains("cpu_check_table self-test: ok", output);
    }
}
