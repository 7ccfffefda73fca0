using ShiftWise.IR.Ops;
using ShiftWise.IR.Reference;

namespace ShiftWise.IR.Tests;

/// <summary>Reference results checked against values worked out by hand.</summary>
public sealed class HandComputedTests
{
    [Fact]
    public void DropPathTrainKeepsOrZeroesWholeSamplesAndRescales()
    {
        var op = new DropPath(0.5, Mode.Train, 42);
        var x = Tensor.F64(new Shape(64, 3), Enumerable.Range(0, 192).Select(i => i + 1.0).ToArray());
        var y = ReferenceExecutor.Evaluate(op, [x])[0].ToDoubles();
        int kept = 0;
        for (int b = 0; b < 64; b++)
        {
            bool keep = op.Keeps(b);
            kept += keep ? 1 : 0;
            for (int k = 0; k < 3; k++)
            {
                Assert.Equal(keep ? 2.0 * (b * 3 + k + 1) : 0.0, y[b * 3 + k]);
            }
        }
        Assert.InRange(kept, 16, 48); // p = 0.5: a fair generator keeps about half of 64
        Assert.NotEqual(Enumerable.Range(0, 64).Select(b => op.Keeps(b)), Enumerable.Range(0, 64).Select(b => (op with { Seed = 43 }).Keeps(b)));
    }

    [Fact]
    public void DropPathEvalIsIdentity()
    {
        var x = Tensor.F64(new Shape(2, 2), 1, 2, 3, 4);
        Assert.Equal(x.ToDoubles(), ReferenceExecutor.Evaluate(new DropPath(0.9, Mode.Eval, 1), [x])[0].ToDoubles());
    }

    [Fact]
    public void ShiftAddSingleImpulseLandsWhereSpec18Says()
    {
        // SPEC 1.8: X[b,1,i,j] (sub-channel 1 of rep channel 0) goes, in replica 0, to Y_h[b,0,i−1,j+1] and
        // Y_v[b,0,i−2,j−1]; in replica 1 to Y_h[b,0,i−1,j+1] again, Y_v[b,0,i−5,j−1] and Y_i[b,0,i−1,j−1].
        var op = OpCatalog.SpecExample();
        int h = 8, w = 8, hin = h + 2, win = w + 2;
        var x = new double[6 * hin * win];
        int i0 = 6, j0 = 3;
        x[(1 * hin + i0) * win + j0] = 1;
        var ys = ReferenceExecutor.Evaluate(op, [Tensor.F64(new Shape(1, 6, hin, win), x)]);
        double At(int k, int o, int y, int xx) => ys[k].ToDoubles()[(o * h + y) * w + xx];
        Assert.Equal(2.0, At(0, 0, i0 - 1, j0 + 1));
        Assert.Equal(1.0, At(1, 0, i0 - 2, j0 - 1));
        Assert.Equal(1.0, At(1, 0, i0 - 5, j0 - 1));
        Assert.Equal(1.0, At(2, 0, i0 - 1, j0 - 1));
        Assert.Equal(2.0, ys[0].ToDoubles().Sum());
        Assert.Equal(2.0, ys[1].ToDoubles().Sum());
        Assert.Equal(1.0, ys[2].ToDoubles().Sum());
    }

    [Fact]
    public void F32GraphRoundsEachNodeToSinglePrecision()
    {
        var x = Tensor.F32(new Shape(1), 1f / 3f);
        var y = ReferenceExecutor.Evaluate(new Binary(BinaryKind.Mul), [x, Tensor.F32(new Shape(1), 3f)])[0];
        Assert.Equal(DType.F32, y.DType);
        Assert.Equal((float)(1.0 * (1f / 3f) * 3), ((float[])y.Data)[0]);
    }

    [Fact]
    public void ErfMatchesKnownValues()
    {
        Assert.Equal(0.8427007929497149, ShiftWise.IR.Reference.ElementKernels.Erf(1.0), 15);
        Assert.Equal(-0.9953222650189527, ShiftWise.IR.Reference.ElementKernels.Erf(-2.0), 15);
        Assert.Equal(0.9999779095030014, ShiftWise.IR.Reference.ElementKernels.Erf(3.0), 15);
        Assert.Equal(1.0, ShiftWise.IR.Reference.ElementKernels.Erf(7.0), 15);
    }
}
