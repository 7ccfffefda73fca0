using ShiftWise.IR;
using ShiftWise.Runtime.Train;

namespace ShiftWise.Runtime.Tests;

/// <summary>fp16's dynamic loss scaler (issue 22): skip and halve on overflow, grow after clean steps, its checkpoint.</summary>
public sealed class LossScalerTests
{
    [Fact]
    public void AnOverflowSkipsTheStepAndHalvesTheScale()
    {
        var s = new LossScaler(1024, growthInterval: 3);
        Assert.True(s.Record(true));
        Assert.Equal(1, s.CleanSteps);
        Assert.False(s.Record(false));
        Assert.Equal(512, s.Scale);
        Assert.Equal(0, s.CleanSteps);
        Assert.Equal(1, s.Skipped);
    }

    [Fact]
    public void TheScaleDoublesAfterTheGrowthIntervalOfCleanStepsInARow()
    {
        var s = new LossScaler(1024, growthInterval: 3);
        Assert.True(s.Record(true));
        Assert.True(s.Record(true));
        Assert.Equal(1024, s.Scale);
        Assert.True(s.Record(true));
        Assert.Equal(2048, s.Scale);
        Assert.Equal(0, s.CleanSteps);
        // an overflow restarts the count
        s.Record(true);
        s.Record(true);
        s.Record(false);
        s.Record(true);
        s.Record(true);
        Assert.Equal(1024, s.Scale);
        s.Record(true);
        Assert.Equal(2048, s.Scale);
    }

    [Fact]
    public void StartsAtPyTorchsDefaultsAndStaysWithinItsRange()
    {
        var s = new LossScaler();
        Assert.Equal(65536, s.Scale);
        Assert.Equal(2000, s.GrowthInterval);
        var top = new LossScaler(LossScaler.MaxScale, growthInterval: 1);
        top.Record(true);
        Assert.Equal(LossScaler.MaxScale, top.Scale);
        var bottom = new LossScaler(LossScaler.MinScale * 2);
        Assert.False(bottom.Record(false));
        var e = Assert.Throws<IrException>(() => bottom.Record(false));
        Assert.Contains("diverged", e.Message);
        Assert.Throws<ArgumentException>(() => new LossScaler(1000)); // not a power of two
        Assert.Throws<ArgumentException>(() => new LossScaler(0));
    }

    [Fact]
    public void TheStateRoundTripsThroughACheckpointsMetadata()
    {
        var s = new LossScaler(4096, growthInterval: 10);
        for (int i = 0; i < 7; i++) s.Record(true);
        var meta = new Dictionary<string, string>();
        s.Save().WriteTo(meta);
        var back = LossScaleState.ReadFrom(meta, "ckpt.safetensors");
        Assert.Equal(new LossScaleState(4096, 7), back);
        var t = new LossScaler(growthInterval: 10);
        t.Load(back!);
        Assert.Equal(4096, t.Scale);
        Assert.Equal(7, t.CleanSteps);
        Assert.Null(LossScaleState.ReadFrom(new Dictionary<string, string>(), "x"));
        var bad = Assert.Throws<IrException>(() => LossScaleState.ReadFrom(
            new Dictionary<string, string> { ["loss_scale"] = "big" }, "ckpt.safetensors"));
        Assert.Contains("ckpt.safetensors", bad.Message);
        Assert.Throws<ArgumentException>(() => t.Load(new LossScaleState(3, 0)));
        Assert.Throws<ArgumentException>(() => t.Load(new LossScaleState(8, 10)));
    }
}
