namespace ShiftWise.Cli;

/// <summary>Entry point of the swc command.</summary>
public static class Program
{
    /// <summary>Runs swc with the process's console.</summary>
    public static int Main(string[] args)
    {
        ShiftWise.Runtime.Compile.PhaseTrace.Mark("main");
        return SwcApp.Run(args, Console.Out, Console.Error);
    }
}
