using ShiftWise.IR;
using ShiftWise.Runtime.Cuda;

namespace ShiftWise.Cli.Tests;

/// <summary>What swc's exit code says (docs/commands.md): a rejected input is 2, a bug is 70 with the stack trace.</summary>
public class ExitCodeTests
{
    private static (int Code, string Err) Guarded(Exception e)
    {
        var err = new StringWriter();
        int code = SwcApp.Guard(() => throw e, err);
        return (code, err.ToString());
    }

    [Fact]
    public void ARejectedInputExitsTwoWithItsMessageOnly()
    {
        foreach (var e in new IrException[]
        {
            new("x.npy: not an .npy file"), new OptionException("option --batch: 0 must be >= 1"),
            new DeviceMemoryException("CUDA: cuMemAlloc failed: CUDA_ERROR_OUT_OF_MEMORY"),
        })
        {
            var (code, err) = Guarded(e);
            Assert.Equal(ExitCodes.BadInput, code);
            Assert.Equal($"error: {e.Message}{Environment.NewLine}", err);
        }
    }

    [Fact]
    public void AnythingElseIsAnInternalErrorWithTheStackTrace()
    {
        foreach (var e in new Exception[]
        {
            new InvalidOperationException("the plan refers to a value it does not define"),
            new CudaException("cuLaunchKernel sw_cross", "CUDA_ERROR_ILLEGAL_ADDRESS"),
        })
        {
            var (code, err) = Guarded(e);
            Assert.Equal(ExitCodes.Internal, code);
            Assert.StartsWith("internal error (a bug in swc", err);
            Assert.Contains(e.Message, err);
            Assert.Contains(" at ", err); // the stack trace
        }
    }

    [Fact]
    public void ASuccessfulCommandKeepsItsCode()
    {
        var err = new StringWriter();
        Assert.Equal(ExitCodes.Ok, SwcApp.Guard(() => ExitCodes.Ok, err));
        Assert.Equal("", err.ToString());
    }
}
