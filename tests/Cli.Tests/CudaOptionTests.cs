using System.CommandLine;
using System.Diagnostics;
using ShiftWise.Cli.Commands;
using ShiftWise.Frontend.IO;
using ShiftWise.Runtime.Cuda;

namespace ShiftWise.Cli.Tests;

/// <summary>
/// swc run and swc bench with --device cuda and the GPU-only options, without a GPU: which options each command takes,
/// the one-line refusal when there is no GPU (before any model work), the GPU-only options on the CPU, and how
/// --tf32 and --cuda-graph reach the executor up to the driver calls (the cuBLAS math mode, the graph replay).
/// </summary>
public sealed class CudaOptionTests
{
    private static readonly string[] Layer =
        ["sw-layer", "--channels", "8", "--height", "9", "--width", "9", "--big", "7"];

    private static void RequireNoGpu()
    {
        if (CudaDevice.Available) Assert.Skip("a GPU is present: tests/Gpu runs these commands on it");
    }

    public static TheoryData<string[]> CudaCommands() => new()
    {
        { ["run", .. Layer, "--device", "cuda"] },
        { ["run", .. Layer, "--device", "cuda", "--tf32", "--check-finite"] },
        { ["bench", .. Layer, "--device", "cuda"] },
        { ["bench", .. Layer, "--device", "cuda", "--cuda-graph", "--tf32", "--untuned", "--seconds", "1"] },
        // the device is checked before the model is read: a missing model file is not what is reported
        { ["run", "/nonexistent/m.swir", "--device", "cuda"] },
        { ["bench", "/nonexistent/m.swir", "--device", "cuda", "--cuda-graph"] },
    };

    [Theory]
    [MemberData(nameof(CudaCommands))]
    public void Without_a_GPU_the_options_parse_and_the_command_says_why_in_one_line(string[] args)
    {
        RequireNoGpu();
        var (code, o, e) = SwcRun.Swc(args);
        Assert.Equal(ExitCodes.BadInput, code); // not a usage error: every option was taken
        Assert.Equal("", o);
        Assert.Equal($"error: {CudaDevice.MissingReason}", e.TrimEnd('\n'));
        // the reason names what is missing: the driver library, or the driver's own answer
        Assert.Matches(@"(libcuda\.so\.1\) was not found|cuInit failed|reports no GPU|SWC_DISABLE)", e);
    }

    [Theory]
    [InlineData("run")]
    [InlineData("bench")]
    public async Task With_the_driver_disabled_the_reason_is_the_same_sentence_on_any_machine(string command)
    {
        // a child process, so SWC_DISABLE (read once per process) affects nothing else; a GPU machine gives the same
        using var p = SwcRun.Start(Runtime.SwcCache.Root, new Dictionary<string, string> { ["SWC_DISABLE"] = "cuda" },
            [command, .. Layer, "--device", "cuda", "--tf32"]);
        var ct = TestContext.Current.CancellationToken;
        var err = p.StandardError.ReadToEndAsync(ct);
        string o = await p.StandardOutput.ReadToEndAsync(ct);
        Assert.True(p.WaitForExit(300_000), "swc did not finish in 5 minutes");
        Assert.Equal(ExitCodes.BadInput, p.ExitCode);
        Assert.Equal("", o);
        Assert.Equal("error: The CUDA driver is disabled by SWC_DISABLE=cuda. There is no GPU to run on here.",
            (await err).TrimEnd('\n'));
    }

    public static TheoryData<string[], int, string> Refusals() => new()
    {
        // run has no graph replay to offer
        { ["run", .. Layer, "--device", "cuda", "--cuda-graph"], ExitCodes.Usage, "--cuda-graph" },
        { ["run", .. Layer, "--device", "gpu"], ExitCodes.BadInput,
            "option --device: 'gpu' is not available; this build runs on: cpu, cuda, reference" },
        { ["run", .. Layer, "--device", "CUDA"], ExitCodes.BadInput, "option --device: 'CUDA' is not available" },
        { ["bench", .. Layer, "--device", "reference", "--tf32"], ExitCodes.BadInput,
            "option --device: 'reference' is not available; this build benchmarks: cpu, cuda" },
        { ["run", .. Layer, "--device", "reference", "--check-finite"], ExitCodes.BadInput,
            "option --check-finite: checks the float32 kernels of --device cpu or cuda" },
        // a flag takes no word after it: 'yes' is left over as an argument
        { ["bench", .. Layer, "--device", "cuda", "--tf32", "yes"], ExitCodes.Usage, "yes" },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public void Bad_devices_and_combinations_are_named_before_the_GPU_is_looked_for(string[] args, int code,
        string message)
    {
        var (c, _, e) = SwcRun.Swc(args);
        Assert.Equal(code, c);
        Assert.Contains(message, e, StringComparison.Ordinal);
    }

    [Fact]
    public void On_the_cpu_both_commands_accept_the_GPU_only_options_and_they_change_nothing()
    {
        var dir = Directory.CreateTempSubdirectory("swc-cuda-opt-").FullName;
        string Logits(params string[] extra)
        {
            var y = Path.Combine(dir, $"y{extra.Length}.npy");
            var (code, _, e) = SwcRun.Swc(["run", .. Layer, "--device", "cpu", "--output", y, .. extra]);
            Assert.True(code == 0, e);
            return string.Join(",", Npy.Read(y).ToDoubles());
        }
        Assert.Equal(Logits(), Logits("--tf32"));
        var (bc, bo, be) = SwcRun.Swc(
            ["bench", .. Layer, "--device", "cpu", "--seconds", "0.01", "--untuned", "--tf32", "--cuda-graph"]);
        Assert.True(bc == 0, be);
        Assert.Contains("images/s", bo, StringComparison.Ordinal);
        Assert.DoesNotContain("TF32", bo, StringComparison.Ordinal);
        Assert.DoesNotContain("CUDA graph", bo, StringComparison.Ordinal);
    }

    private static ParseResult Parse(Func<CommandContext, Command> create, params string[] args)
    {
        var r = create(new CommandContext(TextWriter.Null, TextWriter.Null)).Parse(args);
        Assert.Empty(r.Errors);
        return r;
    }

    [Fact]
    public void The_flags_become_the_executors_options()
    {
        bool Tf32(params string[] extra) =>
            RunCommand.CudaRunOptionsOf(Parse(RunCommand.Create, [.. Layer, .. extra])).Tf32;
        Assert.False(Tf32("--device", "cuda"));
        Assert.True(Tf32("--device", "cuda", "--tf32"));
        Assert.False(Tf32("--tf32", "false"));
        foreach (var (graph, tf32) in new[] { (false, false), (true, false), (false, true), (true, true) })
        {
            var args = new List<string>(Layer) { "--device", "cuda" };
            if (graph) args.Add("--cuda-graph");
            if (tf32) args.Add("--tf32");
            var o = BenchCommand.CudaRunOptionsOf(Parse(BenchCommand.Create, [.. args]));
            Assert.Equal(new CudaRunOptions { Graphs = graph, Tf32 = tf32 }, o);
        }
    }

    [Fact]
    public void Tf32_sets_the_cublas_math_mode_and_nothing_else_does()
    {
        // cublasMath_t (cublas_api.h): CUBLAS_DEFAULT_MATH = 0, CUBLAS_TF32_TENSOR_OP_MATH = 3
        Assert.Equal(0, CudaExecutor.CublasMathMode(new CudaRunOptions()));
        Assert.Equal(3, CudaExecutor.CublasMathMode(new CudaRunOptions { Tf32 = true }));
        Assert.Equal(0, CudaExecutor.CublasMathMode(new CudaRunOptions { Graphs = true }));
    }

    [Fact]
    public void Cuda_graph_replays_from_the_third_run_and_never_without_the_flag()
    {
        var on = new CudaRunOptions { Graphs = true };
        var off = new CudaRunOptions { Tf32 = true };
        Assert.Equal([false, false, true, true, true],
            Enumerable.Range(0, 5).Select(r => CudaExecutor.ReplaysGraph(on, r)));
        Assert.All(Enumerable.Range(0, 5), r => Assert.False(CudaExecutor.ReplaysGraph(off, r)));
    }
}
