using System.Globalization;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// CUDA lowering of the grads of conv2d (every form the depthwise path of <see cref="GradLowering"/> does not take:
/// dense, grouped, strided, and any conv's bias gradient) and of linear.
/// <para>
/// conv2d: direct kernels rather than im2col + cuBLAS, because they need no scratch buffer, mirror the float64
/// reference's gather form term for term, and make determinism a property of the source (every sum has one fixed
/// order, no atomics): the input gradient is a gather (<see cref="ConvGradInputModel"/>), the weight gradient a block
/// per weight row with a shared-memory tree (<see cref="ConvGradWeightModel"/>), the bias gradient a block per
/// channel (<see cref="BiasGradModel"/>). Tunables: block (threads of the input gather), wblock (threads of the
/// weight and bias blocks). Input, weight, output gradient and every result share one storage type, float32, bf16 or
/// fp16 (issue 22); 16-bit kernels widen what they load, sum in float32 and round once per result.
/// </para>
/// <para>
/// linear (y = x·Wᵀ + b over the last axis, rows = every leading axis): dx = gy·W and dW = gyᵀ·x as one cuBLAS
/// <see cref="GemmCall"/> each (cuBLAS is bit-reproducible run to run on one GPU), db by the bias kernel. Tunable:
/// wblock. In float32, bf16 or fp16 (issue 22: sums in float32, each gradient rounded once to the type); the conv2d
/// grads are float32 only.
/// </para>
/// </summary>
internal static class ConvGradLowering
{
    /// <summary>Adds the kernels of a conv2d grad node.</summary>
    public static void Conv(NodeLowering ctx, Grad op, Conv2d c)
    {
        // float32, or bf16 / fp16 storage (issue 22): 16-bit loads, float32 sums, one rounding per output
        var storage = LoweringSupport.Storage(ctx);
        RequireDy(ctx, op);
        var (x, w) = (ctx.InType(0).Shape, ctx.InType(1).Shape);
        int taps = w[2] * w[3];
        if (taps > ConvGradWeightModel.MaxTaps && op.Wrt.Contains(1))
        {
            throw Unsupported(ctx, op,
                $"the weight gradient keeps its {taps} taps in registers, at most {ConvGradWeightModel.MaxTaps}");
        }
        var y = c.Infer([ctx.InType(0), ctx.InType(1)])[0].Shape;
        long positions = (long)y[0] * y[2] * y[3];
        var t = LoweringSupport.Tunables(ctx, new Dictionary<string, int>
        {
            ["block"] = LoweringSupport.DefaultBlock,
            ["wblock"] = op.Wrt.Contains(1)
                ? ConvGradWeightModel.DefaultThreads(taps, positions)
                : BiasGradModel.DefaultThreads(positions),
        });
        int threads = t["block"], wthreads = t["wblock"];
        int reduced = op.Wrt.Contains(1) ? Math.Min(taps, ConvGradWeightModel.MaxTaps) : 1;
        CheckBlock(ctx, wthreads, reduced);
        // grad inputs: x, w[, bias], y, gy
        int gy = op.ForwardInputs(ctx.Node.Inputs.Count) + 1;
        var inv = CultureInfo.InvariantCulture;
        string dil = c.Dilation[0] * c.Dilation[1] > 1
            ? string.Create(inv, $"d{c.Dilation[0]}x{c.Dilation[1]}") : "";
        string shape = string.Create(inv,
            $"c{x[1]}h{x[2]}w{x[3]}_o{w[0]}k{w[2]}x{w[3]}s{c.Stride[0]}x{c.Stride[1]}p{c.Padding[0]}x{c.Padding[1]}")
            + dil + (c.Groups > 1 ? string.Create(inv, $"g{c.Groups}") : "") + LoweringSupport.Suffix(storage);
        for (int j = 0; j < op.Wrt.Count; j++)
        {
            if (ctx.OutType(j).Shape.Elements == 0) continue;
            switch (op.Wrt[j])
            {
                case 0:
                {
                    ConvGradInputModel Model(string n) => new(n, threads, c, x, w) { Storage = storage };
                    var name = ctx.AddKernel("grad_conv2d_input_" + shape, "grad_conv2d_input",
                        "grad_conv2d_input.cu.sbn", n => Model(n));
                    ctx.Launch(name, LoweringSupport.Grid(ctx, Model(name).Work, threads), new Dim3(threads), 0,
                        [ctx.Out(j), ctx.In(1), ctx.In(gy)]);
                    break;
                }
                case 1:
                {
                    ConvGradWeightModel Model(string n) => new(n, wthreads, c, x, w) { Storage = storage };
                    var name = ctx.AddKernel("grad_conv2d_weight_" + shape, "grad_conv2d_weight",
                        "grad_conv2d_weight.cu.sbn", n => Model(n));
                    ctx.Launch(name, new Dim3(Model(name).Rows), new Dim3(wthreads), 0,
                        [ctx.Out(j), ctx.In(0), ctx.In(gy)]);
                    break;
                }
                default:
                    Bias(ctx, wthreads, y[0], w[0], (long)y[2] * y[3], ctx.Out(j), ctx.In(gy), storage);
                    break;
            }
        }
    }

    /// <summary>Adds the GEMM calls and kernels of a linear grad node.</summary>
    public static void Linear(NodeLowering ctx, Grad op)
    {
        var storage = LoweringSupport.Storage(ctx);
        RequireDy(ctx, op);
        var (x, w) = (ctx.InType(0).Shape, ctx.InType(1).Shape);
        int o = w[0], k = w[1];
        int rows = Int(ctx, RowsOf(x), "rows");
        var t = ctx.Tunables(new Dictionary<string, int> { ["wblock"] = BiasGradModel.DefaultThreads(rows) });
        int wthreads = t["wblock"];
        CheckBlock(ctx, wthreads, 1);
        int gy = op.ForwardInputs(ctx.Node.Inputs.Count) + 1;
        for (int j = 0; j < op.Wrt.Count; j++)
        {
            if (ctx.OutType(j).Shape.Elements == 0) continue;
            switch (op.Wrt[j])
            {
                case 0:
                    // column-major: dxᵀ (k×rows) = Wᵀ (k×o, W as stored, ld k) · gyᵀ (o×rows, gy as stored, ld o)
                    ctx.Gemm(new GemmCall("", TransA: false, TransB: false, M: k, N: rows, K: o, A: ctx.In(1),
                        Lda: Math.Max(1, k), StrideA: 0, B: ctx.In(gy), Ldb: Math.Max(1, o), StrideB: 0,
                        C: ctx.Out(j), Ldc: Math.Max(1, k), StrideC: 0, Batch: 1, Alpha: 1f, Beta: 0f)
                        { Storage = storage });
                    break;
                case 1:
                    // column-major: dWᵀ (k×o) = xᵀ (k×rows, x as stored, ld k) · gy (rows×o: gy as stored, transposed)
                    ctx.Gemm(new GemmCall("", TransA: false, TransB: true, M: k, N: o, K: rows, A: ctx.In(0),
                        Lda: Math.Max(1, k), StrideA: 0, B: ctx.In(gy), Ldb: Math.Max(1, o), StrideB: 0,
                        C: ctx.Out(j), Ldc: Math.Max(1, k), StrideC: 0, Batch: 1, Alpha: 1f, Beta: 0f)
                        { Storage = storage });
                    break;
                default:
                    Bias(ctx, wthreads, rows, o, 1, ctx.Out(j), ctx.In(gy), storage);
                    break;
            }
        }
    }

    private static long RowsOf(Shape x)
    {
        long r = 1;
        for (int i = 0; i < x.Rank - 1; i++) r *= x[i];
        return r;
    }

    private static void Bias(NodeLowering ctx, int threads, long outer, int channels, long inner, ArgRef db,
        ArgRef gy, DType storage)
    {
        string prefix = string.Create(CultureInfo.InvariantCulture, $"grad_bias_n{outer}_c{channels}_p{inner}")
            + LoweringSupport.Suffix(storage);
        var name = ctx.AddKernel(prefix, "grad_bias", "grad_conv2d_bias.cu.sbn",
            n => new BiasGradModel(n, threads, outer, channels, inner) { Storage = storage });
        ctx.Launch(name, new Dim3(channels), new Dim3(threads), 0, [db, gy]);
    }

    private static void CheckBlock(NodeLowering ctx, int threads, int taps)
    {
        if (threads < 32 || threads > 1024 || (threads & (threads - 1)) != 0 ||
            DwConvGradWeightModel.SharedBytes(taps, threads) > DwConvGradWeightModel.MaxSharedBytes)
        {
            throw new IrException($"{ctx.Node.Describe()}: tunable wblock = {threads} must be a power of two in "
                + $"[32, 1024] whose reduction of {taps} taps fits {DwConvGradWeightModel.MaxSharedBytes} bytes of "
                + "shared memory");
        }
    }

    private static void RequireDy(NodeLowering ctx, Grad op)
    {
        if (op.OutGrads.Count == 0)
        {
            throw Unsupported(ctx, op, "dy=[] (seeding from a one-element output) has no CUDA kernel");
        }
    }

    private static IrException Unsupported(NodeLowering ctx, Grad op, string why) =>
        new($"{ctx.Node.Describe()}: no CUDA lowering for grad of {op.Of.Name}: {why}; run the backward graph on the "
            + "CPU target");

    private static int Int(NodeLowering ctx, long v, string what) => v <= int.MaxValue ? (int)v
        : throw new IrException($"{ctx.Node.Describe()}: {v} {what} exceed a 32-bit GEMM dimension");
}
