using System.Text.Json;
using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;

namespace ShiftWise.IR.Tests;

/// <summary>
/// The reference executor against golden float64 outputs computed by PyTorch (tools/fixtures/gen_reference_fixtures.py;
/// ShiftAdd there is a literal scatter loop, here a gather). Tolerance: relative L2 ≤ 1e-12, since both sides
/// compute in float64 and differ only in summation order.
/// </summary>
public sealed class ReferenceFixtureTests
{
    private static readonly JsonElement Cases = LoadCases();

    private static JsonElement LoadCases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestUtil.FixturePath("reference_ops.json")));
        return doc.RootElement.GetProperty("cases").Clone();
    }

    public static TheoryData<string> CaseNames() =>
        new(Cases.EnumerateArray().Select(c => c.GetProperty("name").GetString()!));

    [Fact]
    public void EveryOpIsCoveredByAGoldenCaseOrAHandTest()
    {
        var covered = Cases.EnumerateArray().Select(c => OpFor(c).Name).ToHashSet();
        covered.Add("drop_path"); // no torch equivalent of its seeded generator: HandComputedTests covers it
        // the fused ops are checked against compositions of the ops above: FusedOpTests
        covered.UnionWith(["scale_bias", "sw_cross", "fused_shiftwise", "gemm"]);
        // GRN's apply folded into the next gemm: FoldGrnApplyTests checks it against the gemm pair it replaces
        covered.Add("gemm_grn_fold");
        // grad evaluates the backward rules: BackwardTests (finite differences) and the autodiff tests cover it
        covered.Add("grad");
        // cast rounds to nearest even (ties, overflow, NaN by hand): CastTests; every pattern: Types16EmuTests
        covered.Add("cast");
        Assert.Equal(OpTable.Names.Order(), covered.Order());
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void MatchesPyTorch(string name)
    {
        var c = Cases.EnumerateArray().Single(x => x.GetProperty("name").GetString() == name);
        var op = OpFor(c);
        var inputs = c.GetProperty("inputs").EnumerateArray().Select(ReadTensor).ToArray();
        var outs = ReferenceExecutor.Evaluate(op, inputs);
        var expected = c.GetProperty("outputs").EnumerateArray().Select(ReadTensor).ToArray();
        Assert.Equal(expected.Length, outs.Length);
        for (int i = 0; i < outs.Length; i++)
        {
            Assert.Equal(expected[i].Shape, outs[i].Shape);
            double err = TestUtil.RelL2(outs[i].ToDoubles(), expected[i].ToDoubles());
            Assert.True(err <= 1e-12, $"{name} output {i}: relative L2 {err:e3}");
        }
    }

    private static Tensor ReadTensor(JsonElement e)
    {
        var shape = new Shape(e.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()));
        var dt = e.GetProperty("dtype").GetString() == "i64" ? DType.I64 : DType.F64;
        var data = e.GetProperty("data").EnumerateArray().Select(d => d.GetDouble()).ToArray();
        return Tensor.FromDoubles(new TensorType(dt, shape), data);
    }

    private static int[] Ints(JsonElement a, string name) =>
        a.GetProperty(name).EnumerateArray().Select(x => x.GetInt32()).ToArray();

    private static int[] Flat(JsonElement a, string name) =>
        a.GetProperty(name).EnumerateArray().SelectMany(r => r.EnumerateArray().Select(x => x.GetInt32())).ToArray();

    private static Op OpFor(JsonElement c)
    {
        var a = c.GetProperty("attrs");
        double F(string n) => a.GetProperty(n).GetDouble();
        Mode M() => a.GetProperty("mode").GetString() == "train" ? Mode.Train : Mode.Eval;
        return c.GetProperty("op").GetString() switch
        {
            "conv2d" => new Conv2d(Ints(a, "stride"), Ints(a, "padding"), Ints(a, "dilation"), a.GetProperty("groups").GetInt32()),
            "shift_add" => new ShiftAdd(a.GetProperty("big").GetInt32(), a.GetProperty("small").GetInt32(),
                a.GetProperty("nrep").GetInt32(), Flat(a, "pad_hv"), Flat(a, "idx_identit")),
            "batchnorm" => new BatchNorm(F("eps"), F("momentum"), M()),
            "layernorm" => new LayerNorm(F("eps"),
                a.GetProperty("layout").GetString() == "channels_first" ? NormLayout.ChannelsFirst : NormLayout.ChannelsLast),
            "linear" => new Linear(),
            "gelu" => new Unary(UnaryKind.Gelu),
            "relu" => new Unary(UnaryKind.Relu),
            "sigmoid" => new Unary(UnaryKind.Sigmoid),
            "grn" => new Grn(F("eps")),
            "mean" => new Mean(Ints(a, "axes"), a.GetProperty("keepdim").GetBoolean()),
            "add" => new Binary(BinaryKind.Add),
            "mul" => new Binary(BinaryKind.Mul),
            "channel_select" => new ChannelSelect(a.GetProperty("axis").GetInt32(), Ints(a, "indices")),
            "concat" => new Concat(a.GetProperty("axis").GetInt32()),
            "permute" => new Permute(Ints(a, "perm")),
            "reshape" => new Reshape(Ints(a, "shape")),
            "softmax" => new Softmax(a.GetProperty("axis").GetInt32()),
            "cross_entropy" => new CrossEntropy(F("label_smoothing")),
            var other => throw new InvalidOperationException($"fixture op {other} has no mapping"),
        };
    }
}
