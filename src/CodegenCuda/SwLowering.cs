using System.Globalization;
using ShiftWise.IR;
using ShiftWise.Passes.Lowering;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// CUDA lowering of fused_shiftwise nodes: one gather kernel (no atomics, deterministic) in the lowering the
/// tunables pick. The cross reads the collapsed bands, computed once from the parameters at bind time (derived
/// tensors); the factorised form reads the kept sub-kernels and path scales as they are. In bf16 / fp16 (issue 22) the
/// kernels load and store 16-bit values and compute in float32 (float shared tiles); the cross kernels' bands (lowering
/// 0 and the register-blocked lowering 2), derived at bind time in float64, then float32, are rounded once to the
/// storage type.
/// </summary>
internal static class SwLowering
{
    /// <summary>Adds the node's kernel and its launch.</summary>
    public static void Lower(NodeLowering ctx)
    {
        var spec = SwLayerSpec.Of(ctx.Node, ctx.InType(0));
        var t = ctx.Tunables(SwCudaTunables.Defaults(spec), ctx.Options.Tuned?.Invoke(spec));
        foreach (var (k, v) in t)
        {
            if (!SwCudaTunables.Values[k].Contains(v))
            {
                throw new IrException($"{ctx.Node.Describe()}: tunable {k} = {v} is not one of "
                    + $"{string.Join(", ", SwCudaTunables.Values[k])}");
            }
        }
        var storage = LoweringSupport.Storage(ctx);
        var s = spec.Op.Shift;
        var x = spec.Input;
        var shape = string.Create(CultureInfo.InvariantCulture, $"b{s.Big}k{s.Small}g{s.NRep}_c{x[1]}_h{x[2]}w{x[3]}");
        bool cross = t["lowering"] != 1;
        if (cross && !(ctx.IsParam(1) && ctx.IsParam(2)))
        {
            throw new IrException($"{ctx.Node.Describe()}: the cross lowering needs the sub-kernels and scales as "
                + $"parameters " +
                "(they are collapsed once); use lowering=1");
        }
        long band = (long)spec.Rep * s.Small * spec.BandWidth;
        if (cross)
        {
            // lowering 0 and 2 read the same derived bands and differ only in their kernel
            bool rb = t["lowering"] == 2;
            Dim3 grid, block;
            if (rb)
            {
                var m = new SwCrossRbCudaModel(spec, t, "probe");
                (grid, block) = (m.Grid, m.Block);
            }
            else
            {
                var m = new SwCrossCudaModel(spec, t, "probe");
                (grid, block) = (m.Grid, m.Block);
            }
            var name = rb
                ? ctx.AddKernel("sw_crossrb_" + shape + LoweringSupport.Suffix(storage), "fused_shiftwise",
                    "sw_cross_rb.cu.sbn", n => new SwCrossRbCudaModel(spec, t, n) { Storage = storage })
                : ctx.AddKernel("sw_cross_" + shape + LoweringSupport.Suffix(storage), "fused_shiftwise",
                    "sw_cross.cu.sbn", n => new SwCrossCudaModel(spec, t, n) { Storage = storage });
            long floats = Derived.BandFloats(band, storage);
            ctx.Launch(name, grid, block, 0,
                [ctx.Out(), ctx.In(0), ctx.Derived(Derived.Band(Derived.SwBandH, storage), floats),
                    ctx.Derived(Derived.Band(Derived.SwBandV, storage), floats), ctx.In(3), ctx.In(4)]);
        }
        else
        {
            var m = new SwFactorisedCudaModel(spec, t, "probe");
            var name = ctx.AddKernel("sw_fact_" + shape + LoweringSupport.Suffix(storage), "fused_shiftwise",
                "sw_factorised.cu.sbn", n => new SwFactorisedCudaModel(spec, t, n) { Storage = storage });
            ctx.Launch(name, m.Grid, m.Block, 0, [ctx.Out(), ctx.In(0), ctx.In(1), ctx.In(2), ctx.In(3), ctx.In(4)]);
        }
    }
}
