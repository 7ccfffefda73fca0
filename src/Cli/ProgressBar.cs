namespace ShiftWise.Cli;

/// <summary>
/// A one-line bar redrawn in place on a terminal; elsewhere (a log, a pipe) one line per tenth of the work. Written
/// here rather than with Spectre.Console's live progress, which needs an interactive terminal and leaves a redirected
/// log without the lines a long run should print (docs/ARCHITECTURE.md).
/// </summary>
public sealed class ProgressBar(TextWriter w, bool live)
{
    private int _lastTenth = -1;
    private long _lastDraw;
    private bool _drawn;

    /// <summary>A bar on <paramref name="w"/>, live when it is the console's error stream on a terminal.</summary>
    public static ProgressBar For(TextWriter w) =>
        new(w, ReferenceEquals(w, Console.Error) && !Console.IsErrorRedirected);

    /// <summary>Shows <paramref name="done"/> of <paramref name="total"/> between a prefix and a suffix.</summary>
    public void Update(int done, int total, string prefix, string suffix)
    {
        int tenth = done * 10 / Math.Max(1, total);
        string Line()
        {
            int width = 24, filled = done * width / Math.Max(1, total);
            return $"{prefix}[{new string('#', filled)}{new string('.', width - filled)}] {done}/{total}{suffix}";
        }
        if (live)
        {
            long now = Environment.TickCount64;
            if (now - _lastDraw < 200 && done != total) return;
            _lastDraw = now;
            w.Write("\r" + Line() + "\u001b[K");
            _drawn = true;
        }
        else if (tenth != _lastTenth && tenth > 0)
        {
            _lastTenth = tenth;
            w.WriteLine(Line());
        }
        if (done == total) _lastTenth = -1;
    }

    /// <summary>Removes a live bar (before other output).</summary>
    public void Clear()
    {
        if (live && _drawn)
        {
            w.Write("\r\u001b[K");
            _drawn = false;
        }
    }
}
