using System.Runtime.InteropServices;

namespace ShiftWise.Runtime.Native;

/// <summary>
/// NVRTC, the CUDA runtime compiler: raw entry points (nvrtc.h). <see cref="Cuda.NvrtcCompiler"/> is the checked
/// entry point. Debian ships it as libnvrtc.so.11.2 (CUDA 11.8); GPU machines have .12 or .13.
/// </summary>
internal static unsafe partial class Nvrtc
{
    private const string Lib = "nvrtc";

    static Nvrtc() => NativeLibraries.EnsureResolver();

    /// <summary>The load result (cached).</summary>
    public static NativeLoad Library => NativeLibraries.Load(NativeLibraries.Nvrtc);

    [LibraryImport(Lib, EntryPoint = "nvrtcVersion")]
    public static partial int Version(out int major, out int minor);

    [LibraryImport(Lib, EntryPoint = "nvrtcGetErrorString")]
    public static partial IntPtr GetErrorString(int result);

    [LibraryImport(Lib, EntryPoint = "nvrtcCreateProgram")]
    public static partial int CreateProgram(out IntPtr prog, byte* src, byte* name, int numHeaders, byte** headers,
        byte** includeNames);

    [LibraryImport(Lib, EntryPoint = "nvrtcCompileProgram")]
    public static partial int CompileProgram(IntPtr prog, int numOptions, byte** options);

    [LibraryImport(Lib, EntryPoint = "nvrtcGetProgramLogSize")]
    public static partial int GetProgramLogSize(IntPtr prog, out nuint size);

    [LibraryImport(Lib, EntryPoint = "nvrtcGetProgramLog")]
    public static partial int GetProgramLog(IntPtr prog, byte* log);

    [LibraryImport(Lib, EntryPoint = "nvrtcGetPTXSize")]
    public static partial int GetPtxSize(IntPtr prog, out nuint size);

    [LibraryImport(Lib, EntryPoint = "nvrtcGetPTX")]
    public static partial int GetPtx(IntPtr prog, byte* ptx);

    [LibraryImport(Lib, EntryPoint = "nvrtcGetCUBINSize")]
    public static partial int GetCubinSize(IntPtr prog, out nuint size);

    [LibraryImport(Lib, EntryPoint = "nvrtcGetCUBIN")]
    public static partial int GetCubin(IntPtr prog, byte* cubin);

    [LibraryImport(Lib, EntryPoint = "nvrtcDestroyProgram")]
    public static partial int DestroyProgram(ref IntPtr prog);
}
