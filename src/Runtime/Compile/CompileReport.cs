using System.Globalization;
using System.Text;
using ShiftWise.CodegenCuda;
using ShiftWise.IR;
using ShiftWise.IR.Analysis;
using ShiftWise.IR.Ops;
using ShiftWise.Runtime.Cuda;

namespace ShiftWise.Runtime.Compile;

/// <summary>report.md of swc compile: passes, node counts, arithmetic and bytes before and after, memory.</summary>
public static class CompileReport
{
    /// <summary>The report as markdown.</summary>
    public static string Markdown(CompileRequest req, CompileResult r)
    {
        var before = r.Source.Graph;
        var after = r.Optimized;
        var cb = Driver.Costs(before);
        var ca = Driver.Costs(after);
        var sb = new StringBuilder();
        sb.Append("# swc compile report\n\n");
        sb.Append($"- model: {r.Source.Description}\n");
        sb.Append($"- input: {string.Join(", ", before.Inputs.Select(i => $"%{i.Name} {i.Type}"))}\n");
        sb.Append($"- pipeline: `{req.Pipeline}`, precision `{req.Precision.Name()}`; compiled in {Ms(r.Time)} ms\n");
        sb.Append($"- graph hash before: `{before.ContentHash()[..16]}`, after: `{after.ContentHash()[..16]}`\n\n");

        sb.Append("## Passes\n\n| # | pass | changed | time (ms) | nodes after |\n|---|---|---|---|---|\n");
        foreach (var p in r.Records)
        {
            var changed = p.Disabled ? "disabled" : p.Changed ? "yes" : "no";
            sb.Append($"| {p.Index} | {p.Name} | {changed} | {Ms(p.Time)} | {p.NodesAfter} |\n");
        }

        sb.Append("\n## Totals\n\n| | before | after | after / before |\n|---|---|---|---|\n");
        Row(sb, "nodes", before.Nodes.Count, after.Nodes.Count);
        Row(sb, "floating-point operations", cb.Sum(c => c.Flops), ca.Sum(c => c.Flops));
        Row(sb, "bytes moved (each node's inputs, parameters and outputs)", cb.Sum(c => c.Bytes), ca.Sum(c => c.Bytes));
        Row(sb, "parameter values", before.Params.Sum(p => p.Type.Shape.Elements),
            after.Params.Sum(p => p.Type.Shape.Elements));

        sb.Append("\n## Nodes by op\n\n| op | before | after |\n|---|---|---|\n");
        var ops = before.Nodes.Concat(after.Nodes).Select(n => n.Op.Name).Distinct().Order(StringComparer.Ordinal);
        foreach (var op in ops)
        {
            sb.Append($"| {op} | {before.Nodes.Count(n => n.Op.Name == op)} | "
                + $"{after.Nodes.Count(n => n.Op.Name == op)} |\n");
        }

        var sw = after.Nodes.Where(n => n.Op is FusedShiftWise or SwCross).ToList();
        if (sw.Count > 0)
        {
            var types = after.ValueTypes();
            sb.Append("\n## SW layers: both lowerings (the target chooses)\n\n");
            sb.Append("| node | input | B/k/n/N_rep | kept sub-kernels | cross FLOPs | factorised FLOPs | cross bytes "
                + "| factorised bytes |\n");
            sb.Append("|---|---|---|---|---|---|---|---|\n");
            foreach (var n in sw)
            {
                var (s, subs) = n.Op is FusedShiftWise f ? (f.Shift, f.Subs.Count)
                    : (((SwCross)n.Op).Shift, ((SwCross)n.Op).Subs.Count);
                var l = Passes.Lowering.SwLoweringCost.Of(n.Op, types[n.Inputs[0]].Shape);
                sb.Append($"| {n.Name} | {types[n.Inputs[0]]} | {s.Big}/{s.Small}/{s.N}/{s.NRep} | {subs} of "
                    + $"{s.Rep * s.N} "
                    + $"| {N(l[0].Flops)} | {N(l[1].Flops)} | {N(l[0].Bytes)} | {N(l[1].Bytes)} |\n");
            }
        }

        if (r.Cuda is { } cu) Cuda(sb, cu);

        var m = r.Memory;
        int batch = before.Inputs.Count > 0 && before.Inputs[0].Type.Shape.Rank > 0
            ? before.Inputs[0].Type.Shape[0] : 1;
        sb.Append("\n## Activation memory (one arena, liveness-based reuse)\n\n");
        sb.Append($"At the compiled batch of {batch}: arena {Mb(m.ArenaBytes)}, lower bound (largest live set) "
            + $"{Mb(m.LowerBound)}, without reuse {Mb(m.NoReuseBytes)}; {m.Slots.Count} buffers, {m.Aliases.Count} "
            + $"views.\n\n");
        sb.Append("Every activation is proportional to the batch, so per batch size (scaled from the compiled "
            + "batch):\n\n");
        sb.Append("| batch | arena | without reuse |\n|---|---|---|\n");
        foreach (var b in new[] { 1, 8, 32, 128 })
        {
            sb.Append($"| {b} | {Mb(m.ArenaBytes * b / batch)} | {Mb(m.NoReuseBytes * b / batch)} |\n");
        }
        return sb.ToString();
    }

    private static void Cuda(StringBuilder sb, CudaCompileResult cu)
    {
        var plan = cu.Plan;
        var launches = plan.Steps.OfType<KernelLaunch>().ToList();
        var gemms = plan.Steps.OfType<GemmCall>().ToList();
        sb.Append($"\n## CUDA target ({plan.Arch})\n\n");
        sb.Append($"{plan.Kernels.Count} kernel sources in kernels/, {launches.Count} launches and {gemms.Count} GEMM "
            + $"calls "
            + $"(cuBLAS at run time) per run, {plan.Derived.Count} derived tensors, {plan.Scratch.Count} scratch "
            + $"buffers; "
            + "plan.json lists every step.\n\n");
        sb.Append(cu.Tuning + "\n\n");
        if (cu.Compiled is null)
        {
            sb.Append($"NVRTC: not compiled: {cu.NotCompiledReason}\n");
        }
        else
        {
            var v = cu.NvrtcVersion!.Value;
            int now = cu.Compiled.Count(c => c.Outcome == CacheOutcome.Compiled);
            int disk = cu.Compiled.Count(c => c.Outcome == CacheOutcome.Disk);
            int mem = cu.Compiled.Count(c => c.Outcome == CacheOutcome.Memory);
            var local = cu.Compiled.Where(c => CudaKernelCompiler.UsesLocalMemory(c.Output.Ptx))
                .Select(c => c.Kernel.Name).ToList();
            sb.Append($"NVRTC {v.Major}.{v.Minor}: {cu.Compiled.Count} kernels compiled to PTX for {cu.PtxArch} in "
                + $"ptx/ "
                + $"({now} compiled now, {disk} from the disk cache, {mem} already in memory; "
                + (now == 0 ? "cache hit for every kernel" : "cache miss for " + now) + "); "
                + (local.Count == 0 ? "no kernel uses local memory" : "local memory in "
                    + string.Join(", ", local)) + ".\n");
        }
        sb.Append("\n| kernel | kind | launches | grid | block | dynamic shared bytes |\n|---|---|---|---|---|---|\n");
        foreach (var k in plan.Kernels)
        {
            var ls = launches.Where(l => l.Kernel == k.Name).ToList();
            var first = ls.FirstOrDefault();
            sb.Append(
                $"| {k.Name} | {k.Kind} | {ls.Count} | {first?.Grid} | {first?.Block} | {first?.SharedBytes} |\n");
        }
    }

    private static void Row(StringBuilder sb, string what, long before, long after) =>
        sb.Append($"| {what} | {N(before)} | {N(after)} | "
            + $"{(before == 0 ? "-" : (after / (double)before).ToString("F3", CultureInfo.InvariantCulture))} |\n");

    private static string N(long v) => v.ToString("N0", CultureInfo.InvariantCulture);

    private static string Ms(TimeSpan t) => t.TotalMilliseconds.ToString("F0", CultureInfo.InvariantCulture);

    private static string Mb(long bytes) => (bytes / 1048576.0).ToString("F2", CultureInfo.InvariantCulture) + " MiB";
}
