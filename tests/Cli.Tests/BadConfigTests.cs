using static ShiftWise.Cli.Tests.SwcRun;

namespace ShiftWise.Cli.Tests;

/// <summary>Bad configurations are refused with exit code 2 and a message that names the option (docs/commands.md: exit codes).</summary>
public sealed class BadConfigTests
{
    public static TheoryData<string, string> Cases() => new()
    {
        // network options
        { "inspect sw-v2 --kernel-size 3,3,3,3,5", "option --kernel-size: big kernel 3 of stage 0 must be >= the small kernel 5" },
        { "inspect sw-v2 --kernel-size 7,5,5,3,4", "option --kernel-size: the small kernel 4 must be odd" },
        { "inspect sw-v2 --ghost-ratio 1", "option --ghost-ratio: 1 must be in [0, 1)" },
        { "inspect sw-v2 --ghost-ratio -0.1", "option --ghost-ratio: -0.1 must be in [0, 1)" },
        { "inspect sw-v2 --dims 0,16,16,32", "option --dims: stage widths [0,16,16,32]" },
        { "inspect sw-v2 --depths 1,1,1", "option --depths: needs 4 block counts" },
        { "inspect sw-v2 --batch 0", "option --batch: 0 must be >= 1" },
        { "inspect sw-v2 --stem-stride 3", "option --stem-stride: 3 must be 4" },
        // the single-layer model's options
        { "inspect sw-layer --channels 0", "option --channels: 0 must be >= 2" },
        { "inspect sw-layer --small 4", "option --small: the small kernel 4 must be odd" },
        { "inspect sw-layer --big 3 --small 5", "option --big: the big kernel 3 must be >= the small kernel 5" },
        { "inspect sw-layer --height 0", "option --height: the plane 0x56 must be at least 1x1" },
        { "inspect sw-layer --ghost-ratio 1.5", "option --ghost-ratio: 1.5 must be in [0, 1)" },
        // values that are not numbers
        { "inspect sw-v2 --depths 1,x,1,1", "--depths" },
        { "inspect sw-v2 --batch 99999999999", "--batch" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_bad_option_is_refused_with_exit_2_naming_it(string command, string message)
    {
        var (code, _, e) = Swc(command.Split(' '));
        Assert.True(code == ExitCodes.BadInput, $"exit {code}, expected {ExitCodes.BadInput}; stderr:\n{e}");
        Assert.Contains(message, e);
        Assert.DoesNotContain("   at ", e);  // a sentence, not a stack trace
    }

    [Fact]
    public void An_input_that_disagrees_with_the_options_is_refused_naming_both()
    {
        var dir = Directory.CreateTempSubdirectory("swc-bad-").FullName;
        var x = Path.Combine(dir, "x.npy");
        Frontend.IO.Npy.Write(x, IR.Tensor.F32(new IR.Shape(1, 3, 32, 32), new float[3 * 32 * 32]));
        var (code, _, e) = Swc(["run", "sw-layer", "--channels", "8", "--input", x]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("option --channels 8 disagrees with the --input array of shape", e);
        (code, _, e) = Swc(["run", "sw-v2", "--image-size", "24", "--input", x]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("option --image-size 24 disagrees with the --input array", e);
        (code, _, e) = Swc(["run", "sw-v2", "--batch", "2", "--input", x]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("option --batch 2 disagrees", e);
    }
}
