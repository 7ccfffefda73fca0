using ShiftWise.Frontend.IO;
using ShiftWise.IR;
using static ShiftWise.Frontend.Tests.PthFiles;
using P = ShiftWise.Frontend.Tests.PickleWriter;

namespace ShiftWise.Frontend.Tests;

/// <summary>
/// Which entry of a checkpoint holds the weights: the original's save_model layout (written by torch.save in
/// tools/fixtures/gen_checkpoint_fixtures.py), a checkpoint key, the default order, DDP's <c>module.</c> prefix, and
/// the messages that list a checkpoint's entries when none fits.
/// </summary>
public sealed class CheckpointKeyTests
{
    private const string Label = "hand/keys.pth";

    private static string Fixture(string name) => Samples.Fixture(Path.Combine("ckpt", name));

    private const string SaveModelEntries = "'model' (a dict of 9 tensors), 'optimizer' (a dict of 2 entries), 'epoch' "
        + "(int), 'scaler' (a dict of 5 entries), 'args' (argparse.Namespace), 'model_ema' (a dict of 9 tensors)";

    private static void AssertSameTensors(IReadOnlyDictionary<string, Tensor> expected,
        IReadOnlyDictionary<string, Tensor> actual)
    {
        Assert.Equal(expected.Keys, actual.Keys);
        foreach (var (k, t) in expected)
        {
            Samples.AssertSame(t, actual[k]);
        }
    }

    [Theory]
    [InlineData("save_model.pth")]
    [InlineData("save_model_p4.pth")] // pickle protocol 4: FRAME, MEMOIZE, STACK_GLOBAL
    public void TheSaveModelLayoutGivesTheModelByDefaultAndTheEmaByKey(string file)
    {
        var model = Pth.Read(Fixture("model.pth"));
        var ema = Pth.Read(Fixture("model_ema.pth"));
        AssertSameTensors(model, Pth.Read(Fixture(file)));
        AssertSameTensors(model, Pth.Read(Fixture(file), "model"));
        AssertSameTensors(ema, Pth.Read(Fixture(file), "model_ema"));
        Assert.NotEqual(model["0.weight"].Bytes().ToArray(), ema["0.weight"].Bytes().ToArray());
    }

    [Fact]
    public void AMissingKeyListsWhatEachEntryHolds()
    {
        string path = Fixture("save_model.pth");
        var e = Assert.Throws<PthException>(() => Pth.Read(path, "ema"));
        Assert.Equal($"{path}: the checkpoint has no entry 'ema' (the checkpoint key asked for); its entries are "
            + SaveModelEntries, e.Message);
        e = Assert.Throws<PthException>(() => Pth.Read(path, "args"));
        Assert.Equal($"{path}: checkpoint entry 'args' holds argparse.Namespace, not a dict of tensors; the "
            + "checkpoint's entries are " + SaveModelEntries, e.Message);
    }

    [Fact]
    public void AWholePickledModuleIsNamedWithTheFix()
    {
        string path = Fixture("whole_module.pth");
        var e = Assert.Throws<PthException>(() => Pth.Read(path));
        Assert.Equal($"{path}: checkpoint entry 'model' holds torch.nn.modules.container.Sequential (the module "
            + "object itself, pickled whole: save its state_dict() instead), not a dict of tensors; the checkpoint's "
            + "entries are 'model' (torch.nn.modules.container.Sequential), 'epoch' (int)", e.Message);
    }

    /// <summary>A dict of the given entries: "name#" holds the int 3, any other name {name + ".w": tensor}.</summary>
    private static byte[] Entries(params string[] names)
    {
        var p = new P().Op('}').Mark();
        foreach (var n in names)
        {
            if (n.EndsWith('#'))
            {
                p.Str(n[..^1]).Op('K', 3);
            }
            else
            {
                p.Str(n).Op('}').Str(n + ".w").Tensor("FloatStorage", "0", 2, 0, [2], [1]).Op('s');
            }
        }
        return p.Op('u').Stop();
    }

    private static IReadOnlyDictionary<string, Tensor> Read(byte[] pickle, string? key = null) =>
        Pth.Read(Zip(pickle, extra: ("archive/data/0", F32Bytes(1, 2))), Label, key);

    private static string Refused(byte[] pickle, string? key = null) =>
        Assert.Throws<PthException>(() => Read(pickle, key)).Message;

    [Theory]
    [InlineData("model", new[] { "model_ema", "model", "state_dict" })] // 'model' first, wherever it is
    [InlineData("state_dict", new[] { "model_ema", "state_dict", "epoch#" })]
    [InlineData("model_ema", new[] { "epoch#", "model_ema" })]
    [InlineData("net", new[] { "net", "epoch#" }, "net")]
    [InlineData("model_ema", new[] { "model", "model_ema" }, "model_ema")]
    [InlineData("model", new[] { "model", "epoch#" }, "model")]
    public void ChoosesTheEntry(string chosen, string[] entries, string? key = null) =>
        Assert.Equal([chosen + ".w"], Read(Entries(entries), key).Keys);

    [Fact]
    public void TheFirstPreferredEntryPresentDecides()
    {
        // 'model' holds no tensors: an error naming it, not a silent fall back to the EMA weights.
        Assert.Equal($"{Label}: checkpoint entry 'model' holds int, not a dict of tensors; the checkpoint's entries "
            + "are 'model' (int), 'model_ema' (a dict of 1 tensor)", Refused(Entries("model#", "model_ema")));
        Assert.Equal(["model_ema.w"], Read(Entries("model#", "model_ema"), "model_ema").Keys);
    }

    [Fact]
    public void NoStateDictListsTheEntriesAndPointsToTheKey() =>
        Assert.Equal($"{Label}: no state_dict found: the checkpoint's entries are 'net' (a dict of 1 tensor), "
            + "'epoch' (int); expected tensors, or a dict of them under 'model', 'state_dict' or 'model_ema'; name "
            + "another entry with --checkpoint-key", Refused(Entries("net", "epoch#")));

    [Fact]
    public void ListsTwelveEntriesThenCountsTheRest()
    {
        var bare = new P().Op('}').Mark();
        for (int i = 0; i < 15; i++)
        {
            bare.Str($"t{i}").Tensor("FloatStorage", "0", 2, 0, [2], [1]);
        }
        var pickle = bare.Op('u').Stop();
        Assert.Equal(15, Read(pickle).Count);
        var e = Refused(pickle, "model");
        Assert.EndsWith("'t10' (a tensor), 't11' (a tensor), and 3 more", e);
        Assert.Contains("the checkpoint has no entry 'model'", e);
    }

    [Fact]
    public void SaysHowManyOfAMixedDictsEntriesAreTensors()
    {
        var pickle = new P().Op('}').Mark().Str("net").Op('}').Mark().Str("a").Tensor("FloatStorage", "0", 2, 0, [2],
            [1]).Str("b").Tensor("FloatStorage", "0", 2, 0, [2], [1]).Str("n").Op('K', 1).Op('u')
            .Str("empty").Op('}').Str("list").Op(']').Str("tuple").Op('K', 1).Raw(0x85).Op('u').Stop();
        Assert.EndsWith("its entries are 'net' (a dict of 3 entries, 2 of them tensors), 'empty' (an empty dict), "
            + "'list' (a list of 0 items), 'tuple' (a tuple of 1 item)", Refused(pickle, "x"));
        Assert.Contains("checkpoint['net'] entry 'n' is a int, not a tensor", Refused(pickle, "net"));
    }

    [Fact]
    public void StripsTheDdpPrefixOnlyWhenEveryKeyHasIt()
    {
        // ddp.pth: {'model': the state_dict of a wrapper whose 'module' is the net}, written by torch.save.
        var plain = Checkpoint.Read(Fixture("model.pth"));
        var ddp = Checkpoint.Read(Fixture("ddp.pth"));
        Assert.Contains("module.0.weight", Pth.Read(Fixture("ddp.pth")).Keys);
        AssertSameTensors(plain.Tensors, ddp.Tensors);

        using var dir = new TempDir();
        var some = new P().Op('}').Mark().Str("module.a").Tensor("FloatStorage", "0", 2, 0, [2], [1])
            .Str("b").Tensor("FloatStorage", "0", 2, 0, [2], [1]).Op('u').Stop();
        File.WriteAllBytes(dir.File("some.pth"), Zip(some, extra: ("archive/data/0", F32Bytes(1, 2))).ToArray());
        Assert.Equal(["b", "module.a"], Checkpoint.Read(dir.File("some.pth")).Tensors.Keys);
    }

    [Fact]
    public void AKeyNeedsAPthFile()
    {
        Assert.Null(Checkpoint.ReadIfGiven(null, null));
        var e = Assert.Throws<OptionException>(() => Checkpoint.ReadIfGiven(null, "model_ema"));
        Assert.Equal("option --checkpoint-key 'model_ema' chooses an entry of a --weights file, and none is given",
            e.Message);

        using var dir = new TempDir();
        string st = dir.File("w.safetensors");
        SafeTensors.Write(st, new Dictionary<string, Tensor> { ["w"] = Tensor.F32(new Shape(2), [1, 2]) });
        e = Assert.Throws<OptionException>(() => Checkpoint.Read(st, "model"));
        Assert.Equal($"option --checkpoint-key 'model': {st} is a .safetensors file, which holds one set of tensors "
            + "and no entries to choose from", e.Message);
        Assert.Equal(["w"], Checkpoint.Read(st).Tensors.Keys);
    }
}
