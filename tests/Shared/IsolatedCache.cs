using System.Reflection;
using System.Runtime.CompilerServices;
using ShiftWise.Runtime;
using Xunit.v3;

[assembly: ShiftWise.Tests.IsolatedCache]

namespace ShiftWise.Tests;

/// <summary>
/// Gives every test its own empty cache folder (<see cref="SwcCache.UseRoot"/>, which flows into the tasks and threads
/// the test starts), removed after the test, so neither a developer's ~/.cache/swc or $SWC_CACHE_DIR (tuned
/// configurations, cached kernels) nor what another test wrote can change what a test sees. A child process a test
/// starts inherits SWC_CACHE_DIR, which the module initializer points at a folder private to this test process.
/// In-memory caches of compiled kernels stay shared: they are keyed by the full content they were compiled from.
/// </summary>
[AttributeUsage(AttributeTargets.Assembly)]
public sealed class IsolatedCacheAttribute : BeforeAfterTestAttribute
{
    private static readonly string ProcessRoot =
        Path.Combine(Path.GetTempPath(), $"swc-test-{Environment.ProcessId}-{Guid.NewGuid():N}");

    private static int _next;
    private static readonly AsyncLocal<(IDisposable Scope, string Dir)?> Current = new();

#pragma warning disable CA2255 // a module initializer is the one hook that runs before any test or fixture of the assembly
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void PointTheEnvironmentAtThisProcess()
    {
        Directory.CreateDirectory(ProcessRoot);
        Environment.SetEnvironmentVariable("SWC_CACHE_DIR", Path.Combine(ProcessRoot, "process"));
        AppDomain.CurrentDomain.ProcessExit += (_, _) => TryDelete(ProcessRoot);
    }

    /// <inheritdoc/>
    public override void Before(MethodInfo methodUnderTest, IXunitTest test)
    {
        var dir = Path.Combine(ProcessRoot, "t" + Interlocked.Increment(ref _next).ToString(System.Globalization.CultureInfo.InvariantCulture));
        Current.Value = (SwcCache.UseRoot(dir), dir);
    }

    /// <inheritdoc/>
    public override void After(MethodInfo methodUnderTest, IXunitTest test)
    {
        if (Current.Value is not { } c) return;
        c.Scope.Dispose();
        Current.Value = null;
        TryDelete(c.Dir);
    }

    private static void TryDelete(string dir)
    {
        try
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
        catch (IOException)
        {
            // a background compile the test left behind may still write here; the process folder goes at exit
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
