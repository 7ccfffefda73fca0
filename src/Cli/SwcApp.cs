using System.CommandLine;
using ShiftWise.Cli.Commands;
using ShiftWise.IR;

namespace ShiftWise.Cli;

/// <summary>Exit codes of swc (documented in docs/commands.md).</summary>
public static class ExitCodes
{
    /// <summary>Success.</summary>
    public const int Ok = 0;
    /// <summary>The command line could not be parsed (unknown option, missing argument).</summary>
    public const int Usage = 1;
    /// <summary>An input was rejected: a model, weights or data file, or an option value.</summary>
    public const int BadInput = 2;
    /// <summary>A bug in swc: an unexpected exception (the stack trace is printed).</summary>
    public const int Internal = 70;
}

/// <summary>Builds the command tree and runs it with the given writers (tests pass their own).</summary>
public static class SwcApp
{
    /// <summary>Parses and runs; returns the exit code.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var root = new RootCommand("swc: the ShiftWise compiler. Compiles ShiftWise networks to fused kernels.");
        var ctx = new CommandContext(stdout, stderr);
        root.Subcommands.Add(InspectCommand.Create(ctx));
        root.Subcommands.Add(RunCommand.Create(ctx));
        root.Subcommands.Add(CompileCommand.Create(ctx));
        root.Subcommands.Add(EmitCommand.Create(ctx));
        root.Subcommands.Add(ExportOnnxCommand.Create(ctx));
        root.Subcommands.Add(GradCommand.Create(ctx));
        root.Subcommands.Add(TrainCommand.Create(ctx));
        root.Subcommands.Add(BenchCommand.Create(ctx));
        root.Subcommands.Add(TuneCommand.Create(ctx));
        root.Subcommands.Add(DemoCommand.Create(ctx));
        foreach (var v in root.Options.OfType<VersionOption>())
        {
            v.Action = new PrintVersion(ctx.Out); // the default prints the entry assembly's, wrong when hosted
        }
        var parse = root.Parse(args);
        var config = new InvocationConfiguration
        {
            Output = stdout,
            Error = stderr,
            EnableDefaultExceptionHandler = false,
        };
        return Guard(() => parse.Invoke(config), stderr);
    }

    /// <summary>
    /// Runs a command and maps what it throws to the exit codes: a rejected input (<see cref="IrException"/>) prints
    /// its message and exits 2; anything else is a bug in swc: "internal error" and the stack trace, exit 70.
    /// </summary>
    public static int Guard(Func<int> command, TextWriter stderr)
    {
        try
        {
            return command();
        }
        catch (IrException e)
        {
            stderr.WriteLine(e is SwirParseException ? e.Message : $"error: {e.Message}");
            return ExitCodes.BadInput;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            stderr.WriteLine($"internal error (a bug in swc; please report it with the command line): {e}");
            return ExitCodes.Internal;
        }
    }
}

/// <summary>Prints swc's own version (the Cli assembly's, not the host process's).</summary>
internal sealed class PrintVersion(TextWriter o) : System.CommandLine.Invocation.SynchronousCommandLineAction
{
    public static string Version => typeof(PrintVersion).Assembly.GetName().Version!.ToString(3);

    public override int Invoke(ParseResult parseResult)
    {
        o.WriteLine(Version);
        return ExitCodes.Ok;
    }
}

/// <summary>The writers a command prints to.</summary>
public sealed record CommandContext(TextWriter Out, TextWriter Err);
