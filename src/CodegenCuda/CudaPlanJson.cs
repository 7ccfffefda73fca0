using System.Text;
using System.Text.Json;
using ShiftWise.IR;

namespace ShiftWise.CodegenCuda;

/// <summary>
/// plan.json of a CUDA compile: kernels (file and entry points), the arena and every value's offset, views, derived
/// tensors, scratch buffers, and the steps in order — launches with their grid, block, shared memory and arguments,
/// GEMM calls with every cuBLAS parameter. Deterministic: fixed key order, steps in graph order.
/// </summary>
public static class CudaPlanJson
{
    /// <summary>The plan as indented JSON ("\n" newlines).</summary>
    public static string Write(CudaPlan plan)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true, NewLine = "\n" }))
        {
            w.WriteStartObject();
            w.WriteString("format", "swc-cuda-plan 1");
            w.WriteString("graph", plan.Graph);
            w.WriteString("arch", plan.Arch);
            w.WriteStartArray("inputs");
            foreach (var i in plan.Inputs)
            {
                w.WriteStartObject();
                w.WriteString("name", i.Name);
                w.WriteString("dtype", i.Type.DType.ToString().ToLowerInvariant());
                w.WriteStartArray("shape");
                for (int d = 0; d < i.Type.Shape.Rank; d++) w.WriteNumberValue(i.Type.Shape[d]);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("outputs");
            foreach (var o in plan.Outputs) w.WriteStringValue(o);
            w.WriteEndArray();
            w.WriteStartArray("kernels");
            foreach (var k in plan.Kernels)
            {
                w.WriteStartObject();
                w.WriteString("name", k.Name);
                w.WriteString("kind", k.Kind);
                w.WriteString("file", "kernels/" + k.FileName);
                w.WriteStartArray("entries");
                foreach (var e in k.Entries) w.WriteStringValue(e);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartObject("arena");
            w.WriteNumber("bytes", plan.Memory.ArenaBytes);
            w.WriteNumber("alignment", ShiftWise.Passes.MemoryPlan.Alignment);
            w.WriteStartArray("buffers");
            foreach (var s in plan.Memory.Slots.OrderBy(s => s.Offset).ThenBy(s => s.Value, StringComparer.Ordinal))
            {
                w.WriteStartObject();
                w.WriteString("value", s.Value);
                w.WriteNumber("offset", s.Offset);
                w.WriteNumber("bytes", s.Bytes);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartObject("views");
            foreach (var (v, of) in plan.Views.OrderBy(a => a.Key, StringComparer.Ordinal)) w.WriteString(v, of);
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteStartArray("derived");
            foreach (var d in plan.Derived)
            {
                w.WriteStartObject();
                w.WriteString("name", d.Name);
                w.WriteString("recipe", d.Recipe);
                w.WriteString("node", d.Node);
                w.WriteNumber("floats", d.Floats);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("scratch");
            foreach (var s in plan.Scratch)
            {
                w.WriteStartObject();
                w.WriteString("name", s.Name);
                w.WriteNumber("floats", s.Floats);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("steps");
            foreach (var step in plan.Steps) WriteStep(w, step);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray()) + "\n";
    }

    private static void WriteStep(Utf8JsonWriter w, PlanStep step)
    {
        w.WriteStartObject();
        switch (step)
        {
            case KernelLaunch l:
                w.WriteString("op", "launch");
                w.WriteString("node", l.Node);
                w.WriteString("kernel", l.Kernel);
                w.WriteString("entry", l.Entry);
                Dim(w, "grid", l.Grid);
                Dim(w, "block", l.Block);
                w.WriteNumber("dynamic_shared_bytes", l.SharedBytes);
                Args(w, l.Args);
                break;
            case GemmCall g:
                w.WriteString("op", "gemm");
                w.WriteString("node", g.Node);
                w.WriteString("convention", "cublas column-major, strided batched");
                w.WriteBoolean("trans_a", g.TransA);
                w.WriteBoolean("trans_b", g.TransB);
                w.WriteNumber("m", g.M);
                w.WriteNumber("n", g.N);
                w.WriteNumber("k", g.K);
                w.WriteString("a", g.A.ToString());
                w.WriteNumber("lda", g.Lda);
                w.WriteNumber("stride_a", g.StrideA);
                w.WriteString("b", g.B.ToString());
                w.WriteNumber("ldb", g.Ldb);
                w.WriteNumber("stride_b", g.StrideB);
                w.WriteString("c", g.C.ToString());
                w.WriteNumber("ldc", g.Ldc);
                w.WriteNumber("stride_c", g.StrideC);
                w.WriteNumber("batch", g.Batch);
                w.WriteNumber("alpha", g.Alpha);
                w.WriteNumber("beta", g.Beta);
                if (g.Storage != DType.F32) w.WriteString("storage", g.Storage.Name());
                if (g.Lt is { } lt) // cuBLASLt (gemm_api 1 or 2): its epilogue and bias
                {
                    w.WriteString("api", "cublaslt");
                    w.WriteString("epilogue", lt.Epilogue.ToString().ToLowerInvariant());
                    if (lt.Bias is not null) w.WriteString("bias", lt.Bias.ToString());
                }
                break;
            default:
                throw new InvalidOperationException($"unknown plan step {step.GetType().Name}");
        }
        w.WriteEndObject();
    }

    private static void Dim(Utf8JsonWriter w, string name, Dim3 d)
    {
        w.WriteStartArray(name);
        w.WriteNumberValue(d.X);
        w.WriteNumberValue(d.Y);
        w.WriteNumberValue(d.Z);
        w.WriteEndArray();
    }

    private static void Args(Utf8JsonWriter w, IReadOnlyList<ArgRef> args)
    {
        w.WriteStartArray("args");
        foreach (var a in args) w.WriteStringValue(a.ToString());
        w.WriteEndArray();
    }
}
