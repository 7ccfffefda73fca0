using ShiftWise.CodegenCuda.Standalone;
using static ShiftWise.Cli.Tests.SwcRun;

namespace ShiftWise.Cli.Tests;

/// <summary>swc emit from the command line: the tree, the weights file, the arch, and the folders it refuses.</summary>
public sealed class EmitTests
{
    [Fact]
    public void EmitWritesABuildableTreeForTheArchAndBatchAsked()
    {
        var dir = Path.Combine(Directory.CreateTempSubdirectory("swc-emit-").FullName, "model");
        var (code, o, e) = Swc(["emit", .. SwcRun.SmallSwV2, "--batch", "3", "--arch", "sm_80", "--out", dir, "--seed", "4"]);
        Assert.True(code == 0, e);
        Assert.Contains($"for sm_80 to {dir}: ", o);
        Assert.Contains("cmake -S " + dir, o);
        Assert.Contains("set(SWC_CUDA_ARCHITECTURES \"80\"", File.ReadAllText(Path.Combine(dir, "CMakeLists.txt")));
        Assert.Contains("#define SWC_INPUT_SHAPE { 3, 3, 24, 24 }", File.ReadAllText(Path.Combine(dir, "include", "swc_model.h")));
        var w = WeightsBin.Read(File.ReadAllBytes(Path.Combine(dir, "weights.bin")));
        Assert.Contains(w.Rows, r => r.Name.EndsWith(".sw_band_h", StringComparison.Ordinal));
        // another seed: other weights, the same plan, so the same sources and model id
        var dir2 = dir + "-seed5";
        Assert.Equal(0, Swc(["emit", .. SwcRun.SmallSwV2, "--batch", "3", "--arch", "sm_80", "--out", dir2, "--seed", "5"]).Code);
        Assert.Equal(File.ReadAllText(Path.Combine(dir, "src", "swc_model.cu")), File.ReadAllText(Path.Combine(dir2, "src", "swc_model.cu")));
        Assert.NotEqual(File.ReadAllBytes(Path.Combine(dir, "weights.bin")), File.ReadAllBytes(Path.Combine(dir2, "weights.bin")));
    }

    [Fact]
    public void EmitMaxBatchWritesOnePlanPerBucketAndRefusesBadValues()
    {
        var root = Directory.CreateTempSubdirectory("swc-emit-").FullName;
        try
        {
            MaxBatch(root);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static void MaxBatch(string root)
    {
        var dir = Path.Combine(root, "model");
        var (code, o, e) = Swc(["emit", .. SwcRun.SmallSwV2, "--max-batch", "2", "--arch", "sm_80", "--out", dir]);
        Assert.True(code == 0, e);
        Assert.Contains("batches 1 to 2: one plan per bucket (1, 2), ", o);
        Assert.Contains("batch 2 (2 of 2 buckets): compiling", e);
        var header = File.ReadAllText(Path.Combine(dir, "include", "swc_model.h"));
        Assert.Contains("#define SWC_INPUT_SHAPE { 2, 3, 24, 24 }\n", header);
        Assert.Contains("#define SWC_MAX_BATCH 2\n", header);
        Assert.Contains("#define SWC_BATCH_BUCKETS { 1, 2 }\n", header);
        Assert.Equal(["plan_b1.json"], Directory.GetFiles(Path.Combine(dir, "plans")).Select(Path.GetFileName));
        // a plain emit has none of it
        var plain = Path.Combine(root, "plain");
        Assert.Equal(0, Swc(["emit", .. SwcRun.SmallSwV2, "--batch", "2", "--arch", "sm_80", "--out", plain]).Code);
        Assert.DoesNotContain("SWC_MAX_BATCH", File.ReadAllText(Path.Combine(plain, "include", "swc_model.h")));
        Assert.False(Directory.Exists(Path.Combine(plain, "plans")));
        (code, _, e) = Swc(["emit", .. SwcRun.SmallSwV2, "--max-batch", "4", "--batch", "2", "--out", Path.Combine(root, "c")]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("options --batch 2 and --max-batch 4 conflict", e);
        (code, _, e) = Swc(["emit", .. SwcRun.SmallSwV2, "--max-batch", "0", "--out", Path.Combine(root, "z")]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("option --max-batch: 0 is out of range (1 to 65536)", e);
        (code, _, e) = Swc(["emit", .. SwcRun.SmallSwV2, "--max-batch", "two", "--out", Path.Combine(root, "t")]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("option --max-batch: 'two' is not an integer", e);
        Assert.Equal(["model", "plain"], Directory.GetFileSystemEntries(root).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void EmitRefusesABadArchAndAFolderItDidNotWriteAndLeavesNothingBehind()
    {
        var root = Directory.CreateTempSubdirectory("swc-emit-").FullName;
        var (code, _, e) = Swc(["emit", .. SwcRun.SmallSwV2, "--arch", "ampere", "--out", Path.Combine(root, "a")]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("'ampere' is not a CUDA device arch", e);
        Assert.Empty(Directory.GetFileSystemEntries(root));
        var mine = Path.Combine(root, "mine");
        Directory.CreateDirectory(mine);
        File.WriteAllText(Path.Combine(mine, "CMakeLists.txt"), "project(mine)\n");
        (code, _, e) = Swc(["emit", .. SwcRun.SmallSwV2, "--out", mine]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("is not a tree written by swc emit", e);
        Assert.Equal("project(mine)\n", File.ReadAllText(Path.Combine(mine, "CMakeLists.txt")));
        Assert.Single(Directory.GetFileSystemEntries(root));
    }
}
