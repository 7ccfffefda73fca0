using System.Diagnostics;

namespace ShiftWise.Runtime.Compile;

/// <summary>
/// Phase times of a compile printed to standard error when SWC_TRACE_PHASES=1: the milliseconds since the process
/// started at each mark, to see where the time to the first logits goes.
/// </summary>
public static class PhaseTrace
{
    private static readonly bool On = Environment.GetEnvironmentVariable("SWC_TRACE_PHASES") == "1";

    /// <summary>Prints a phase mark when tracing is on.</summary>
    public static void Mark(string what)
    {
        if (!On) return;
        var t = DateTime.Now - Process.GetCurrentProcess().StartTime;
        Console.Error.WriteLine($"[phase] {t.TotalMilliseconds,8:F1} ms {what}");
    }
}
