using System.Runtime.InteropServices;
using System.Text;
using ShiftWise.IR;
using ShiftWise.Runtime.Native;

namespace ShiftWise.Runtime.Cuda;

/// <summary>What NVRTC produced: PTX (virtual arch) or CUBIN (real arch), and its log.</summary>
public sealed record NvrtcOutput(string Arch, byte[] Image, bool IsCubin, string Log)
{
    /// <summary>The PTX text (only for PTX output).</summary>
    public string Ptx => IsCubin ? throw new InvalidOperationException("a CUBIN has no PTX text")
        : Encoding.UTF8.GetString(Image).TrimEnd('\0');
}

/// <summary>
/// Compiles CUDA C++ with NVRTC: to PTX for a virtual arch (compute_80, compute_90: what tests do without a GPU) or to
/// CUBIN for a real one (sm_90: what the runtime does for the device at hand). A failed compile throws with the
/// program log, which names the failing source line.
/// </summary>
public static unsafe class NvrtcCompiler
{
    /// <summary>Whether NVRTC could be loaded.</summary>
    public static bool Available => Nvrtc.Library.Found;

    /// <summary>One sentence for when it is missing.</summary>
    public static string MissingReason => Nvrtc.Library.Missing("CUDA kernels cannot be compiled");

    /// <summary>NVRTC's version, e.g. (11, 8).</summary>
    public static (int Major, int Minor) Version
    {
        get
        {
            Require();
            Check(Nvrtc.Version(out int major, out int minor), "nvrtcVersion");
            return (major, minor);
        }
    }

    /// <summary>
    /// Compiles <paramref name="source"/> (named <paramref name="name"/> in messages) for <paramref name="arch"/>.
    /// </summary>
    public static NvrtcOutput Compile(string source, string name, string arch, IReadOnlyList<string>? options = null)
    {
        Require();
        bool cubin = arch.StartsWith("sm_", StringComparison.Ordinal);
        if (!cubin && !arch.StartsWith("compute_", StringComparison.Ordinal))
        {
            throw new IrException($"arch '{arch}' must be compute_NN (PTX) or sm_NN (CUBIN)");
        }
        var opts = new List<string> { "--gpu-architecture=" + arch, "-default-device", "--std=c++17" };
        opts.AddRange(options ?? []);
        var handles = new List<GCHandle>();
        IntPtr prog = IntPtr.Zero;
        try
        {
            byte* Pin(string s)
            {
                var h = GCHandle.Alloc(Encoding.UTF8.GetBytes(s + "\0"), GCHandleType.Pinned);
                handles.Add(h);
                return (byte*)h.AddrOfPinnedObject();
            }
            Check(Nvrtc.CreateProgram(out prog, Pin(source), Pin(name), 0, null, null), "nvrtcCreateProgram");
            var optPtrs = opts.Select(o => (IntPtr)Pin(o)).ToArray();
            int result;
            fixed (IntPtr* p = optPtrs)
            {
                result = Nvrtc.CompileProgram(prog, optPtrs.Length, (byte**)p);
            }
            string log = Log(prog);
            if (result != 0)
            {
                throw new IrException(
                    $"NVRTC could not compile {name} for {arch} ({ErrorName(result)}):\n{log.Trim()}");
            }
            byte[] image;
            if (cubin)
            {
                Check(Nvrtc.GetCubinSize(prog, out nuint size), "nvrtcGetCUBINSize");
                image = new byte[(int)size];
                fixed (byte* b = image) Check(Nvrtc.GetCubin(prog, b), "nvrtcGetCUBIN");
            }
            else
            {
                Check(Nvrtc.GetPtxSize(prog, out nuint size), "nvrtcGetPTXSize");
                image = new byte[(int)size];
                fixed (byte* b = image) Check(Nvrtc.GetPtx(prog, b), "nvrtcGetPTX");
            }
            return new NvrtcOutput(arch, image, cubin, log);
        }
        finally
        {
            if (prog != IntPtr.Zero) Nvrtc.DestroyProgram(ref prog);
            foreach (var h in handles) h.Free();
        }
    }

    private static string Log(IntPtr prog)
    {
        Check(Nvrtc.GetProgramLogSize(prog, out nuint size), "nvrtcGetProgramLogSize");
        var buf = new byte[(int)size];
        fixed (byte* b = buf) Check(Nvrtc.GetProgramLog(prog, b), "nvrtcGetProgramLog");
        return Encoding.UTF8.GetString(buf).TrimEnd('\0');
    }

    private static void Require()
    {
        if (!Available) throw new IrException(MissingReason);
    }

    private static string ErrorName(int result) => Marshal.PtrToStringUTF8(Nvrtc.GetErrorString(result))
        ?? $"error {result}";

    private static void Check(int result, string what)
    {
        if (result != 0) throw new IrException($"{what} failed: {ErrorName(result)}");
    }
}
