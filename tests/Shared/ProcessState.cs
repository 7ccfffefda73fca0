namespace ShiftWise.Tests;

/// <summary>
/// The collection of tests that change process-wide state (environment variables, the in-memory kernel caches through
/// ForgetLoaded): xunit runs it alone, after the parallel collections, so no other test sees the change.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessState
{
    /// <summary>The collection's name, for <c>[Collection(ProcessState.Name)]</c>.</summary>
    public const string Name = "ProcessState";
}
