using System.Globalization;
using ShiftWise.IR;
using ShiftWise.IR.Ops;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// CUDA lowering of the training graph's element-wise, reduction and loss ops and their grads: the grads of unary
/// activations, of add and mul with broadcasting (an operand of the output's size element by element, a broadcast
/// operand as a fixed-order reduction, <see cref="GradReduceModel"/>), of mean over trailing axes and of reshape;
/// label-smoothed cross_entropy forward and backward (including the dy=[] seed, <see cref="CrossEntropyModel"/>; the
/// seed of a product of equal shapes, fp16's scaled loss, is a copy of the other operand);
/// train-mode drop_path forward and backward (<see cref="DropPathModel"/>). Integer inputs (labels, the step) reach
/// the kernels as floats, as the runtime uploads every input: exact below 2^24. The other inputs and every output
/// share one storage type, float32, bf16 or fp16 (issue 22): 16-bit kernels widen what they load, compute and sum in
/// float32 and round once per stored value; the integer inputs stay float32. No atomics; every sum has a fixed
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
                CrossEntropyKernel(ctx, threads, ce, null, Storage(ctx, 1));
                break;
            case DropPath d:
                DropPathKernel(ctx, threads, d, ctx.In(0), ctx.Node.Inputs.Count == 2 ? ctx.In(1) : null,
                    Storage(ctx, 1));
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
        if (op.OutGrads.Count == 0 && op.Of is Binary { Kind: BinaryKind.Mul } && op.Wrt.Count == 1
            && ctx.InType(0).Shape.Equals(ctx.InType(1).Shape))
        {
            // the seed of a scaled loss (fp16 loss scaling: loss × scale): d(a·b)/da = b, a copy of the other operand
            var sm = Storage(ctx);
            Pointwise(ctx, threads, "copy", 1, Copy(ctx, ctx.In(1 - op.Wrt[0]), sm), sm);
            return;
        }
        if (op.OutGrads.Count == 0 && op.Of is not CrossEntropy)
        {
            throw Unsupported(ctx, op, "dy=[] (seeding from a one-element output) has a CUDA kernel for "
                + "cross_entropy and a product of equal shapes only");
        }
        // grad inputs: the forward inputs, the forward output, then its gradient when dy=[0]
        var gy = op.OutGrads.Count == 1 ? ctx.In(nf + 1) : null;
        // the labels of cross_entropy and the step of drop_path are read as float32
        var s = Storage(ctx, op.Of is CrossEntropy || (op.Of is DropPath && nf == 2) ? [1] : []);
        switch (op.Of)
        {
            case Unary u:
                var (rule, arg, name) = u.Kind switch
                {
                    UnaryKind.Gelu => ("gelu", 0, "x"),
                    UnaryKind.Relu => ("relu", 0, "x"),
                    UnaryKind.Sigmoid => ("sigmoid", 1, "y"),
                    _ => throw Unsupported(ctx, op, $"no rule for {u.Kind}"),
                };
                Pointwise(ctx, threads, rule, 1, new KernelSignature().Out("dx", ctx.Out(0), s)
                    .In(name, ctx.In(arg), s).In("gy", gy!, s), s);
                break;
            case Binary b:
                for (int j = 0; j < op.Wrt.Count; j++) BinaryGrad(ctx, threads, b, op.Wrt[j], j, gy!, s);
                break;
            case Mean m:
                var x = ctx.InType(0).Shape;
                var (_, count) = ReduceLowering.Split(x, m.Axes) ?? throw Unsupported(ctx, op,
                    $"only a mean over trailing axes (e.g. [2,3] of NCHW) has a gradient kernel, not {m.Axes} of {x}");
                Pointwise(ctx, threads, "mean", count, Copy(ctx, gy!, s), s);
                break;
            case Reshape:
                Pointwise(ctx, threads, "copy", 1, Copy(ctx, gy!, s), s);
                break;
            case DropPath d:
                if (d.Mode == Mode.Eval) Pointwise(ctx, threads, "copy", 1, Copy(ctx, gy!, s), s);
                else DropPathKernel(ctx, threads, d, gy!, nf == 2 ? ctx.In(1) : null, s);
                break;
            case CrossEntropy ce:
                CrossEntropyKernel(ctx, threads, ce, gy, s);
                break;
            default:
                throw Unsupported(ctx, op, "not an element-wise op");
        }
    }

    private static IrException Unsupported(NodeLowering ctx, Grad op, string why) =>
        new($"{ctx.Node.Describe()}: no CUDA lowering for grad of {op.Of.Name}: {why}; run the backward graph on the "
            + "CPU target");

    /// <summary>
    /// The storage type of every output and every input but those in <paramref name="ints"/> (labels, step: an
    /// integer type or float32, read as float32): float32, bf16 or fp16, one for all; anything else is refused.
    /// </summary>
    private static DType Storage(NodeLowering ctx, params int[] ints)
    {
        var t = ctx.OutType(0).DType;
        for (int i = 0; i < ctx.Node.Inputs.Count; i++)
        {
            var it = ctx.InType(i);
            bool ok = ints.Contains(i) ? it.DType is DType.I64 or DType.I32 or DType.F32 : it.DType == t;
            if (!ok) throw new IrException($"{ctx.Node.Describe()}: the CUDA target cannot read input {i} ({it})");
        }
        for (int i = 0; i < ctx.Node.Outputs.Count; i++)
        {
            if (ctx.OutType(i).DType != t || t is not (DType.F32 or DType.BF16 or DType.F16))
            {
                throw new IrException($"{ctx.Node.Describe()}: the CUDA target runs this op on f32, bf16 or f16 "
                    + $"tensors of one type, output {i} is {ctx.OutType(i)}");
            }
        }
        return t;
    }

    private static KernelSignature Copy(NodeLowering ctx, ArgRef gy, DType s) =>
        new KernelSignature().Out("dx", ctx.Out(0), s).In("gy", gy, s);

    private static void Pointwise(NodeLowering ctx, int threads, string rule, long count, KernelSignature sig,
        DType storage)
    {
        long total = ctx.OutType(0).Shape.Elements;
        if (total == 0) return;
        string prefix = string.Create(CultureInfo.InvariantCulture, $"grad_{rule}_{total}")
            + (rule == "mean" ? string.Create(CultureInfo.InvariantCulture, $"_c{count}") : "")
            + LoweringSupport.Suffix(storage);
        var name = ctx.AddKernel(prefix, "grad_elem_pointwise", "grad_elem_pointwise.cu.sbn",
            n => new GradPointwiseModel(n, threads, total, rule, count, sig) { Storage = storage });
        ctx.Launch(name, LoweringSupport.Grid(ctx, total, threads), new Dim3(threads), 0, sig.Args);
    }

    // Output j of the grad node is the gradient of operand `which` (inputs: a, b, y, gy).
    private static void BinaryGrad(NodeLowering ctx, int threads, Binary b, int which, int j, ArgRef gy,
        DType storage)
    {
        var outShape = ctx.InType(2).Shape;
        var mine = ctx.InType(which).Shape;
        var other = ctx.InType(1 - which).Shape;
        bool mul = b.Kind == BinaryKind.Mul;
        if (mine.Elements == 0) return;
        string word = mul ? "mul" : "add";
        string tag = $"{word}_d{which}_{LoweringSupport.Tag(mine)}_{LoweringSupport.Tag(other)}"
            + LoweringSupport.Suffix(storage);
        if (mine.Elements == outShape.Elements)
        {
            if (!mul)
            {
                Pointwise(ctx, threads, "copy", 1,
                    new KernelSignature().Out("dx", ctx.Out(j), storage).In("gy", gy, storage), storage);
                return;
            }
            // d(a·b)/da = gy·b with b broadcast as in the forward: the forward's own binary kernel
            var name = ctx.AddKernel("grad_" + tag, "binary", "binary.cu.sbn",
                n => new BinaryModel(n, threads, "*", outShape, other, outShape) { Storage = storage });
            ctx.Launch(name, LoweringSupport.Grid(ctx, outShape.Elements, threads), new Dim3(threads), 0,
                [ctx.Out(j), gy, ctx.In(1 - which)]);
            return;
        }
        GradReduceModel Model(string n) => new(n, threads, mine, mul ? other : null, outShape) { Storage = storage };
        var red = ctx.AddKernel("grad_reduce_" + tag, "grad_elem_reduce", "grad_elem_reduce.cu.sbn", n => Model(n));
        var m = Model(red);
        ctx.Launch(red, LoweringSupport.Grid(ctx, m.Blocks, 1), new Dim3(threads), 0,
            mul ? [ctx.Out(j), gy, ctx.In(1 - which)] : [ctx.Out(j), gy]);
    }

    private static void CrossEntropyKernel(NodeLowering ctx, int threads, CrossEntropy ce, ArgRef? gy, DType s)
    {
        var z = ctx.InType(0).Shape;
        bool grad = ctx.Node.Op is Grad;
        var sig = new KernelSignature().Out(grad ? "dz" : "loss", ctx.Out(0), s).In("logits", ctx.In(0), s)
            .In("labels", ctx.In(1));
        if (gy is not null) sig.In("gl", gy, s);
        string kind = grad ? "cross_entropy_grad" : "cross_entropy";
        string prefix = string.Create(CultureInfo.InvariantCulture, $"{kind}_{z[0]}x{z[1]}")
            + (grad ? gy is null ? "_seed" : "_gy" : "") + LoweringSupport.Suffix(s);
        CrossEntropyModel Model(string n) => new(n, kind, threads, z[0], z[1], ce.LabelSmoothing, gy is not null, sig)
        {
            Storage = s,
        };
        var name = ctx.AddKernel(prefix, kind, "cross_entropy.cu.sbn", n => Model(n));
        ctx.Launch(name, grad ? LoweringSupport.Grid(ctx, Model(name).Blocks, 1) : new Dim3(1), new Dim3(threads), 0,
            sig.Args);
    }

    private static void DropPathKernel(NodeLowering ctx, int threads, DropPath d, ArgRef src, ArgRef? step,
        DType s)
    {
        var x = ctx.OutType(0).Shape;
        long total = x.Elements;
        if (total == 0) return;
        var sig = new KernelSignature().Out("dst", ctx.Out(0), s).In("src", src, s);
        if (step is not null) sig.In("step", step);
        long per = total / x[0];
        string prefix = string.Create(CultureInfo.InvariantCulture, $"drop_path_train_{x[0]}x{per}")
            + (step is null ? "" : "_step") + LoweringSupport.Suffix(s);
        var name = ctx.AddKernel(prefix, "drop_path_train", "drop_path_train.cu.sbn",
            n => new DropPathModel(n, threads, total, per, d.Prob, d.Seed, step is not null, sig) { Storage = s });
        ctx.Launch(name, LoweringSupport.Grid(ctx, total, threads), new Dim3(threads), 0, sig.Args);
    }
}
