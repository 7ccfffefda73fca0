using ShiftWise.Frontend.IO;
using static ShiftWise.Frontend.Tests.PthFiles;
using P = ShiftWise.Frontend.Tests.PickleWriter;

namespace ShiftWise.Frontend.Tests;

/// <summary>
/// Objects of classes outside the whitelist (and calls of functions outside it) are read as inert records: the
/// checkpoint's weights load, nothing named in the file runs, and messages say what each entry held.
/// </summary>
public sealed class InertPickleTests
{
    private const string Label = "hand/inert.pth";

    /// <summary>{'model': {'w': tensor [1, 2]}, ...the entries <paramref name="extra"/> writes}.</summary>
    private static byte[] WithWeights(Func<P, P> extra) =>
        extra(new P().Op('}').Mark().Str("model").Op('}').Mark().Str("w").Tensor("FloatStorage", "0", 2, 0, [2], [1])
            .Op('u')).Op('u').Stop();

    private static IReadOnlyDictionary<string, IR.Tensor> Read(byte[] pickle, string? key = null) =>
        Pth.Read(Zip(pickle, extra: ("archive/data/0", F32Bytes(1, 2))), Label, key);

    private static string Refused(byte[] pickle, string? key = null) =>
        Assert.Throws<PthException>(() => Read(pickle, key)).Message;

    /// <summary>Calls Python would make while unpickling: each would create <c>target</c>.</summary>
    private static P HostileCalls(P p, string target) => p
        .Str("system").Global("posix", "system").Str("touch " + target).Raw(0x85).Op('R')
        .Str("eval").Global("builtins", "eval").Str($"open('{target}', 'w').close()").Raw(0x85).Op('R')
        .Str("open").Global("builtins", "open").Str(target).Str("w").Raw(0x86).Op('R')
        .Str("mkdir").Global("os", "mkdir").Str(target).Raw(0x85).Op('R')
        // getattr(__import__('os'), 'system')('touch ...'): a REDUCE whose callable is itself a REDUCE's result
        .Str("chained").Global("builtins", "getattr").Global("builtins", "__import__").Str("os").Raw(0x85).Op('R')
        .Str("system").Raw(0x86).Op('R').Str("touch " + target).Raw(0x85).Op('R')
        // NEWOBJ, then BUILD: Python would run the class's __setstate__ with this state
        .Str("built").Global("subprocess", "Popen").Op(')').Raw(0x81).Op('}').Str("args").Str("touch " + target)
        .Op('s').Op('b');

    [Fact]
    public void CallsThatWouldCreateAFileAreReadInertAndCreateNothing()
    {
        using var dir = new TempDir();
        string target = dir.File("created-by-the-pickle");
        var pickle = WithWeights(p => HostileCalls(p, target));

        Assert.Equal([1.0, 2.0], Read(pickle)["w"].ToDoubles());
        Assert.False(File.Exists(target) || Directory.Exists(target), "reading the pickle ran one of its calls");
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));

        // Each call is kept, by name, for messages.
        Assert.Equal($"{Label}: checkpoint entry 'system' holds posix.system(...), not a dict of tensors; the "
            + "checkpoint's entries are 'model' (a dict of 1 tensor), 'system' (posix.system(...)), 'eval' "
            + "(builtins.eval(...)), 'open' (builtins.open(...)), 'mkdir' (os.mkdir(...)), 'chained' "
            + "(builtins.getattr(...)), 'built' (subprocess.Popen)", Refused(pickle, "system"));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void AReduceWrittenByTorchSaveRunsNothing()
    {
        // tools/fixtures/gen_checkpoint_fixtures.py pickled two objects whose __reduce__ names os.system and
        // builtins.eval on code that creates this file.
        const string marker = "/tmp/swc-ckpt-fixture-reduce-ran";
        File.Delete(marker);
        var path = Samples.Fixture(Path.Combine("ckpt", "reduce_hooks.pth"));
        Assert.Contains("touch " + marker, File.ReadAllText(path, System.Text.Encoding.Latin1));

        Assert.Equal(9, Pth.Read(path).Count);
        var e = Assert.Throws<PthException>(() => Pth.Read(path, "hooks"));
        Assert.False(File.Exists(marker), "reading the checkpoint ran its os.system or eval");
        Assert.Contains("checkpoint entry 'hooks' holds a list of 2 items", e.Message);
    }

    [Fact]
    public void EveryWayOfMakingAnObjectGivesAnInertRecord()
    {
        var pickle = WithWeights(p => p
            .Str("newobj").Global("argparse", "Namespace").Op(')').Raw(0x81).Op('}').Str("lr").Int(1).Op('s').Op('b')
            .Str("newobj_ex").Global("pathlib", "PosixPath").Op(')').Op('}').Raw(0x92)
            .Str("inst").Mark().Int(1).Op('i').Raw("decimal\nDecimal\n"u8.ToArray())
            .Str("obj").Mark().Global("fractions", "Fraction").Int(1).Int(3).Op('o')
            .Str("ext").Raw(0x82, 7)
            // a dict subclass filled by SETITEMS, a list subclass by APPENDS and APPEND
            .Str("dict_sub").Global("collections", "defaultdict").Global("builtins", "list").Raw(0x85).Op('R')
            .Mark().Str("k").Int(1).Op('u')
            .Str("list_sub").Global("collections", "deque").Op(')').Op('R').Mark().Int(1).Int(2).Op('e').Int(3).Op('a')
            .Str("set").Raw(0x8f).Mark().Int(1).Int(2).Raw(0x90)
            .Str("frozenset").Mark().Int(1).Raw(0x91)
            .Str("bytearray").Raw(0x96, 2, 0, 0, 0, 0, 0, 0, 0, 0xAB, 0xCD)
            // how protocol 2 pickles bytes
            .Str("bytes").Global("_codecs", "encode").Str("xy").Str("latin1").Raw(0x86).Op('R'));

        Assert.Equal([1.0, 2.0], Read(pickle)["w"].ToDoubles());
        Assert.Equal($"{Label}: the checkpoint has no entry 'x' (the checkpoint key asked for); its entries are "
            + "'model' (a dict of 1 tensor), 'newobj' (argparse.Namespace), 'newobj_ex' (pathlib.PosixPath), 'inst' "
            + "(decimal.Decimal), 'obj' (fractions.Fraction), 'ext' (global 'copyreg extension 7'), 'dict_sub' "
            + "(collections.defaultdict(...)), 'list_sub' (collections.deque(...)), 'set' (set), 'frozenset' "
            + "(frozenset), 'bytearray' (bytes), 'bytes' (_codecs.encode(...))", Refused(pickle, "x"));
    }

    [Fact]
    public void AParameterWithPythonStateIsItsTensor()
    {
        // torch.save of a Parameter that carries Python attributes: _rebuild_parameter_with_state(data,
        // requires_grad, hooks, state).
        var pickle = new P().Op('}').Mark().Str("w").Global("torch._utils", "_rebuild_parameter_with_state").Mark()
            .Tensor("FloatStorage", "0", 2, 0, [2], [1]).Raw(0x88).Global("collections", "OrderedDict").Op(')')
            .Op('R').Op('}').Str("tag").Int(1).Op('s').Op('t').Op('R').Op('u').Stop();
        Assert.Equal([1.0, 2.0], Read(pickle)["w"].ToDoubles());
    }

    [Fact]
    public void TheLimitsHoldThroughInertRecords()
    {
        // 150 Namespaces, each the state of the one before: nesting through BUILD states counts.
        var deep = new P().Op('}').Str("args");
        for (int i = 0; i < 150; i++)
        {
            deep.Global("argparse", "Namespace").Op(')').Raw(0x81).Op('}').Str("inner");
        }
        deep.Op('N');
        for (int i = 0; i < 150; i++)
        {
            deep.Op('s').Op('b');
        }
        Assert.Contains("nests deeper than 100 levels", Refused(deep.Op('s').Stop()));

        // An object whose state holds itself (Python allows it; the reader refuses cycles everywhere).
        var cyclic = WithWeights(p => p.Str("args").Global("argparse", "Namespace").Op(')').Raw(0x81).Op('q', 9)
            .Op('}').Str("self").Op('h', 9).Op('s').Op('b'));
        Assert.Contains("the pickled data is cyclic: a argparse.Namespace contains itself", Refused(cyclic));

        // Nested containers of records within the limit read fine.
        var nested = WithWeights(p => p.Str("args").Global("argparse", "Namespace").Op(')').Raw(0x81).Op('}')
            .Str("groups").Op(']').Mark().Op('}').Str("fn").Global("torch.nn", "GELU").Op(')').Raw(0x81).Op('s')
            .Raw(0x8f).Mark().Global("enum", "Flag").Int(1).Raw(0x85).Op('R').Raw(0x90).Op('e').Op('s').Op('b'));
        Assert.Single(Read(nested));
    }

    [Fact]
    public void MalformedObjectOpcodesAreStillErrors()
    {
        var ns = () => new P().Global("argparse", "Namespace");
        Assert.Contains("OBJ (0x6f) at byte 3 has no class after its MARK", Refused(new P().Mark().Op('o').Stop()));
        Assert.Contains("OBJ (0x6f) at byte 5 instantiates a int, not a class",
            Refused(new P().Mark().Op('K', 1).Op('o').Stop()));
        Assert.Contains("EXT1 (0x82) at byte 2 has extension code 0", Refused(new P().Raw(0x82, 0).Stop()));
        Assert.Contains("ADDITEMS (0x90) at byte 6 targets a list, not a set",
            Refused(new P().Op(']').Mark().Op('K', 1).Raw(0x90).Stop()));
        Assert.Contains("FROZENSET (0x91) at byte 2 needs a MARK", Refused(new P().Raw(0x91).Stop()));
        Assert.Contains("NEWOBJ (0x81) at byte 23 has a None of arguments, not a tuple",
            Refused(ns().Op('N').Raw(0x81).Stop()));
        Assert.Contains("NEWOBJ (0x81) at byte 4 on a list is not allowed", Refused(new P().Op(']').Op(')').Raw(0x81)
            .Stop()));
        Assert.Contains("NEWOBJ_EX (0x92) at byte 24 has a None of keyword arguments, not a dict",
            Refused(ns().Op(')').Op('N').Raw(0x92).Stop()));
        Assert.Contains("REDUCE of a argparse.Namespace(...) at byte 25 has a None of arguments, not a tuple",
            Refused(ns().Op(')').Op('R').Op('N').Op('R').Stop()));
        Assert.Contains("BUILD at byte 5 sets a int state on a tuple",
            Refused(new P().Op(')').Op('K', 1).Op('b').Stop()));
    }

    [Fact]
    public void ATensorOfAnUnreadDTypeIsAnErrorOnlyAmongTheWeights()
    {
        // bool_extra.pth: {'model': state_dict, 'mask': torch.tensor([True, False])}, written by torch.save.
        Assert.Equal(9, Pth.Read(Samples.Fixture(Path.Combine("ckpt", "bool_extra.pth"))).Count);

        var bare = new P().Op('}').Mark().Str("mask").Tensor("BoolStorage", "0", 2, 0, [2], [1]).Op('u').Stop();
        Assert.Equal($"{Label}: the state_dict entry 'mask' is a torch.BoolStorage tensor, which is not read: only "
            + "float32, float64, float16, bfloat16, int32 and int64 tensors are", Refused(bare));
    }
}
