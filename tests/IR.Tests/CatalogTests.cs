using ShiftWise.IR.Ops;
using ShiftWise.IR.Text;

namespace ShiftWise.IR.Tests;

/// <summary>Verifier rejection and print/parse round trip for every op of the shared <see cref="OpCatalog"/>.</summary>
public sealed class CatalogTests
{
    public static TheoryData<string> OpNames() => new(OpTable.Names.Order());

    /// <summary>Every op the parser knows has an entry: the catalogue refuses none.</summary>
    [Fact]
    public void EveryOpHasACatalogEntry() =>
        OpCatalog.AssertCoversEveryOp("op catalogue", OpCatalog.Entries.Keys, new Dictionary<string, string>());

    [Theory]
    [MemberData(nameof(OpNames))]
    public void VerifierRejectsBadInput(string op)
    {
        var bad = OpCatalog.Entries[op].Bad;
        Assert.Equal(op, bad.Op.Name);
        var b = new GraphBuilder("bad");
        var ins = bad.Inputs.Select((t, i) => b.Input("in" + i, t)).ToArray();
        var ex = Assert.Throws<VerifyException>(() => b.Apply(bad.Op, "culprit", ins));
        Assert.Contains("%culprit", ex.Message);
        Assert.Contains($"({op})", ex.Message);
        Assert.Contains(bad.Phrase, ex.Message);
        Assert.Contains(bad.Inputs[0].ToString(), ex.Message);
    }

    [Theory]
    [MemberData(nameof(OpNames))]
    public void PrintParseRoundTrip(string op)
    {
        var g = OpCatalog.Entries[op].OneNodeGraph("rt_" + op);
        Assert.Contains(g.Nodes, n => n.Op.Name == op);
        string text = SwirPrinter.Print(g);
        var back = SwirParser.Parse(text, "rt.swir");
        Assert.Equal(g, back);
        Assert.Equal(text, SwirPrinter.Print(back));
        Assert.Equal(g.ContentHash(), back.ContentHash());
    }
}
