using ShiftWise.IR;
using ShiftWise.Runtime.Train;

namespace ShiftWise.Runtime.Tests;

/// <summary>The training configuration's "precision" key (issue 22): parsed, validated, part of the fingerprint.</summary>
public sealed class TrainPrecisionConfigTests
{
    private const string Base = """{ "model": { "preset": "sw-fmnist" }, "train": { "epochs": 1 """;

    [Theory]
    [InlineData("fp32", Precision.Fp32)]
    [InlineData("tf32", Precision.Tf32)]
    [InlineData("bf16", Precision.Bf16)]
    [InlineData("fp16", Precision.Fp16)]
    public void ThePrecisionKeyIsRead(string word, Precision want)
    {
        var cfg = TrainConfig.Parse(Base + $$""", "precision": "{{word}}" } }""", "c.json");
        Assert.Equal(want, cfg.Precision);
        Assert.Equal(Precision.Fp32, TrainConfig.Parse(Base + "} }", "c.json").Precision);
    }

    [Fact]
    public void AnUnknownPrecisionIsRefusedNamingTheKey()
    {
        var e = Assert.Throws<IrException>(() => TrainConfig.Parse(Base + """, "precision": "half" } }""", "c.json"));
        Assert.Contains("c.json: train.precision: 'half' is not one of fp32, tf32, bf16, fp16", e.Message);
    }

    [Fact]
    public void SixteenBitRunsHaveTheirOwnFingerprintAndFp32KeepsItsOld()
    {
        var plain = TrainConfig.Parse(Base + "} }", "c.json");
        var fp32 = TrainConfig.Parse(Base + """, "precision": "fp32" } }""", "c.json");
        Assert.Equal(plain.Fingerprint(), fp32.Fingerprint());
        var fps = new[] { "tf32", "bf16", "fp16" }
            .Select(p => TrainConfig.Parse(Base + $$""", "precision": "{{p}}" } }""", "c.json").Fingerprint());
        Assert.Equal(4, fps.Append(plain.Fingerprint()).Distinct().Count());
    }

    [Fact]
    public void TheCpuTrainerRefuses16Bits()
    {
        var m = Frontend.ModelSource.Load("sw-fmnist", new Frontend.ModelArgs { Batch = 2,
            Training = new Frontend.Zoo.TrainingForm() }, withWeights: true);
        var e = Assert.Throws<OptionException>(() => Compile.Driver.CompileTraining(m,
            new OptimizerSettings("adamw", 1e-3, 0.05), "cpu", null, Precision.Bf16));
        Assert.Contains("option --precision: bf16 trains on --device cuda", e.Message);
    }
}
