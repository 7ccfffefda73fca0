using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using ShiftWise.Codegen;
using ShiftWise.IR;

namespace ShiftWise.CodegenCuda.Standalone;

/// <summary>One file of an emitted tree: its path relative to the tree's root ('/' separated) and its bytes.</summary>
public sealed record StandaloneFile(string Path, byte[] Bytes);

/// <summary>
/// Emits a <see cref="CudaPlan"/> as a self-contained C++/CUDA project: kernels/*.cu (the plan's sources, unchanged),
/// src/swc_model.cu (a host launcher that runs the steps through the CUDA runtime API and cuBLAS), include/swc_model.h
/// (the C API), example/swc_example.cpp, CMakeLists.txt, README.md, plan.json and weights.bin
/// (<see cref="WeightsBin"/>).
/// Renders text and bytes only; deterministic: the same plan and weights give byte-identical files. Names read from a
/// model (values, parameters, nodes) never reach the generated code: the launcher refers to buffers by offset, to
/// kernels by their hash-named entry points, and to steps by number; the names live in plan.json and weights.bin.
/// </summary>
public static partial class StandaloneEmitter
{
    /// <summary>
    /// The files of the tree, sorted by path. <paramref name="derived"/> holds the plan's derived tensors by name;
    /// <paramref name="description"/> (e.g. "sw-tiny, batch 2") appears in README.md only, with anything but plain
    /// characters replaced.
    /// </summary>
    public static IReadOnlyList<StandaloneFile> Emit(CudaPlan plan, Graph g,
        IReadOnlyDictionary<string, Tensor> weights, IReadOnlyDictionary<string, float[]> derived, string description,
        string version, string tuning = "") =>
        Render([new StandaloneBucket(0, plan, g)], multi: false, weights, derived, description, version, tuning);

    // the tree of one plan (multi false: today's single-batch tree, byte for byte) or of one plan per batch bucket
    // (multi true, buckets ascending; the last is the largest and gives the shapes, plan.json and the max-batch API)
    private static IReadOnlyList<StandaloneFile> Render(IReadOnlyList<StandaloneBucket> buckets, bool multi,
        IReadOnlyDictionary<string, Tensor> weights, IReadOnlyDictionary<string, float[]> derived, string description,
        string version, string tuning)
    {
        var plan = buckets[^1].Plan;
        var g = buckets[^1].Graph;
        if (plan.Inputs.Count != 1 || plan.Outputs.Count == 0)
        {
            throw new IrException($"swc emit supports models with one input and at least one output; graph {g.Name} "
                + $"has {plan.Inputs.Count} inputs and {plan.Outputs.Count} outputs");
        }
        if (plan.Inputs[0].Type.DType != DType.F32)
        {
            throw new IrException($"swc emit: the input is {plan.Inputs[0].Type}; the C API takes float32");
        }
        CheckVersion(version);
        var types = g.ValueTypes();
        var input = plan.Inputs[0];
        var outputType = types[plan.Outputs[0]];
        // several outputs (a backbone's features): back to back in the caller's buffer, in graph order
        var outputTypes = plan.Outputs.Select(o => types[o]).ToList();
        if (outputTypes.Any(t => t.DType != DType.F32))
        {
            throw new IrException($"swc emit: the outputs are {string.Join(", ", outputTypes)}; the C API returns "
                + "float32");
        }
        var outputOffsets = new List<long>();
        long outputFloats = 0;
        foreach (var t in outputTypes)
        {
            outputOffsets.Add(outputFloats);
            outputFloats += t.Shape.Elements;
        }
        int maxRank = outputTypes.Max(t => t.Shape.Rank);

        // weights.bin: the parameters in graph order (16-bit ones packed two to a float slot), then the derived
        // tensors in plan order (several buckets: the largest's, then those only a smaller one has)
        var tensors = new List<(string, long)>();
        foreach (var p in g.Params) tensors.Add((p.Name, (p.Type.Shape.Elements * p.Type.DType.Size() + 3) / 4));
        foreach (var d in DerivedUnion(buckets)) tensors.Add((d.Name, d.Floats));
        var (rows, payloadFloats) = WeightsBin.Layout(tensors);
        var paramAt = new Dictionary<string, long>(StringComparer.Ordinal);
        var derivedAt = new Dictionary<string, long>(StringComparer.Ordinal);
        for (int i = 0; i < rows.Count; i++) (i < g.Params.Count ? paramAt : derivedAt)[rows[i].Name] = rows[i].Offset;

        // entry declarations, copied from the kernel sources
        var kernels = KernelUnion(buckets);
        var declarations = new List<string>();
        var entries = new HashSet<string>(StringComparer.Ordinal);
        foreach (var k in kernels)
        {
            foreach (var e in k.Entries)
            {
                CheckIdentifier(e, $"kernel {k.Name}: entry");
                if (!entries.Add(e)) throw new IrException($"entry point {e} is defined by two kernels");
                declarations.Add(Declaration(k, e));
            }
        }

        var maxShared = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var codes = buckets.Select(b => BucketSteps(b, paramAt, derivedAt, entries, maxShared)).ToList();
        var top = codes[^1];
        long arenaBytes = codes.Max(c => c.ArenaBytes), scratchFloats = codes.Max(c => c.ScratchFloats);
        var sharedAttributes = maxShared.Select(kv =>
            $"cudaFuncSetAttribute((const void*)&{kv.Key}, cudaFuncAttributeMaxDynamicSharedMemorySize, {kv.Value})")
                .ToList();
        // the model id: a hash of everything the launcher bakes in (kernels, steps, layout, shapes), and of no name, so
        // that the generated code is the same for the same model under other names
        var idText = new StringBuilder();
        foreach (var k in kernels) idText.Append(k.Name).Append('\n').Append(k.Source).Append('\n');
        foreach (var c in codes)
        {
            if (multi) idText.Append("batch ").Append(c.Batch).Append(' ').Append(c.ArenaBytes).Append(' ')
                .Append(c.ScratchFloats).Append('\n');
            foreach (var st in c.Steps) idText.Append(st).Append('\n');
        }
        idText.Append(input.Type).Append(' ').Append(string.Join(" ", outputTypes)).Append(' ')
            .Append(arenaBytes).Append(' ').Append(scratchFloats);
        var modelId = WeightsBin.ModelId(idText.ToString(), rows);
        var bin = WeightsBin.Write(rows, payloadFloats, modelId, r =>
        {
            if (paramAt.TryGetValue(r.Name, out var at) && at == r.Offset)
            {
                return weights.TryGetValue(r.Name, out var t) ? Slots(t.Cast(types[r.Name].DType), r.Floats)
                    : throw new IrException($"no weights for parameter '{r.Name}'");
            }
            return derived.TryGetValue(r.Name, out var v) ? v
                : throw new IrException($"derived tensor '{r.Name}' was not computed");
        });


        string Dims(Shape s) => string.Join(", ", Enumerable.Range(0, s.Rank)
            .Select(d => s[d].ToString(CultureInfo.InvariantCulture)));
        var idHex = Convert.ToHexStringLower(modelId);
        var arch = plan.Arch;
        var model = new Dictionary<string, object>
        {
            ["version"] = version,
            ["input_rank"] = input.Type.Shape.Rank,
            ["input_shape"] = Dims(input.Type.Shape),
            ["input_elements"] = input.Type.Shape.Elements,
            ["output_rank"] = outputType.Shape.Rank,
            ["output_shape"] = Dims(outputType.Shape),
            ["output_elements"] = outputFloats,
            ["output_count"] = plan.Outputs.Count,
            ["output_offsets"] = string.Join(", ", outputOffsets),
            ["output_sizes"] = string.Join(", ", outputTypes.Select(t => t.Shape.Elements)),
            ["output_ranks"] = string.Join(", ", outputTypes.Select(t => t.Shape.Rank)),
            ["output_max_rank"] = maxRank,
            ["output_shapes"] = outputTypes.Select(t => string.Join(", ", Enumerable.Range(0, maxRank)
                .Select(d => d < t.Shape.Rank ? t.Shape[d].ToString(CultureInfo.InvariantCulture) : "0"))).ToList(),
            ["output_pointers"] = top.OutputPointers,
            ["weights_format"] = WeightsBin.Format,
            ["declarations"] = declarations,
            ["types16"] = declarations.Any(d => d.Contains("swc_bf16", StringComparison.Ordinal)
                || d.Contains("swc_fp16", StringComparison.Ordinal)) ? Types16Structs : "",
            ["tensor_count"] = rows.Count,
            ["payload_bytes"] = payloadFloats * 4,
            ["model_id_bytes"] = string.Join(", ", modelId.Select(b => $"0x{b:x2}")),
            ["model_id_hex"] = idHex,
            ["tensor_rows"] = rows.Select(r => $"{r.Offset}u, {r.Floats}u").ToList(),
            ["arena_bytes"] = arenaBytes,
            ["scratch_floats"] = scratchFloats,
            ["scratch_bytes"] = scratchFloats * 4,
            ["step_count"] = top.Steps.Count,
            ["steps"] = top.Steps,
            ["output_pointer"] = top.OutputPointers[0],
            ["shared_attributes"] = sharedAttributes,
            ["cmake_arch"] = CmakeArch(arch),
            ["kernel_files"] = kernels.Select(k => "kernels/" + k.FileName).ToList(),
            ["description"] = Plain(description),
            ["arch"] = arch,
            ["kernel_count"] = kernels.Count,
            ["launch_count"] = top.Launches,
            ["gemm_count"] = top.Gemms,
            ["payload_mb"] = (payloadFloats * 4 / 1e6).ToString("F1", CultureInfo.InvariantCulture),
            ["tuning"] = tuning.Length == 0 ? "cost-model defaults" : Plain(tuning),
        };
        AddBatchModel(model, multi, codes, input.Type, outputTypes);

        var files = new List<StandaloneFile>
        {
            Text("CMakeLists.txt", "standalone_CMakeLists.txt.sbn", model),
            Text("README.md", "standalone_README.md.sbn", model),
            Text("include/swc_model.h", "standalone_model.h.sbn", model),
            Text("src/swc_model.cu", "standalone_model.cu.sbn", model),
            Text("example/swc_example.cpp", "standalone_example.cpp.sbn", model),
            new("plan.json", Encoding.UTF8.GetBytes(top.PlanJson)),
            new("weights.bin", bin),
        };
        foreach (var c in codes.Take(codes.Count - 1))
        {
            files.Add(new StandaloneFile(PlanFile(c.Batch), Encoding.UTF8.GetBytes(c.PlanJson)));
        }
        foreach (var k in kernels)
        {
            CheckIdentifier(k.Name, "kernel name");
            files.Add(new StandaloneFile("kernels/" + k.FileName, Encoding.UTF8.GetBytes(k.Source)));
        }
        return files.OrderBy(f => f.Path, StringComparer.Ordinal).ToArray();
    }

    /// <summary>
    /// The declaration of entry <paramref name="entry"/> as its source defines it (without the body).
    /// </summary>
    public static string Declaration(CudaKernelSource k, string entry)
    {
        var m = Regex.Match(k.Source, @"extern ""C"" __global__ void (__launch_bounds__\(\d+(?:, *\d+)?\) )?"
            + Regex.Escape(entry) + @"\(([^)]*)\)");
        if (!m.Success)
        {
            throw new IrException($"kernel {k.Name}: no definition of entry {entry} (extern \"C\" __global__ void "
                + $"{entry}(...)) in its source");
        }
        var parameters = Regex.Replace(m.Groups[2].Value, @"\s+", " ").Trim();
        return $"extern \"C\" __global__ void {m.Groups[1].Value}{entry}({parameters})";
    }

    /// <summary>
    /// The 16-bit storage types as the launcher declares them for the entries' parameters (their layout only; each
    /// kernel source defines them with their arithmetic, types16.cu.sbn).
    /// </summary>
    public const string Types16Structs = "struct alignas(2) swc_bf16 { unsigned short bits; };\n"
        + "struct alignas(2) swc_fp16 { unsigned short bits; };\n";

    private static IrException LtEpilogue(int i, GemmCall c) => new($"step {i} (%{c.Node}): cuBLASLt's "
        + $"{c.Lt!.Epilogue} epilogue (gemm_api 2) has no standalone form; emit a plan lowered with gemm_api 0 or 1");

    /// <summary>CMake's form of an arch: sm_90 → 90, sm_90a → 90a.</summary>
    public static string CmakeArch(string arch)
    {
        var m = Regex.Match(arch, "^sm_([0-9]{2,3}[a-z]?)$");
        return m.Success ? m.Groups[1].Value
            : throw new IrException($"'{arch}' is not a CUDA device arch like sm_80 or sm_90");
    }

    private static StandaloneFile Text(string path, string template, object model) =>
        new(path, Encoding.UTF8.GetBytes(TemplateRenderer.Render(template, model)));

    private static string Pointer(string b, long at) => at == 0 ? b : $"{b} + {at}";

    // a byte offset into one of the launcher's float buffers: float steps where it can, a char pointer where a 16-bit
    // element does not start on a float
    private static string PointerBytes(string b, long bytes) =>
        bytes % 4 == 0 ? Pointer(b, bytes / 4) : $"(float*)((char*){b} + {bytes})";

    // the cudaDataType_t of a GEMM's storage type
    private static string CudaType(DType t) => t switch
    {
        DType.F32 => "CUDA_R_32F",
        DType.BF16 => "CUDA_R_16BF",
        DType.F16 => "CUDA_R_16F",
        _ => throw new IrException($"swc emit: no cuBLAS type for {t.Name()} GEMMs"),
    };

    private static string B(bool b) => b ? "true" : "false";

    // a tensor's bytes as the row's float slots (16-bit values two to a slot, the last half zero when odd)
    private static float[] Slots(Tensor t, long floats)
    {
        var slots = new float[floats];
        t.Bytes().CopyTo(System.Runtime.InteropServices.MemoryMarshal.AsBytes(slots.AsSpan()));
        return slots;
    }

    private static string Bits(float f) => $"0x{BitConverter.SingleToUInt32Bits(f):x8}u";

    private static IrException Missing(ArgRef a) => new($"the plan refers to {a}, which it does not define");

    /// <summary>Keeps letters, digits and a few marks; anything else (newlines, quotes, markup) becomes '?'.</summary>
    private static string Plain(string s)
    {
        var sb = new StringBuilder();
        foreach (var c in s.Length > 200 ? s[..200] : s)
        {
            sb.Append(char.IsAsciiLetterOrDigit(c) || " .,:=_+-/()".Contains(c) ? c : '?');
        }
        return sb.ToString();
    }

    private static void CheckVersion(string v)
    {
        if (v.Length == 0 || v.Length > 64 || !v.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '+'))
        {
            throw new IrException($"version '{v}' is not a plain version string");
        }
    }

    private static void CheckIdentifier(string s, string what)
    {
        if (s.Length == 0 || !(char.IsAsciiLetter(s[0]) || s[0] == '_')
            || !s.All(c => char.IsAsciiLetterOrDigit(c) || c == '_'))
        {
            throw new IrException($"{what} '{s}' is not an identifier");
        }
    }
}
