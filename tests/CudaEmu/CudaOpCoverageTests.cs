using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.IR.Ops;
using ShiftWise.Tests.Shared;

namespace ShiftWise.CudaEmu;

/// <summary>
/// Every op of the shared <see cref="OpCatalog"/> has a CUDA case in <see cref="KernelCases"/>, is covered by a
/// named other test, or is refused with a reason; a refused op's catalogue sample is refused naming node and op.
/// </summary>
public sealed class CudaOpCoverageTests
{
    public static TheoryData<string> RefusedOps() => new(KernelCases.Refused.Keys.Order());

    [Fact]
    public void EveryOpHasAKernelCaseOrIsRefused()
    {
        var cased = KernelCases.All.Values.Select(c => Assert.Single(c.Graph.Nodes).Op.Name).ToHashSet();
        Assert.Empty(cased.Intersect(KernelCases.CoveredElsewhere.Keys));
        OpCatalog.AssertCoversEveryOp("CUDA kernel cases", cased.Concat(KernelCases.CoveredElsewhere.Keys),
            KernelCases.Refused);
    }

    [Theory]
    [MemberData(nameof(RefusedOps))]
    public void ARefusedOpIsRefusedNamingNodeAndOp(string op)
    {
        var g = OpCatalog.Entries[op].OneNodeGraph("refused_" + op);
        var e = Assert.Throws<IrException>(() => CudaCodegen.Lower(g));
        Assert.Contains($"%{g.Nodes[0].Outputs[0]} ({op})", e.Message); // a node is named by its first output
        Assert.Contains("the CUDA target has no kernel for " + op, e.Message);
    }
}
