namespace ShiftWise.Runtime;

/// <summary>
/// Where a compiled kernel came from: the CPU target's Roslyn assemblies and the CUDA target's NVRTC output share it,
/// since both go through the one kernel cache (<see cref="SwcCache"/>).
/// </summary>
public enum CacheOutcome
{
    /// <summary>Already loaded in this process.</summary>
    Memory,
    /// <summary>Loaded from the disk cache (the compiler, Roslyn or NVRTC, skipped).</summary>
    Disk,
    /// <summary>Compiled now (and written to the cache).</summary>
    Compiled,
}
