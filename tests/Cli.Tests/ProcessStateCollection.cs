namespace ShiftWise.Cli.Tests;

/// <summary>
/// Tests that change state of the whole process (environment variables such as SWC_CACHE_DIR, read by swc run in
/// this process): the collection runs alone, never beside another test that could read the changed state.
/// </summary>
[CollectionDefinition("ProcessState", DisableParallelization = true)]
public sealed class ProcessStateCollection;
