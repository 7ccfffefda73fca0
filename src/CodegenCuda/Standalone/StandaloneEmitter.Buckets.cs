using System.Globalization;
using ShiftWise.IR;

namespace ShiftWise.CodegenCuda.Standalone;

/// <summary>
/// One plan of an emitted tree: the batch size it was compiled for (0 for the single plan of a plain emit), the plan,
/// and the inference graph it was lowered from (its value types and parameters).
/// </summary>
public sealed record StandaloneBucket(int Batch, CudaPlan Plan, Graph Graph);

/// <summary>
/// One bucket's launcher code, as the templates read it: its batch, its steps (one call each) and where each output
/// lies (a pointer expression into the launcher's buffers).
/// </summary>
internal sealed record StandaloneBucketView(int Batch, IReadOnlyList<string> Steps,
    IReadOnlyList<string> OutputPointers, string PlanFile);

public static partial class StandaloneEmitter
{
    /// <summary>The largest --max-batch swc emit accepts.</summary>
    public const int MaxBatchLimit = 1 << 16;

    /// <summary>
    /// The batch buckets of swc emit --max-batch <paramref name="maxBatch"/>: the powers of two below it, then
    /// <paramref name="maxBatch"/> itself (8: 1, 2, 4, 8; 5: 1, 2, 4, 5; 1: 1). The library runs a batch on the
    /// smallest bucket that holds it.
    /// </summary>
    public static IReadOnlyList<int> BatchBuckets(int maxBatch)
    {
        if (maxBatch < 1 || maxBatch > MaxBatchLimit)
        {
            throw new OptionException($"option --max-batch: {maxBatch} is out of range (1 to {MaxBatchLimit})");
        }
        var list = new List<int>();
        for (int b = 1; b < maxBatch; b *= 2) list.Add(b);
        list.Add(maxBatch);
        return list;
    }

    /// <summary>
    /// The tree of a library that runs any batch from 1 to the largest bucket's (swc emit --max-batch): one plan per
    /// bucket (ascending batches; each the same model lowered at that batch), the union of their kernels, one arena
    /// and one scratch buffer sized for the largest, and the parameters (the same in every bucket) and the derived
    /// tensors (<paramref name="derived"/>: the union over the buckets, by name) once in weights.bin. The shapes,
    /// plan.json and swc_run_device / swc_run_host are the largest bucket's; plans/plan_bN.json hold the others.
    /// </summary>
    public static IReadOnlyList<StandaloneFile> EmitBuckets(IReadOnlyList<StandaloneBucket> buckets,
        IReadOnlyDictionary<string, Tensor> weights, IReadOnlyDictionary<string, float[]> derived, string description,
        string version, string tuning = "")
    {
        if (buckets.Count == 0) throw new IrException("swc emit --max-batch: no batch bucket");
        var top = buckets[^1];
        for (int i = 0; i < buckets.Count; i++)
        {
            var b = buckets[i];
            if (b.Batch < 1 || (i > 0 && b.Batch <= buckets[i - 1].Batch))
            {
                throw new IrException($"swc emit --max-batch: the buckets {string.Join(", ", buckets.Select(x =>
                    x.Batch))} are not ascending positive batches");
            }
            CheckBucketShapes(b, top);
        }
        return Render(buckets, multi: true, weights, derived, description, version, tuning);
    }

    // a bucket is the largest one at another batch: the same parameters, the same per-sample input and outputs
    private static void CheckBucketShapes(StandaloneBucket b, StandaloneBucket top)
    {
        string Where(string what) => $"swc emit --max-batch: at batch {b.Batch}, {what}";
        if (b.Plan.Inputs.Count != top.Plan.Inputs.Count || b.Plan.Outputs.Count != top.Plan.Outputs.Count)
        {
            throw new IrException(Where($"the plan has {b.Plan.Inputs.Count} inputs and {b.Plan.Outputs.Count} "
                + $"outputs; at batch {top.Batch}, {top.Plan.Inputs.Count} and {top.Plan.Outputs.Count}"));
        }
        var types = b.Graph.ValueTypes();
        var topTypes = top.Graph.ValueTypes();
        var pairs = b.Plan.Inputs.Select(v => v.Type).Zip(top.Plan.Inputs.Select(v => v.Type))
            .Concat(b.Plan.Outputs.Select(o => types[o]).Zip(top.Plan.Outputs.Select(o => topTypes[o])));
        foreach (var (t, u) in pairs)
        {
            if (t.DType != u.DType || t.Shape.Rank == 0 || t.Shape.Rank != u.Shape.Rank || t.Shape[0] != b.Batch
                || u.Shape[0] != top.Batch || Enumerable.Range(1, t.Shape.Rank - 1).Any(d => t.Shape[d] != u.Shape[d]))
            {
                throw new IrException(Where($"a value is {t}; at batch {top.Batch}, {u} (the first dimension must be "
                    + "the batch, the others the same)"));
            }
        }
        if (!b.Graph.Params.Select(p => (p.Name, p.Type)).SequenceEqual(top.Graph.Params.Select(p => (p.Name, p.Type))))
        {
            throw new IrException(Where($"the inference graph's parameters differ from batch {top.Batch}'s"));
        }
    }

    // the derived tensors of every bucket, the largest's first, each once (a name means one recipe of one node)
    private static List<DerivedTensor> DerivedUnion(IReadOnlyList<StandaloneBucket> buckets)
    {
        var all = new List<DerivedTensor>();
        var seen = new Dictionary<string, DerivedTensor>(StringComparer.Ordinal);
        foreach (var b in LargestFirst(buckets))
        {
            foreach (var d in b.Plan.Derived)
            {
                if (seen.TryGetValue(d.Name, out var had))
                {
                    if (had != d) throw new IrException($"derived tensor {d.Name} differs between batch buckets");
                    continue;
                }
                seen[d.Name] = d;
                all.Add(d);
            }
        }
        return all;
    }

    // the kernels of every bucket, the largest's first, each once: a kernel's name carries a hash of its source, so
    // one name with two sources is a collision, refused
    private static List<CudaKernelSource> KernelUnion(IReadOnlyList<StandaloneBucket> buckets)
    {
        var all = new List<CudaKernelSource>();
        var seen = new Dictionary<string, (CudaKernelSource Kernel, int Batch)>(StringComparer.Ordinal);
        foreach (var b in LargestFirst(buckets))
        {
            foreach (var k in b.Plan.Kernels)
            {
                if (seen.TryGetValue(k.Name, out var had))
                {
                    if (had.Kernel.Source != k.Source || !had.Kernel.Entries.SequenceEqual(k.Entries))
                    {
                        throw new IrException($"kernel {k.Name} has one source at batch {had.Batch} and another at "
                            + $"batch {b.Batch}; two kernels cannot share a name in one library");
                    }
                    continue;
                }
                seen[k.Name] = (k, b.Batch);
                all.Add(k);
            }
        }
        return all;
    }

    // one bucket's steps, as launcher calls on the shared weights layout and its own arena and scratch layouts
    private static BucketCode BucketSteps(StandaloneBucket bucket, Dictionary<string, long> paramAt,
        Dictionary<string, long> derivedAt, HashSet<string> entries, SortedDictionary<string, int> maxShared)
    {
        var plan = bucket.Plan;
        var types = bucket.Graph.ValueTypes();
        var input = plan.Inputs[0];
        var (scratchAt, scratchFloats) = plan.ScratchLayout();
        var slots = plan.Memory.Slots.ToDictionary(s => s.Value, s => s.Offset, StringComparer.Ordinal);
        (string Base, long At) Value(string v)
        {
            v = plan.Root(v);
            if (v == input.Name) return ("I", 0);
            if (paramAt.TryGetValue(v, out var p)) return ("W", p);
            if (slots.TryGetValue(v, out var off))
            {
                if (off % 4 != 0) throw new IrException($"value %{v}: arena offset {off} is not a multiple of 4 bytes");
                return ("A", off / 4);
            }
            throw new IrException($"value %{v} has no place in the memory plan");
        }
        // an argument's pointer; its offset counts elements of the buffer's type (or of a GEMM's storage type)
        string Ptr(ArgRef a, int? elementBytes = null)
        {
            int size = elementBytes ?? (a.Kind is ArgKind.Value or ArgKind.Param ? types[a.Name].DType.Size() : 4);
            var (b, at) = a.Kind switch
            {
                ArgKind.Value => Value(a.Name),
                ArgKind.Param => paramAt.TryGetValue(a.Name, out var p) ? ("W", p) : throw Missing(a),
                ArgKind.Derived => derivedAt.TryGetValue(a.Name, out var d) ? ("W", d) : throw Missing(a),
                ArgKind.Scratch => scratchAt.TryGetValue(a.Name, out var s) ? ("S", s) : throw Missing(a),
                _ => throw Missing(a),
            };
            return PointerBytes(b, at * 4 + a.Offset * size);
        }

        var steps = new List<string>();
        int launches = 0, gemms = 0;
        for (int i = 0; i < plan.Steps.Count; i++)
        {
            switch (plan.Steps[i])
            {
                case KernelLaunch l:
                    if (!entries.Contains(l.Entry))
                    {
                        throw new IrException($"step {i}: kernel entry {l.Entry} is not defined by any kernel");
                    }
                    if (l.Args.Count > 32)
                    {
                        throw new IrException($"step {i}: {l.Args.Count} arguments (the launcher passes at most 32)");
                    }
                    steps.Add($"launch(m, {i}, \"{l.Entry}\", (const void*)&{l.Entry}, dim3({l.Grid.X}, {l.Grid.Y}, "
                        + $"{l.Grid.Z}), " +
                        $"dim3({l.Block.X}, {l.Block.Y}, {l.Block.Z}), {l.SharedBytes}u, "
                            + $"{{{string.Join(", ", l.Args.Select(a => Ptr(a)))}}})");
                    if (l.SharedBytes > 48 * 1024)
                    {
                        maxShared[l.Entry] = Math.Max(maxShared.GetValueOrDefault(l.Entry), l.SharedBytes);
                    }
                    launches++;
                    break;
                case GemmCall c:
                {
                    // float32: cublasSgemmStridedBatched; bf16 / fp16: cublasGemmStridedBatchedEx, float32 compute
                    // (a cuBLASLt step too: the same product; its own epilogue would be lost, so that is refused)
                    if (c.Lt is { Epilogue: not GemmEpilogue.Default }) throw LtEpilogue(i, c);
                    int e = c.Storage.Size();
                    steps.Add($"gemm(m, {i}, {B(c.TransA)}, {B(c.TransB)}, {c.M}, {c.N}, {c.K}, {Bits(c.Alpha)}, "
                        + $"{Ptr(c.A, e)}, {c.Lda}, {c.StrideA}LL, " +
                        $"{Ptr(c.B, e)}, {c.Ldb}, {c.StrideB}LL, {Bits(c.Beta)}, {Ptr(c.C, e)}, {c.Ldc}, "
                        + $"{c.StrideC}LL, "
                            + $"{c.Batch}, {CudaType(c.Storage)})");
                    gemms++;
                    break;
                }
                default:
                    throw new IrException($"step {i}: unknown plan step {plan.Steps[i].GetType().Name}");
            }
        }
        // a cuBLASLt step runs as the same cuBLAS call here, and plan.json says so
        var planText = CudaPlanJson.Write(plan with
            { Steps = [.. plan.Steps.Select(s => s is GemmCall { Lt: not null } c ? c with { Lt = null } : s)] });
        var outputs = plan.Outputs.Select(o => Pointer(Value(o).Base, Value(o).At)).ToList();
        return new BucketCode(bucket.Batch, steps, outputs, launches, gemms, plan.Memory.ArenaBytes, scratchFloats,
            planText);
    }

    // the view-model entries of the max-batch launcher (set, and unused, in a single-batch tree too: the templates
    // read them only under 'multi')
    private static void AddBatchModel(Dictionary<string, object> model, bool multi, List<BucketCode> codes,
        TensorType input, List<TensorType> outputs)
    {
        var top = codes[^1];
        long Sample(TensorType t) => multi ? t.Shape.Elements / t.Shape[0] : t.Shape.Elements;
        var sampleSizes = outputs.Select(Sample).ToList();
        var sampleOffsets = new List<long>();
        long at = 0;
        foreach (var n in sampleSizes)
        {
            sampleOffsets.Add(at);
            at += n;
        }
        model["multi"] = multi;
        model["max_batch"] = top.Batch;
        model["bucket_count"] = codes.Count;
        model["bucket_list"] = string.Join(", ", codes.Select(c => c.Batch.ToString(CultureInfo.InvariantCulture)));
        model["buckets"] = codes.Select(c => new StandaloneBucketView(c.Batch, c.Steps, c.OutputPointers,
            c == top ? "plan.json" : PlanFile(c.Batch))).ToList();
        model["input_sample_elements"] = Sample(input);
        model["output_sample_elements"] = at;
        model["output_sample_sizes"] = string.Join(", ", sampleSizes);
        model["output_sample_offsets"] = string.Join(", ", sampleOffsets);
    }

    // the largest bucket, then the others in ascending order
    private static IEnumerable<StandaloneBucket> LargestFirst(IReadOnlyList<StandaloneBucket> buckets) =>
        buckets.Skip(buckets.Count - 1).Concat(buckets.Take(buckets.Count - 1));

    private static string PlanFile(int batch) => $"plans/plan_b{batch.ToString(CultureInfo.InvariantCulture)}.json";

    // what BucketSteps makes of one bucket
    private sealed record BucketCode(int Batch, List<string> Steps, List<string> OutputPointers, int Launches,
        int Gemms, long ArenaBytes, long ScratchFloats, string PlanJson);
}
