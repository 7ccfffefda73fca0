using System.Globalization;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// CUDA lowering of the training graph's element-wise, reduction and loss ops and their grads: the grads of unary
/// activations, of add and mul with broadcasting (an operand of the output's size element by element, a broadcast
/// operand as a fixed-order reduction, <see cref="GradReduceModel"/>), of mean over trailing axes and of reshape;
/// label-smoothed cross_entropy forward and backward (including the dy=[] seed, <see cref="CrossEntropyModel"/>);
/// train-mode drop_path forward and backward (<see cref="DropPathModel"/>). Integer inputs (labels, the step) reach
/// the kernels as floats, as the runtime uploads every input: exact below 2^24. No atomics; every sum has a fixed
/// order. Tunable: block.
/// </summary>
internal static class ElementGradLowering
{
    /// <summary>Whether <see cref="Lower(NodeLowering, Grad)"/> handles the grad of <paramref name="of"/>.</summary>
    public static bool Handles(Op of) => of is Unary or Binary or Mean or Reshape or CrossEntropy or DropPath;

    /// <summary>The forward ops lowered here: cross_entropy and train-mode drop_path.</summary>
    public static void LowerForward(NodeLowering ctx)
    {
        int threads = LoweringSupport.Tunables(ctx)["block"];
        switch (ctx.Node.Op)
        {
            case CrossEntropy ce:
                RequireF32Except(ctx, 1);
                CrossEntropyKernel(ctx, threads, ce, null);
                break;
            case DropPath d:
                RequireF32Except(ctx, 1);
                DropPathKernel(ctx, threads, d, ctx.In(0), ctx.Node.Inputs.Count == 2 ? ctx.In(1) : null);
                break;
            default:
                throw new IrException($"{ctx.Node.Describe()}: not a cross_entropy or drop_path");
        }
    }

    /// <summary>Adds the kernels of a grad node whose forward op <see cref="Handles"/>.</summary>
    public static void Lower(NodeLowering ctx, Grad op)
    {
        int threads = LoweringSupport.Tunables(ctx)["block"];
        int nf = op.ForwardInputs(ctx.Node.Inputs.Count);
        if (op.OutGrads.Count == 0 && op.Of is not CrossEntropy)
        {
            throw Unsupported(ctx, op, "dy=[] (seeding from a one-element output) has a CUDA kernel for "
                + "cross_entropy only");
        }
        // grad inputs: the forward inputs, the forward output, then its gradient when dy=[0]
        var gy = op.OutGrads.Count == 1 ? ctx.In(nf + 1) : null;
        switch (op.Of)
        {
            case Unary u:
                RequireF32Except(ctx);
                var (rule, arg, name) = u.Kind switch
                {
                    UnaryKind.Gelu => ("gelu", 0, "x"),
                    UnaryKind.Relu => ("relu", 0, "x"),
                    UnaryKind.Sigmoid => ("sigmoid", 1, "y"),
                    _ => throw Unsupported(ctx, op, $"no rule for {u.Kind}"),
                };
                Pointwise(ctx, threads, rule, 1, new KernelSignature().Out("dx", ctx.Out(0))
                    .In(name, ctx.In(arg)).In("gy", gy!));
                break;
            case Binary b:
                RequireF32Except(ctx);
                for (int j = 0; j < op.Wrt.Count; j++) BinaryGrad(ctx, threads, b, op.Wrt[j], j, gy!);
                break;
            case Mean m:
                RequireF32Except(ctx);
                var x = ctx.InType(0).Shape;
                var (_, count) = ReduceLowering.Split(x, m.Axes) ?? throw Unsupported(ctx, op,
                    $"only a mean over trailing axes (e.g. [2,3] of NCHW) has a gradient kernel, not {m.Axes} of {x}");
                Pointwise(ctx, threads, "mean", count, Copy(ctx, gy!));
                break;
            case Reshape:
                RequireF32Except(ctx);
                Pointwise(ctx, threads, "copy", 1, Copy(ctx, gy!));
                break;
            case DropPath d:
                RequireF32Except(ctx, 1);
                if (d.Mode == Mode.Eval) Pointwise(ctx, threads, "copy", 1, Copy(ctx, gy!));
                else DropPathKernel(ctx, threads, d, gy!, nf == 2 ? ctx.In(1) : null);
                break;
            case CrossEntropy ce:
                RequireF32Except(ctx, 1);
                CrossEntropyKernel(ctx, threads, ce, gy);
                break;
            default:
                throw Unsupported(ctx, op, "not an element-wise op");
        }
    }

    private static IrException Unsupported(NodeLowering ctx, Grad op, string why) =>
        new($"{ctx.Node.Describe()}: no CUDA lowering for grad of {op.Of.Name}: {why}; run the backward graph on the "
            + "CPU target");

    /// <summary>Every input but those in <paramref name="ints"/> (labels, step) and every output is float32.</summary>
    private static void RequireF32Except(NodeLowering ctx, params int[] ints)
    {
        for (int i = 0; i < ctx.Node.Inputs.Count; i++)
        {
            var t = ctx.InType(i);
            bool ok = ints.Contains(i) ? t.DType is DType.I64 or DType.I32 or DType.F32 : t.DType == DType.F32;
            if (!ok) throw new IrException($"{ctx.Node.Describe()}: the CUDA target cannot read input {i} ({t})");
        }
        for (int i = 0; i < ctx.Node.Outputs.Count; i++)
        {
            if (ctx.OutType(i).DType != DType.F32)
            {
                throw new IrException($"{ctx.Node.Describe()}: the CUDA target runs float32 only, output {i} is "
                    + $"{ctx.OutType(i)}");
            }
        }
    }

    private static KernelSignature Copy(NodeLowering ctx, ArgRef gy) =>
        new KernelSignature().Out("dx", ctx.Out(0)).In("gy", gy);

    private static void Pointwise(NodeLowering ctx, int threads, string rule, long count, KernelSignature sig)
    {
        long total = ctx.OutType(0).Shape.Elements;
        if (total == 0) return;
        string prefix = string.Create(CultureInfo.InvariantCulture, $"grad_{rule}_{total}")
            + (rule == "mean" ? string.Create(CultureInfo.InvariantCulture, $"_c{count}") : "");
        var name = ctx.AddKernel(prefix, "grad_elem_pointwise", "grad_elem_pointwise.cu.sbn",
            n => new GradPointwiseModel(n, threads, total, rule, count, sig));
        ctx.Launch(name, LoweringSupport.Grid(ctx, total, threads), new Dim3(threads), 0, sig.Args);
    }

    // Output j of the grad node is the gradient of operand `which` (inputs: a, b, y, gy).
    private static void BinaryGrad(NodeLowering ctx, int threads, Binary b, int which, int j, ArgRef gy)
    {
        var outShape = ctx.InType(2).Shape;
        var mine = ctx.InType(which).Shape;
        var other = ctx.InType(1 - which).Shape;
        bool mul = b.Kind == BinaryKind.Mul;
        if (mine.Elements == 0) return;
        string word = mul ? "mul" : "add";
        string tag = $"{word}_d{which}_{LoweringSupport.Tag(mine)}_{LoweringSupport.Tag(other)}";
        if (mine.Elements == outShape.Elements)
        {
            if (!mul)
            {
                Pointwise(ctx, threads, "copy", 1, new KernelSignature().Out("dx", ctx.Out(j)).In("gy", gy));
                return;
            }
            // d(a·b)/da = gy·b with b broadcast as in the forward: the forward's own binary kernel
            var name = ctx.AddKernel("grad_" + tag, "binary", "binary.cu.sbn",
                n => new BinaryModel(n, threads, "*", outShape, other, outShape));
            ctx.Launch(name, LoweringSupport.Grid(ctx, outShape.Elements, threads), new Dim3(threads), 0,
                [ctx.Out(j), gy, ctx.In(1 - which)]);
            return;
        }
        GradReduceModel Model(string n) => new(n, threads, mine, mul ? other : null, outShape);
        var red = ctx.AddKernel("grad_reduce_" + tag, "grad_elem_reduce", "grad_elem_reduce.cu.sbn", n => Model(n));
        var m = Model(red);
        ctx.Launch(red, LoweringSupport.Grid(ctx, m.Blocks, 1), new Dim3(threads), 0,
            mul ? [ctx.Out(j), gy, ctx.In(1 - which)] : [ctx.Out(j), gy]);
    }

    private static void CrossEntropyKernel(NodeLowering ctx, int threads, CrossEntropy ce, ArgRef? gy)
    {
        var z = ctx.InType(0).Shape;
        bool grad = ctx.Node.Op is Grad;
        var sig = new KernelSignature().Out(grad ? "dz" : "loss", ctx.Out(0)).In("logits", ctx.In(0))
            .In("labels", ctx.In(1));
        if (gy is not null) sig.In("gl", gy);
        string kind = grad ? "cross_entropy_grad" : "cross_entropy";
        string prefix = string.Create(CultureInfo.InvariantCulture, $"{kind}_{z[0]}x{z[1]}")
            + (grad ? gy is null ? "_seed" : "_gy" : "");
        CrossEntropyModel Model(string n) => new(n, kind, threads, z[0], z[1], ce.LabelSmoothing, gy is not null, sig);
        var name = ctx.AddKernel(prefix, kind, "cross_entropy.cu.sbn", n => Model(n));
        ctx.Launch(name, grad ? LoweringSupport.Grid(ctx, Model(name).Blocks, 1) : new Dim3(1), new Dim3(threads), 0,
            sig.Args);
    }

    private static void DropPathKernel(NodeLowering ctx, int threads, DropPath d, ArgRef src, ArgRef? step)
    {
        var x = ctx.OutType(0).Shape;
        long total = x.Elements;
        if (total == 0) return;
        var sig = new KernelSignature().Out("dst", ctx.Out(0)).In("src", src);
        if (step is not null) sig.In("step", step);
        long per = total / x[0];
        string prefix = string.Create(CultureInfo.InvariantCulture, $"drop_path_train_{x[0]}x{per}")
            + (step is null ? "" : "_step");
        var name = ctx.AddKernel(prefix, "drop_path_train", "drop_path_train.cu.sbn",
            n => new DropPathModel(n, threads, total, per, d.Prob, d.Seed, step is not null, sig));
        ctx.Launch(name, LoweringSupport.Grid(ctx, total, threads), new Dim3(threads), 0, sig.Args);
    }
}
