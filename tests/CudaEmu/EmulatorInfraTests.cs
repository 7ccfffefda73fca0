using ShiftWise.CodegenCuda;
using static ShiftWise.CudaEmu.TestKernels;

namespace ShiftWise.CudaEmu;

/// <summary>Compiling, caching, buffers and the failures the emulator must report instead of hiding.</summary>
public sealed class EmulatorInfraTests
{
    private static readonly CudaKernelSource Faults = Cu("emu_test_faults", """
        extern "C" __global__ void trap_one(float* __restrict__ y)
        {
            if (blockIdx.x == 1 && threadIdx.x == 3) __trap();
            __syncthreads();
            y[blockIdx.x * blockDim.x + threadIdx.x] = 1.0f;
        }

        extern "C" __global__ void smem_oob(float* __restrict__ y)
        {
            SWC_DYNAMIC_SMEM(float, s);
            s[threadIdx.x + 1] = 1.0f;
            __syncthreads();
            y[threadIdx.x] = s[threadIdx.x];
        }

        // lane 0 waits at __syncthreads, the other lanes at __syncwarp: neither can complete
        extern "C" __global__ void deadlock(float* __restrict__ y)
        {
            if (threadIdx.x == 0) __syncthreads();
            else __syncwarp();
            y[threadIdx.x] = 1.0f;
        }

        extern "C" __global__ void fill(float* __restrict__ y)
        {
            y[threadIdx.x] = 2.0f;
        }
        """, "trap_one", "smem_oob", "deadlock", "fill");

    [Fact]
    public void Emulator_is_available_or_says_why()
    {
        if (CudaEmulator.Available)
        {
            Assert.Equal("", CudaEmulator.MissingReason);
            Assert.StartsWith("g++", CudaEmulator.CompilerVersion, StringComparison.Ordinal);
        }
        else
        {
            Assert.NotEmpty(CudaEmulator.MissingReason);
            Assert.Skip(CudaEmulator.MissingReason);
        }
    }

    [Fact]
    public void A_gxx_error_names_the_failing_line_of_the_cu_file()
    {
        RequireEmulator();
        var k = Cu("emu_test_broken", """
            extern "C" __global__ void broken(float* __restrict__ y)
            {
                y[threadIdx.x] = undeclared_thing * 2.0f;
            }
            """, "broken");
        var e = Assert.Throws<EmuException>(() => CudaEmulator.Compile(k));
        Assert.Contains($"emu_test_broken.cu:{BodyFirstLine + 2}:", e.Message, StringComparison.Ordinal);
        Assert.Contains("undeclared_thing", e.Message, StringComparison.Ordinal);
        Assert.Contains("y[threadIdx.x] = undeclared_thing * 2.0f;", e.Message, StringComparison.Ordinal);  // the line itself
        Assert.DoesNotContain(Path.GetTempPath(), e.Message, StringComparison.Ordinal);
        Assert.Throws<EmuException>(() => CudaEmulator.Compile(k));  // a failed compile is not cached
    }

    [Fact]
    public void A_missing_entry_point_fails_to_compile()
    {
        RequireEmulator();
        var k = Cu("emu_test_noentry", "extern \"C\" __global__ void present(float* y) { y[0] = 1.0f; }\n", "absent");
        var e = Assert.Throws<EmuException>(() => CudaEmulator.Compile(k));
        Assert.Contains("absent", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Second_compile_comes_from_memory_and_a_fresh_process_from_disk_without_gxx()
    {
        RequireEmulator();
        var k = Cu("emu_test_cache", """
            extern "C" __global__ void cache_probe(float* __restrict__ y)
            {
                y[threadIdx.x] = 3.0f * threadIdx.x;
            }
            """, "cache_probe");
        var m1 = CudaEmulator.Compile(k, out var first);
        Assert.NotEqual(EmuCacheOutcome.Memory, first);  // Compiled, or Disk when an earlier run cached it
        var m2 = CudaEmulator.Compile(k, out var second);
        Assert.Same(m1, m2);
        Assert.Equal(EmuCacheOutcome.Memory, second);

        var dir = Path.Combine(Path.GetTempPath(), "swc-emu-cache-test-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var a = CudaEmulator.CompileUncached(k, dir)) Assert.Equal(EmuCacheOutcome.Compiled, a.Outcome);
            Assert.True(File.Exists(Path.Combine(dir, CudaEmulator.Key(k) + ".so")));
            using var b = CudaEmulator.CompileUncached(k, dir);
            Assert.Equal(EmuCacheOutcome.Disk, b.Outcome);  // g++ did not run
            Assert.Empty(Directory.GetFiles(dir, "*.tmp*"));
            using var y = EmuBuffer.Alloc(8);
            b.Launch("cache_probe", new Dim3(1), new Dim3(8), 0, y.Ptr);
            Assert.Equal(Enumerable.Range(0, 8).Select(i => 3f * i), y.ToArray());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void A_corrupt_cache_entry_is_discarded_and_rebuilt()
    {
        RequireEmulator();
        var k = Cu("emu_test_corrupt", "extern \"C\" __global__ void corrupt_probe(float* y) { y[threadIdx.x] = 7.0f; }\n",
            "corrupt_probe");
        var dir = Path.Combine(Path.GetTempPath(), "swc-emu-corrupt-test-" + Guid.NewGuid().ToString("N"));
        try
        {
            Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, CudaEmulator.Key(k) + ".so"), "not a shared library");
            using var m = CudaEmulator.CompileUncached(k, dir);
            Assert.Equal(EmuCacheOutcome.Compiled, m.Outcome);
            using var y = EmuBuffer.Alloc(4);
            m.Launch("corrupt_probe", new Dim3(1), new Dim3(4), 0, y.Ptr);
            Assert.All(y.ToArray(), v => Assert.Equal(7f, v));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Cache_key_depends_on_source_and_entries()
    {
        RequireEmulator();
        var a = Cu("emu_key", "extern \"C\" __global__ void f(float* y) { y[0] = 1.0f; }\n", "f");
        var b = a with { Source = a.Source.Replace("1.0f", "2.0f", StringComparison.Ordinal) };
        var c = a with { Entries = ["f", "f"] };
        Assert.Equal(CudaEmulator.Key(a), CudaEmulator.Key(a with { }));
        Assert.NotEqual(CudaEmulator.Key(a), CudaEmulator.Key(b));
        Assert.NotEqual(CudaEmulator.Key(a), CudaEmulator.Key(c));
    }

    [Fact]
    public void CheckGuards_catches_writes_past_either_end()
    {
        var m = Module(Misc);
        using (var ok = EmuBuffer.Alloc(32))
        {
            m.Launch("shift_write", new Dim3(1), new Dim3(32), 0, ok.Ptr, 0);
            ok.CheckGuards("in bounds");
        }
        using (var after = EmuBuffer.Alloc(32))
        {
            m.Launch("shift_write", new Dim3(1), new Dim3(32), 0, after.Ptr, 1);
            var e = Assert.Throws<EmuException>(() => after.CheckGuards("y of shift_write"));
            Assert.Contains("y of shift_write", e.Message, StringComparison.Ordinal);
            Assert.Contains("past the end", e.Message, StringComparison.Ordinal);
            Assert.Contains("[32, 32]", e.Message, StringComparison.Ordinal);
        }
        using (var before = EmuBuffer.Alloc(32))
        {
            m.Launch("shift_write", new Dim3(1), new Dim3(32), 0, before.Ptr, -2);
            var e = Assert.Throws<EmuException>(() => before.CheckGuards("y"));
            Assert.Contains("before", e.Message, StringComparison.Ordinal);
            Assert.Contains("[-2, -1]", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Buffers_start_as_NaN_and_copy_their_data()
    {
        using var a = EmuBuffer.Alloc(100);
        Assert.Equal(100, a.Floats);
        Assert.All(a.ToArray(), v => Assert.True(float.IsNaN(v)));
        Assert.Equal(0, a.Ptr % 256);
        using var b = EmuBuffer.From([1f, 2f, 3f]);
        Assert.Equal(new[] { 1f, 2f, 3f }, b.ToArray());
        b.Span[2] = 5;
        b.CheckGuards("b");
        using var empty = EmuBuffer.Alloc(0);
        empty.CheckGuards("empty");
    }

    [Fact]
    public void A_trap_fails_the_launch_naming_block_and_thread()
    {
        RequireEmulator();
        var m = CudaEmulator.Compile(Faults);
        using var y = EmuBuffer.Alloc(3 * 8);
        var e = Assert.Throws<EmuException>(() => m.Launch("trap_one", new Dim3(3), new Dim3(8), 0, y.Ptr));
        Assert.Contains("block (1,0,0) thread (3,0,0): __trap()", e.Message, StringComparison.Ordinal);
        Assert.Contains("emu_test_faults", e.Message, StringComparison.Ordinal);
        Assert.All(y.ToArray()[..8], v => Assert.Equal(1f, v));        // block 0 ran
        Assert.All(y.ToArray()[16..], v => Assert.True(float.IsNaN(v))); // block 2 never started
    }

    [Fact]
    public void Writing_past_the_dynamic_shared_memory_fails_the_launch()
    {
        RequireEmulator();
        var m = CudaEmulator.Compile(Faults);
        using var y = EmuBuffer.Alloc(32);
        var e = Assert.Throws<EmuException>(() => m.Launch("smem_oob", new Dim3(1), new Dim3(32), 32 * sizeof(float), y.Ptr));
        Assert.Contains("outside its 128 bytes of dynamic shared memory (past the end)", e.Message, StringComparison.Ordinal);
        m.Launch("smem_oob", new Dim3(1), new Dim3(32), 33 * sizeof(float), y.Ptr);  // one more float is enough
    }

    [Fact]
    public void A_deadlock_fails_the_launch_and_the_module_stays_usable()
    {
        RequireEmulator();
        var m = CudaEmulator.Compile(Faults);
        using var y = EmuBuffer.Alloc(32);
        var saved = m.Watchdog;
        // the threads reach their waits within milliseconds; 3 s leaves a loaded machine 10x and more before the
        // watchdog looks, so the message always sees every thread at its wait
        m.Watchdog = TimeSpan.FromSeconds(3);
        try
        {
            var e = Assert.Throws<EmuException>(() => m.Launch("deadlock", new Dim3(1), new Dim3(32), 0, y.Ptr));
            Assert.Contains("deadlock", e.Message, StringComparison.Ordinal);
            Assert.Contains("1 of 32 live threads wait at __syncthreads", e.Message, StringComparison.Ordinal);
            Assert.Contains("lanes 0xfffffffe wait with mask 0xffffffff", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            m.Watchdog = saved;
        }
        m.Launch("fill", new Dim3(1), new Dim3(32), 0, y.Ptr);
        Assert.All(y.ToArray(), v => Assert.Equal(2f, v));
    }

    [Fact]
    public void Invalid_launches_are_refused()
    {
        RequireEmulator();
        var m = CudaEmulator.Compile(Faults);
        using var y = EmuBuffer.Alloc(2048);
        Assert.Contains("invalid block", Assert.Throws<EmuException>(
            () => m.Launch("fill", new Dim3(1), new Dim3(1025), 0, y.Ptr)).Message, StringComparison.Ordinal);
        Assert.Contains("invalid block", Assert.Throws<EmuException>(
            () => m.Launch("fill", new Dim3(1), new Dim3(2, 2, 65), 0, y.Ptr)).Message, StringComparison.Ordinal);
        Assert.Contains("invalid grid", Assert.Throws<EmuException>(
            () => m.Launch("fill", new Dim3(1, 70000), new Dim3(1), 0, y.Ptr)).Message, StringComparison.Ordinal);
        Assert.Contains("exceed", Assert.Throws<EmuException>(
            () => m.Launch("fill", new Dim3(1), new Dim3(32), 300_000, y.Ptr)).Message, StringComparison.Ordinal);
        Assert.Contains("no entry point 'nope'", Assert.Throws<EmuException>(
            () => m.Launch("nope", new Dim3(1), new Dim3(32), 0, y.Ptr)).Message, StringComparison.Ordinal);
        Assert.True(y.ToArray().All(float.IsNaN));
    }

    private static EmuModule Module(CudaKernelSource k)
    {
        RequireEmulator();
        return CudaEmulator.Compile(k);
    }
}
