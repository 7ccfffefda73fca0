using ShiftWise.IR.Ops;
using ShiftWise.IR.Text;

namespace ShiftWise.IR.Tests;

/// <summary>Verifier rejection and print/parse round trip for every op.</summary>
public sealed class CatalogTests
{
    public static TheoryData<string> OpNames() => new(OpTable.Names.Order());

    [Fact]
    public void EveryOpHasACatalogEntry() =>
        Assert.Equal(OpTable.Names.Order(), OpCatalog.Entries.Keys.Order());

    [Theory]
    [MemberData(nameof(OpNames))]
    public void VerifierRejectsBadInput(string op)
    {
        var e = OpCatalog.Entries[op];
        Assert.Equal(op, e.BadOp.Name);
        var b = new GraphBuilder("bad");
        var ins = e.BadInputs().Select((t, i) => b.Input("in" + i, t)).ToArray();
        var ex = Assert.Throws<VerifyException>(() => b.Apply(e.BadOp, "culprit", ins));
        Assert.Contains("%culprit", ex.Message);
        Assert.Contains($"({op})", ex.Message);
        Assert.Contains(e.Phrase, ex.Message);
        Assert.Contains(e.BadInputs()[0].ToString(), ex.Message);
    }

    [Theory]
    [MemberData(nameof(OpNames))]
    public void PrintParseRoundTrip(string op)
    {
        var b = new GraphBuilder("rt_" + op);
        var outs = OpCatalog.Entries[op].Build(b);
        b.Output(outs);
        var g = b.Build();
        Assert.Contains(g.Nodes, n => n.Op.Name == op);
        string text = SwirPrinter.Print(g);
        var back = SwirParser.Parse(text, "rt.swir");
        Assert.Equal(g, back);
        Assert.Equal(text, SwirPrinter.Print(back));
        Assert.Equal(g.ContentHash(), back.ContentHash());
    }
}
