using System.Text;
using ShiftWise.IR;

namespace ShiftWise.Tests.Shared;

/// <summary>What one reader did with the mutated inputs of a fuzz run.</summary>
/// <param name="Reader">The reader's name (for the note's table).</param>
/// <param name="Requested">Mutated inputs asked for (the count).</param>
/// <param name="Tried">Mutated inputs given to it: the count, unless the safety cap on time cut the run short.</param>
/// <param name="Rejected">Inputs it refused with the project's own exception (IrException or a subclass).</param>
/// <param name="Accepted">Inputs it read without complaint (a mutation can leave a file valid).</param>
/// <param name="Faults">Anything else: another exception type, an empty message, a hang, or an allocation out of proportion.</param>
public sealed record FuzzReport(string Reader, int Requested, int Tried, int Rejected, int Accepted, IReadOnlyList<string> Faults)
{
    /// <inheritdoc/>
    public override string ToString() =>
        $"{Reader}: {Tried} inputs, {Rejected} rejected, {Accepted} accepted, {Faults.Count} faults" +
        (Faults.Count == 0 ? "" : ":\n  " + string.Join("\n  ", Faults.Take(10)));
}

/// <summary>
/// A small mutation fuzzer for the project's readers: seeded, bounded by an input count (with a generous time cap as a
/// safety net). Each mutant is read on its own thread under a hang limit; the reader must return or throw an <see cref="IrException"/> with a message, and
/// must not allocate more than a bound proportional to the input (a 16-byte file must not make it allocate gigabytes).
/// Mutations: truncation, bit flips, interesting bytes, 32- and 64-bit extreme integers written over the data
/// (huge, negative, sign bits), inserted and repeated slices, and for text inputs numbers replaced by huge, negative,
/// fractional, NaN and exponent forms, deleted or inserted characters and deep nesting.
/// </summary>
public static class Fuzz
{
    private static readonly long[] Extremes =
        [0, -1, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, int.MaxValue, int.MinValue, uint.MaxValue, 1L << 31, 1L << 32, 1L << 40,
         long.MaxValue, long.MinValue, -2, 0x7FFFFFFFFFFFFFF0];

    private static readonly string[] TextNumbers =
        ["-1", "0", "-0", "99999999999999999999", "2147483648", "4294967296", "-2147483649", "1e308", "-1e308", "1e-320",
         "NaN", "nan", "Infinity", "-inf", "0.5", "1.5", "0x10", "007", "9223372036854775807", "18446744073709551616", ""];

    /// <summary>
    /// Feeds <paramref name="count"/> mutants of the <paramref name="seeds"/> to <paramref name="read"/> (or fewer when
    /// <paramref name="budget"/> runs out), and reports.
    /// </summary>
    public static FuzzReport Run(string reader, IReadOnlyList<byte[]> seeds, Action<byte[]> read, int count = 1500,
        TimeSpan? budget = null, bool text = false, int seed = 1, TimeSpan? perInput = null)
    {
        var rng = new Random(seed);
        var faults = new List<string>();
        int tried = 0, rejected = 0, accepted = 0;
        // the count bounds the run; the budget is only a safety cap against a runaway, 10x and more above what the
        // counts take here (1500 inputs: 1-6 s), and a run it cuts short fails (tests assert Tried == Requested)
        var limit = budget ?? TimeSpan.FromMinutes(5);
        var each = perInput ?? TimeSpan.FromSeconds(10);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        // the seeds themselves (some fixtures are refused on purpose) must not fault
        foreach (var s in seeds)
        {
            var (o, d) = Try(read, s, each);
            if (o == 2) faults.Add($"seed of {s.Length} bytes: {d}");
        }
        for (int i = 0; i < count && clock.Elapsed < limit; i++)
        {
            var parent = seeds[rng.Next(seeds.Count)];
            var (input, how) = Mutate(parent, rng, text);
            tried++;
            var (outcome, detail) = Try(read, input, each);
            switch (outcome)
            {
                case 0:
                    accepted++;
                    break;
                case 1:
                    rejected++;
                    break;
                default:
                    faults.Add($"#{i} ({how}, {input.Length} bytes): {detail}");
                    break;
            }
        }
        return new FuzzReport(reader, count, tried, rejected, accepted, faults);
    }

    /// <summary>0 read, 1 rejected properly, 2 fault (with what happened).</summary>
    private static (int, string) Try(Action<byte[]> read, byte[] input, TimeSpan timeout)
    {
        int outcome = 2;
        string detail = "";
        long allocated = 0;
        var t = new Thread(() =>
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                read(input);
                outcome = 0;
            }
            catch (IrException e) when (!string.IsNullOrWhiteSpace(e.Message))
            {
                outcome = 1;
                detail = e.Message;
            }
            catch (Exception e)
            {
                outcome = 2;
                var frame = (e.StackTrace ?? "").Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.Contains("ShiftWise.", StringComparison.Ordinal)) ?? "";
                detail = $"{e.GetType().Name}: {e.Message.Split('\n')[0]} [{frame}]";
            }
            allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        }, 64 * 1024 * 1024) { IsBackground = true };
        t.Start();
        if (!t.Join(timeout)) return (2, $"did not finish in {timeout.TotalSeconds} s (a hang)");
        long bound = 32L * 1024 * 1024 + 64L * input.Length;
        if (allocated > bound) return (2, $"allocated {allocated / 1e6:F0} MB for a {input.Length}-byte input ({detail})");
        return (outcome, detail);
    }

    /// <summary>One mutant of <paramref name="b"/> and a short description of the mutation.</summary>
    public static (byte[] Data, string How) Mutate(byte[] b, Random rng, bool text)
    {
        int kinds = text ? 12 : 8;
        switch (rng.Next(kinds))
        {
            case 0:
            {
                int n = b.Length == 0 ? 0 : rng.Next(b.Length);
                return (b[..n], $"truncated to {n}");
            }
            case 1:
            {
                var c = (byte[])b.Clone();
                int flips = 1 + rng.Next(4);
                for (int k = 0; k < flips && c.Length > 0; k++) c[rng.Next(c.Length)] ^= (byte)(1 << rng.Next(8));
                return (c, $"{flips} bit flips");
            }
            case 2:
            {
                var c = (byte[])b.Clone();
                byte[] interesting = [0, 0xFF, 0x7F, 0x80, 0x01, (byte)'[', (byte)'{', (byte)'"', (byte)'\n', 0x93];
                int at = c.Length == 0 ? 0 : rng.Next(c.Length);
                if (c.Length > 0) c[at] = interesting[rng.Next(interesting.Length)];
                return (c, $"byte {at} set");
            }
            case 3:
            case 4:
            {
                var c = (byte[])b.Clone();
                int width = rng.Next(2) == 0 ? 4 : 8;
                if (c.Length < width) return (c, "unchanged (too short)");
                int at = rng.Next(c.Length - width + 1);
                // aligned offsets more often: headers keep their integers aligned
                if (rng.Next(2) == 0) at -= at % width;
                long v = Extremes[rng.Next(Extremes.Length)];
                for (int k = 0; k < width; k++) c[at + k] = (byte)(v >> (8 * k));
                return (c, $"{width * 8}-bit {v} at {at}");
            }
            case 5:
            {
                int at = rng.Next(b.Length + 1);
                var junk = new byte[1 + rng.Next(16)];
                rng.NextBytes(junk);
                return ([.. b[..at], .. junk, .. b[at..]], $"{junk.Length} bytes inserted at {at}");
            }
            case 6:
            {
                if (b.Length == 0) return (b, "unchanged (empty)");
                int at = rng.Next(b.Length), n = 1 + rng.Next(Math.Min(64, b.Length - at));
                int times = 1 + rng.Next(8);
                var rep = Enumerable.Repeat(b[at..(at + n)], times).SelectMany(x => x).ToArray();
                return ([.. b[..at], .. rep, .. b[at..]], $"{n} bytes at {at} repeated {times}x");
            }
            case 7:
            {
                int n = rng.Next(24);
                var junk = new byte[n];
                rng.NextBytes(junk);
                return (junk, $"{n} random bytes");
            }
            default:
                return MutateText(Encoding.UTF8.GetString(b), rng);
        }
    }

    private static (byte[], string) MutateText(string s, Random rng)
    {
        switch (rng.Next(4))
        {
            case 0:
            {
                // replace a number
                var nums = System.Text.RegularExpressions.Regex.Matches(s, @"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?");
                if (nums.Count == 0) goto case 1;
                var m = nums[rng.Next(nums.Count)];
                var by = TextNumbers[rng.Next(TextNumbers.Length)];
                return (Encoding.UTF8.GetBytes(s[..m.Index] + by + s[(m.Index + m.Length)..]), $"number {m.Value} -> '{by}'");
            }
            case 1:
            {
                if (s.Length == 0) goto case 2;
                int at = rng.Next(s.Length), n = 1 + rng.Next(Math.Min(8, s.Length - at));
                return (Encoding.UTF8.GetBytes(s.Remove(at, n)), $"{n} chars deleted at {at}");
            }
            case 2:
            {
                string[] bits = ["\"", "'", "\n", "{", "}", "[", "]", ",", ":", "%", "@", "(", ")", "\\", "/*", "//", "\0", "é", "\uFEFF"];
                int at = rng.Next(s.Length + 1);
                var by = bits[rng.Next(bits.Length)];
                return (Encoding.UTF8.GetBytes(s.Insert(at, by)), $"'{by.Replace("\n", "\\n")}' inserted at {at}");
            }
            default:
            {
                int depth = rng.Next(2) == 0 ? 200 : 20000;
                var open = rng.Next(2) == 0 ? "[" : "{\"a\":";
                var close = open == "[" ? "]" : "}";
                int at = rng.Next(s.Length + 1);
                var nest = string.Concat(Enumerable.Repeat(open, depth)) + "1" + string.Concat(Enumerable.Repeat(close, depth));
                return (Encoding.UTF8.GetBytes(s.Insert(at, nest)), $"nesting {depth} deep at {at}");
            }
        }
    }
}
