using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Tests.Shared;

namespace ShiftWise.Runtime.Tests;

/// <summary>
/// The sample of every op of the shared <see cref="OpCatalog"/> with random float32 inputs in its ranges, for the
/// coverage tests of the kernel table (forward and grad).
/// </summary>
internal static class Coverage
{
    public static IEnumerable<(Op Op, Tensor[] Inputs)> Samples()
    {
        var rng = new Random(42);
        foreach (var e in OpCatalog.Entries.Values) yield return (e.Op, e.Draw(rng));
    }
}
