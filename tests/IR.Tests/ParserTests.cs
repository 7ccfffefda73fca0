using ShiftWise.IR.Text;

namespace ShiftWise.IR.Tests;

/// <summary>Syntax and verifier errors carry file:line:column; names with odd characters survive a round trip.</summary>
public sealed class ParserTests
{
    private const string Good = """
        swir 1
        graph g {
          input %x: f32[1,2,4,4]
          param @w: f32[2,1,3,3]
          %y: f32[1,2,4,4] = conv2d(%x, @w) {stride=[1,1], padding=[1,1], dilation=[1,1], groups=2}
          output %y
        }
        """;

    private static SwirParseException Fails(string text) =>
        Assert.Throws<SwirParseException>(() => SwirParser.Parse(text, "m.swir"));

    [Fact]
    public void ParsesAHandWrittenGraphWithComments()
    {
        var g = SwirParser.Parse(Good.Replace("output %y", "output %y  # the result\n# trailing"), "m.swir");
        Assert.Single(g.Nodes);
        Assert.Equal("y", g.Nodes[0].Name);
    }

    [Theory]
    [InlineData("%y: f32[1,2,4,4] = conv2d(%x, @w) {stride=[1,1], padding=[1,1], dilation=[1,1], groups=2", 6, 3, "expected '}', got 'output'")]
    [InlineData("%y: f32[1,2,4,4] = conv3d(%x, @w)", 5, 22, "unknown op 'conv3d'")]
    [InlineData("%y: f33[1,2,4,4] = conv2d(%x, @w) {stride=[1,1], padding=[1,1], dilation=[1,1], groups=2}", 5, 7, "unknown element type")]
    [InlineData("%y: f32[1,2,4,4] = conv2d(%x, %w) {stride=[1,1], padding=[1,1], dilation=[1,1], groups=2}", 5, 33, "is a param")]
    [InlineData("%y: f32[1,2,4,4] = conv2d(%x, @v) {stride=[1,1], padding=[1,1], dilation=[1,1], groups=2}", 5, 33, "'v' is not defined")]
    [InlineData("%y: f32[1,2,4,4] = conv2d(%x, @w) {stride=[1,1], padding=[1,1], dilation=[1,1]}", 5, 22, "missing attribute 'groups'")]
    [InlineData("%y: f32[1,2,4,4] = conv2d(%x, @w) {stride=[1,1], padding=[1,1], dilation=[1,1], groups=2, bias=1}", 5, 98, "unknown attribute 'bias'")]
    [InlineData("%y: f32[1,2,4,4] = conv2d(%x, @w) {stride=[1,1], padding=[1,1], dilation=[1,1], groups=two}", 5, 90, "must be an integer")]
    [InlineData("%y: f32[1,2,4,4] = conv2d(%x, @w) {stride=[1,1], padding=[1,1], dilation=[1,1], groups=2} extra", 5, 93, "end of the line")]
    [InlineData("%y: f32[1,2,4,4] = conv2d(%x, @w) {stride=[1,1], padding=[1.5,1], dilation=[1,1], groups=2}", 5, 61, "must be an integer")]
    [InlineData("%y: f32[1,2,4,4] = conv2d(%x, @w) {stride=[1,1], padding=[1,1], dilation=[1,1], groups=2} $", 5, 93, "unexpected character '$'")]
    // integer lists are kept in arrays by the parser: a float after integers, and an integer past 32 bits, still point at
    // their own column
    [InlineData("%y: f32[1,2,4,4] = conv2d(%x, @w) {stride=[1,1], padding=[1,1.5], dilation=[1,1], groups=2}", 5, 63, "must be an integer")]
    [InlineData("%y: f32[1,2,4,4] = conv2d(%x, @w) {stride=[1,99999999999], padding=[1,1], dilation=[1,1], groups=2}", 5, 48, "does not fit 32 bits")]
    public void SyntaxErrorsCarryFileLineAndColumn(string line5, int line, int col, string phrase)
    {
        var ex = Fails(Good.Replace(Good.Split('\n')[4].Trim(), line5));
        Assert.StartsWith($"m.swir:{line}:{col}: error:", ex.Message);
        Assert.Contains(phrase, ex.Message);
        Assert.Equal(line, ex.Line);
        Assert.Equal(col, ex.Column);
    }

    [Fact]
    public void VerifierErrorNamesTheNodeAndItsLine()
    {
        var ex = Fails(Good.Replace("groups=2}", "groups=1}"));
        Assert.StartsWith("m.swir:5:22: error: node %y (conv2d)", ex.Message);
        Assert.Contains("f32[1,2,4,4], f32[2,1,3,3]", ex.Message);
        Assert.Contains("needs 2 input channels per group", ex.Message);
    }

    [Fact]
    public void DeclaredOutputTypeMustMatchInference()
    {
        var ex = Fails(Good.Replace("%y: f32[1,2,4,4] =", "%y: f32[1,2,5,4] ="));
        Assert.Contains("declared f32[1,2,5,4] but the op gives f32[1,2,4,4]", ex.Message);
        Assert.StartsWith("m.swir:5:", ex.Message);
    }

    [Theory]
    [InlineData("", 1, 1, "expected 'swir'")]
    [InlineData("swir 2\ngraph g {\n}", 1, 6, "unsupported swir version 2")]
    [InlineData("swir 1\ngraph g {\n  input %x: f32[2]\n", 4, 1, "missing '}'")]
    [InlineData("swir 1\ngraph g {\n  input %x: f32[2]\n  input %x: f32[3]\n  output %x\n}", 4, 9, "already defined")]
    [InlineData("swir 1\ngraph g {\n  input %x: f32[2]\n}", 2, 7, "has no outputs")]
    [InlineData("swir 1\ngraph g {\n  input %\"unterminated: f32[2]\n}", 3, 10, "unterminated string")]
    [InlineData("swir 1\ngraph g {\n  input %x: f32[99999999999]\n}", 3, 17, "dimension 99999999999 must be a non-negative 32-bit integer")]
    public void StructuralErrors(string text, int line, int col, string phrase)
    {
        var ex = Fails(text);
        Assert.Contains(phrase, ex.Message);
        Assert.StartsWith($"m.swir:{line}:{col}:", ex.Message);
    }

    [Fact]
    public void OddNamesAreQuotedAndRoundTrip()
    {
        var b = new GraphBuilder("odd \"graph\"");
        var x = b.Input("x y\n\"z\"\\", TensorType.Of(DType.F32, 2));
        var y = b.Apply1(new Ops.Unary(Ops.UnaryKind.Relu), "weird/name\u0001", x);
        b.Output(y);
        var g = b.Build();
        var text = SwirPrinter.Print(g);
        Assert.Equal(g, SwirParser.Parse(text));
        Assert.DoesNotContain("\u0001", text);
    }

    [Fact]
    public void WeightsFileIsKeptButNotPartOfTheHash()
    {
        var g = SwirParser.Parse(Good.Replace("graph g {", "graph g {\n  weights \"w.safetensors\""));
        Assert.Equal("w.safetensors", g.WeightsFile);
        Assert.Equal(SwirParser.Parse(Good).ContentHash(), g.ContentHash());
        Assert.Contains("weights \"w.safetensors\"", SwirPrinter.Print(g));
    }

    [Fact]
    public void ContentHashChangesWithAnAttribute()
    {
        Assert.NotEqual(SwirParser.Parse(Good).ContentHash(),
            SwirParser.Parse(Good.Replace("padding=[1,1]", "padding=[2,2]").Replace("f32[1,2,4,4] =", "f32[1,2,6,6] =")).ContentHash());
    }
}
