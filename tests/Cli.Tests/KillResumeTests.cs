using ShiftWise.IR;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using ShiftWise.Frontend.IO;

namespace ShiftWise.Cli.Tests;

/// <summary>
/// swc train killed for real (SIGKILL of a child process) and resumed in new processes ends with the uninterrupted
/// run's weights, byte for byte: once killed in the middle of an epoch, once while it writes a checkpoint. The second
/// kill is made deterministic by AtomicFile's test-only hook (SWC_TEST_PAUSE_WRITE): the chosen checkpoint write stops
/// with half of its bytes in the temporary file and says so, and the test kills on that line.
/// </summary>
public sealed class KillResumeTests
{
    /// <summary>
    /// A tiny recipe that still uses every source of randomness a resume must reproduce (shuffle, flips, shifts,
    /// erasing, drop-path, label smoothing) and accumulation: 192 images, batch 16×2, so 12 steps (6 optimizer steps)
    /// per epoch, 3 epochs. A whole run takes about 4 s here.
    /// </summary>
    private const string Recipe = """
        {
          "model": { "preset": "sw-fmnist", "dims": [8, 16, 16, 16], "kernel_size": [9, 7, 5, 3, 3], "drop_path": 0.2 },
          "data": { "hflip": true, "shift": 2, "erase": 0.5, "limit_train": 192, "limit_test": 50 },
          "train": { "epochs": 3, "batch": 16, "accumulate": 2, "lr": 3e-3, "min_lr": 1e-4, "warmup_epochs": 1,
                     "label_smoothing": 0.1, "seed": 7, "eval_batch": 25 },
          "out": "unused"
        }
        """;

    /// <summary>Every wait's bound: a whole run takes about 4 s here, so a margin of 50×, not a speed claim.</summary>
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(4);

    private const string PauseVariable = "SWC_TEST_PAUSE_WRITE";

    private static readonly Regex EpochTwoMidway = new(@"^epoch 2/3 \[[#.]+\] (\d+)/(\d+) ");

    private static readonly Regex Paused = new($@"^{PauseVariable}: (.+): (\d+) of (\d+) bytes written, pausing$");

    [Fact]
    public void KilledMidEpochAndWhileCheckpointingThenResumedEndsWithTheSameBytes()
    {
        Assert.SkipUnless(FashionMnist.Installed(), "Fashion-MNIST is not installed (Debian's dataset-fashion-mnist)");
        var root = Directory.CreateTempSubdirectory("swc-kill-resume-").FullName;
        var cfg = Path.Combine(root, "tiny.json");
        File.WriteAllText(cfg, Recipe);
        string cache = Path.Combine(root, "cache"), whole = Path.Combine(root, "whole");
        string killed = Path.Combine(root, "killed");
        string ckpt = Path.Combine(killed, "checkpoint.safetensors");
        string weights = Path.Combine(killed, "weights.safetensors");

        // 1. the reference: one process, start to end
        using (var c = new Child(cache, null, "train", cfg, "--out", whole)) c.RunToEnd();

        // 2. killed in the middle of epoch 2; the paused write of checkpoint 2 (the process's second) makes sure that,
        // however late the kill lands, epoch 2 never reaches the disk
        using (var c = new Child(cache, "checkpoint.safetensors:2", "train", cfg, "--out", killed))
        {
            var m = c.WaitFor(EpochTwoMidway, "a progress line from the middle of epoch 2");
            Assert.True(Num(m, 1) < Num(m, 2), m.Value);
            c.Kill();
        }
        Assert.Equal("1", SafeTensors.ReadMetadata(ckpt)["epochs_done"]);
        Assert.False(File.Exists(weights));

        // 3. resumed in a new process, which finishes epoch 2 and is killed half-way through writing checkpoint 3
        using (var c = new Child(cache, "checkpoint.safetensors:2", "train", cfg, "--out", killed, "--resume"))
        {
            var m = c.WaitFor(Paused, "the pause in the write of checkpoint 3");
            c.Kill();
            Assert.Contains("resuming after epoch 1", c.Output);
            // the kill hit the write itself: the temporary holds the announced half; the old checkpoint is in place
            string tmp = m.Groups[1].Value;
            Assert.Equal(killed, Path.GetDirectoryName(tmp));
            Assert.Matches(@"^\.checkpoint\.safetensors\.[0-9a-f]{32}\.tmp$", Path.GetFileName(tmp));
            Assert.Equal(Num(m, 2), new FileInfo(tmp).Length);
            Assert.True(Num(m, 2) < Num(m, 3));
        }
        Assert.Equal("2", SafeTensors.ReadMetadata(ckpt)["epochs_done"]);
        Assert.False(File.Exists(weights));

        // 4. resumed again, to the end
        using (var c = new Child(cache, null, "train", cfg, "--out", killed, "--resume"))
        {
            c.RunToEnd();
            Assert.Contains("resuming after epoch 2", c.Output);
        }
        Assert.Equal(File.ReadAllBytes(Path.Combine(whole, "weights.safetensors")), File.ReadAllBytes(weights));
        SameCheckpoint(Path.Combine(whole, "checkpoint.safetensors"), ckpt);
        string Metrics(string dir) => File.ReadAllText(Path.Combine(dir, "metrics.json"));
        Assert.Equal(Results(Metrics(whole)), Results(Metrics(killed)));
    }

    private static long Num(Match m, int group) => long.Parse(m.Groups[group].Value, CultureInfo.InvariantCulture);

    /// <summary>
    /// The final checkpoints hold the same tensors (weights and optimizer moments) byte for byte and the same metadata;
    /// of the per-epoch metrics only the results compare, the seconds and images per second being wall-clock times.
    /// </summary>
    private static void SameCheckpoint(string a, string b)
    {
        var ta = SafeTensors.Read(a);
        var tb = SafeTensors.Read(b);
        Assert.Equal(ta.Keys, tb.Keys);
        Assert.Contains(ta.Keys, k => k.StartsWith("optim/", StringComparison.Ordinal));
        foreach (var (k, t) in ta) Assert.True(t.Bytes().SequenceEqual(tb[k].Bytes()), $"checkpoint's {k} differs");
        var ma = SafeTensors.ReadMetadata(a);
        var mb = SafeTensors.ReadMetadata(b);
        Assert.Equal(ma.Keys.Order(), mb.Keys.Order());
        foreach (var k in ma.Keys.Where(k => k != "metrics")) Assert.Equal(ma[k], mb[k]);
        Assert.Equal("3", mb["epochs_done"]);
        Assert.Equal(Results(ma["metrics"]), Results(mb["metrics"]));
    }

    /// <summary>Per epoch: its number, train loss and accuracy, test loss and accuracy, as written (exact).</summary>
    private static List<string> Results(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        var epochs = root.ValueKind == JsonValueKind.Array ? root : root.GetProperty("epochs");
        string[] fields = ["Epoch", "TrainLoss", "TrainAccuracy", "TestLoss", "TestAccuracy"];
        var rows = epochs.EnumerateArray()
            .Select(e => string.Join(" ", fields.Select(f => e.GetProperty(f).GetRawText()))).ToList();
        Assert.Equal(3, rows.Count);
        return rows;
    }

    /// <summary>
    /// swc train as a child process, its stdout and stderr lines collected as they come. This is SwcRun.Start with
    /// one more environment variable, the write-pause hook, set or explicitly removed.
    /// </summary>
    private sealed class Child : IDisposable
    {
        private readonly Process _p;
        private readonly BlockingCollection<string> _lines = [];
        private readonly StringBuilder _all = new();
        private int _open = 2;

        public Child(string cacheDir, string? pause, params string[] args)
        {
            // the test process never sets the pause variable itself, so a child without one inherits none
            var env = pause is null ? new Dictionary<string, string>() : new Dictionary<string, string> { [PauseVariable] = pause };
            _p = SwcRun.Start(cacheDir, env, args);
            _p.OutputDataReceived += (_, e) => Receive(e.Data);
            _p.ErrorDataReceived += (_, e) => Receive(e.Data);
            _p.BeginOutputReadLine();
            _p.BeginErrorReadLine();
        }

        /// <summary>Everything received so far, stdout and stderr interleaved as they arrived.</summary>
        public string Output
        {
            get
            {
                lock (_all) return _all.ToString();
            }
        }

        private void Receive(string? line)
        {
            if (line is null)
            {
                if (Interlocked.Decrement(ref _open) == 0) _lines.CompleteAdding();
                return;
            }
            lock (_all) _all.AppendLine(line);
            _lines.Add(line);
        }

        /// <summary>Waits for the first line (from now on) that matches <paramref name="re"/>.</summary>
        public Match WaitFor(Regex re, string what)
        {
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < Patience)
            {
                if (_lines.TryTake(out var line, Patience - clock.Elapsed))
                {
                    if (re.Match(line) is { Success: true } m) return m;
                }
                else if (_lines.IsCompleted)
                {
                    _p.WaitForExit();
                    Assert.Fail($"swc ended (exit code {_p.ExitCode}) before {what}; its output:\n{Output}");
                }
            }
            Assert.Fail($"no {what} within {Patience}; output so far:\n{Output}");
            return null!;
        }

        /// <summary>SIGKILLs the process and checks that the signal, not a normal exit, ended it.</summary>
        public void Kill()
        {
            _p.Kill(entireProcessTree: true);
            Assert.True(_p.WaitForExit(Patience), "swc outlived SIGKILL");
            _p.WaitForExit();
            Assert.True(_p.ExitCode == 128 + 9, $"swc exited with {_p.ExitCode}, not by SIGKILL; output:\n{Output}");
        }

        public void RunToEnd()
        {
            Assert.True(_p.WaitForExit(Patience), $"swc train did not end within {Patience}; output so far:\n{Output}");
            _p.WaitForExit();
            Assert.True(_p.ExitCode == 0, $"swc train failed ({_p.ExitCode}):\n{Output}");
        }

        public void Dispose()
        {
            if (!_p.HasExited) _p.Kill(entireProcessTree: true);
            _p.WaitForExit(); // the output readers are done before the collection goes
            _p.Dispose();
            _lines.Dispose();
        }
    }
}
