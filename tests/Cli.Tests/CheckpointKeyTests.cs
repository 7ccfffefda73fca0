using static ShiftWise.Cli.Tests.SwcRun;

namespace ShiftWise.Cli.Tests;

/// <summary>
/// swc run on training checkpoints in the original's save_model layout (tools/fixtures/gen_checkpoint_fixtures.py:
/// model, AdamW state after one step, scaler, epoch, an argparse.Namespace, model_ema), with --checkpoint-key and a
/// DDP checkpoint: the same input gives output files byte-identical to those of the bare state_dicts.
/// </summary>
public sealed class CheckpointKeyTests
{
    private static readonly string[] Model =
    [
        "sw-v2", "--in-chans", "1", "--num-classes", "4", "--depths", "1,1,1,1", "--dims", "8,8,8,16",
        "--kernel-size", "7,5,5,3,3", "--image-size", "24",
    ];

    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "ckpt", name);

    /// <summary>The bytes of the .npy that swc run writes for the fixture input x.npy.</summary>
    private static byte[] Output(params string[] weights)
    {
        var y = Path.Combine(Directory.CreateTempSubdirectory("swc-ckpt-key-").FullName, "y.npy");
        var (code, _, e) = Swc(["run", .. Model, "--input", Fixture("x.npy"), "--output", y, .. weights]);
        Assert.True(code == 0, e);
        return File.ReadAllBytes(y);
    }

    [Fact]
    public void TheSaveModelCheckpointRunsLikeItsBareStateDict() =>
        Assert.Equal(Output("--weights", Fixture("state_dict.pth")), Output("--weights", Fixture("ckpt.pth")));

    [Fact]
    public void TheCheckpointKeyChoosesTheEmaWeights()
    {
        var ema = Output("--weights", Fixture("ckpt.pth"), "--checkpoint-key", "model_ema");
        Assert.Equal(Output("--weights", Fixture("ema_state_dict.pth")), ema);
        Assert.NotEqual(Output("--weights", Fixture("state_dict.pth")), ema);
    }

    [Fact]
    public void ADdpCheckpointRunsLikeTheBareStateDict() =>
        Assert.Equal(Output("--weights", Fixture("state_dict.pth")), Output("--weights", Fixture("ddp.pth")));

    [Fact]
    public void AMissingKeyIsOneLineListingTheEntries()
    {
        var (code, _, e) = Swc(["run", .. Model, "--weights", Fixture("ckpt.pth"), "--checkpoint-key", "ema"]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Single(e.Trim().Split('\n'));
        Assert.Contains(Fixture("ckpt.pth") + ": the checkpoint has no entry 'ema' (the checkpoint key asked for); "
            + "its entries are 'model' (a dict of 172 tensors), 'optimizer' (a dict of 2 entries), 'epoch' (int), "
            + "'scaler' (a dict of 5 entries), 'args' (argparse.Namespace), 'model_ema' (a dict of 172 tensors)", e);
    }

    [Fact]
    public void AKeyWithoutWeightsIsRejected()
    {
        var (code, _, e) = Swc(["run", .. Model, "--checkpoint-key", "model_ema"]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("option --checkpoint-key 'model_ema' chooses an entry of a --weights file, and none is given", e);
    }

    [Fact]
    public void EveryCommandWithWeightsTakesTheKey()
    {
        foreach (var cmd in (string[])["inspect", "run", "compile", "bench", "tune", "emit", "grad"])
        {
            var (code, o, e) = Swc(cmd, "--help");
            Assert.True(code == 0, e);
            Assert.Contains("--checkpoint-key", o);
        }
        var (c2, o2, e2) = Swc(["inspect", .. Model, "--weights", Fixture("ckpt.pth"), "--checkpoint-key", "model_ema"]);
        Assert.True(c2 == 0, e2);
        Assert.Contains("ckpt.pth", o2);
    }
}
