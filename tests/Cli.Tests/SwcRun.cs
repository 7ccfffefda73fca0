using System.Diagnostics;

namespace ShiftWise.Cli.Tests;

/// <summary>swc in this process with captured output, and the small ShiftWise_v2 the command tests use.</summary>
internal static class SwcRun
{
    /// <summary>A small sw-v2 (every stage, 24×24 images, 5 classes): the model name and its options.</summary>
    public static readonly string[] SmallSwV2 =
        ["sw-v2", "--depths", "1,1,1,1", "--dims", "8,16,16,32", "--kernel-size", "7,5,5,3,3", "--image-size", "24", "--num-classes", "5"];

    /// <summary>The repository's root folder (the one holding ShiftWise.Compiler.sln).</summary>
    public static string Repo { get; } = FindRepo();

    private static string FindRepo()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d is not null && !File.Exists(Path.Combine(d.FullName, "ShiftWise.Compiler.sln"))) d = d.Parent;
        return d?.FullName ?? throw new InvalidOperationException("repository root not found");
    }

    /// <summary>Runs swc with <paramref name="args"/>; the exit code and what it wrote to stdout and stderr.</summary>
    public static (int Code, string Out, string Err) Swc(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        return (SwcApp.Run(args, o, e), o.ToString(), e.ToString());
    }

    /// <summary>Starts swc as a child process (stdout and stderr redirected) with its own cache folder.</summary>
    public static Process Start(string cacheDir, params string[] args) => Start(cacheDir, new Dictionary<string, string>(), args);

    /// <summary>As <see cref="Start(string, string[])"/>, with more environment variables set for the child.</summary>
    public static Process Start(string cacheDir, IReadOnlyDictionary<string, string> env, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        psi.ArgumentList.Add(typeof(SwcApp).Assembly.Location);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["SWC_CACHE_DIR"] = cacheDir;
        foreach (var (k, v) in env) psi.Environment[k] = v;
        return Process.Start(psi)!;
    }
}
