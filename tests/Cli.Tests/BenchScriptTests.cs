using static ShiftWise.Tests.ChildProcess;
using static ShiftWise.Cli.Tests.SwcRun;

namespace ShiftWise.Cli.Tests;

/// <summary>
/// bench/cpu_check.sh (issue 24's evidence) is a benchmark, not a test; what CI checks is that the script parses and
/// that its table reads every file the script writes and judges each acceptance line (the table's own self-test: a run
/// of made-up files, each verdict asserted).
/// </summary>
public sealed class BenchScriptTests
{
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
