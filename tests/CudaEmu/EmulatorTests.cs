using ShiftWise.CodegenCuda;
using static ShiftWise.CudaEmu.TestKernels;

namespace ShiftWise.CudaEmu;

/// <summary>What the shim must make behave as on a GPU: shared memory, barriers, warp operations, atomics.</summary>
public sealed class EmulatorTests
{
    private static EmuModule Module(CudaKernelSource k)
    {
        RequireEmulator();
        return CudaEmulator.Compile(k);
    }

    [Fact]
    public void Block_tree_reduction_in_static_shared_memory()
    {
        var m = Module(Sync);
        var xs = RandomInts(4 * 256, 1, -50, 50);
        using var x = EmuBuffer.From(xs);
        using var y = EmuBuffer.Alloc(4);
        m.Launch("block_sum", new Dim3(4), new Dim3(256), 0, y.Ptr, x.Ptr);
        y.CheckGuards("y");
        for (int b = 0; b < 4; b++) Assert.Equal(xs.Skip(256 * b).Take(256).Sum(), y.Span[b]);
    }

    [Fact]
    public void Dynamic_shared_memory_has_the_launch_size()
    {
        var m = Module(Sync);
        var xs = RandomInts(3 * 96, 2, -50, 50);
        using var x = EmuBuffer.From(xs);
        using var y = EmuBuffer.Alloc(xs.Length);
        m.Launch("block_reverse", new Dim3(3), new Dim3(96), 96 * sizeof(float), y.Ptr, x.Ptr);
        y.CheckGuards("y");
        for (int b = 0; b < 3; b++)
        {
            for (int t = 0; t < 96; t++) Assert.Equal(xs[b * 96 + 95 - t], y.Span[b * 96 + t]);
        }
    }

    [Fact]
    public void Shared_memory_transpose_with_2d_blocks()
    {
        var m = Module(Sync);
        var xs = Enumerable.Range(0, 64 * 96).Select(i => (float)i).ToArray();
        using var x = EmuBuffer.From(xs);
        using var y = EmuBuffer.Alloc(xs.Length);
        m.Launch("transpose_64x96", new Dim3(3, 2), new Dim3(32, 8), 0, y.Ptr, x.Ptr);
        y.CheckGuards("y");
        for (int r = 0; r < 64; r++)
        {
            for (int c = 0; c < 96; c++) Assert.Equal(xs[r * 96 + c], y.Span[c * 64 + r]);
        }
    }

    [Fact]
    public void Uninitialised_dynamic_shared_memory_reads_as_NaN_in_every_block()
    {
        var m = Module(Sync);
        using var y = EmuBuffer.Alloc(2 * 32);
        m.Launch("smem_uninit", new Dim3(2), new Dim3(32), 32 * sizeof(float), y.Ptr);
        for (int t = 0; t < 32; t++)
        {
            Assert.Equal(1.0f, y.Span[t]);               // block 0 wrote it
            Assert.True(float.IsNaN(y.Span[32 + t]), $"block 1 thread {t} read {y.Span[32 + t]}"); // refilled per block
        }
    }

    [Fact]
    public void Uninitialised_static_shared_memory_reads_as_NaN_in_every_block()
    {
        var m = Module(Sync);
        using var y = EmuBuffer.Alloc(2 * 2 * 32);
        m.Launch("static_smem_uninit", new Dim3(2), new Dim3(32), 0, y.Ptr);
        for (int t = 0; t < 32; t++)
        {
            Assert.Equal(1.0f, y.Span[2 * t]);
            Assert.Equal(2.0f, y.Span[2 * t + 1]);
            Assert.True(float.IsNaN(y.Span[64 + 2 * t]), $"block 1 thread {t} read the kernel's tile as {y.Span[64 + 2 * t]}");
            Assert.True(float.IsNaN(y.Span[64 + 2 * t + 1]), $"block 1 thread {t} read the helper's tile as {y.Span[65 + 2 * t]}");
        }
    }

    [Fact]
    public void Threads_that_return_early_do_not_block_the_barrier()
    {
        var m = Module(Sync);
        var xs = RandomInts(3 * 100, 3, -50, 50);
        using var x = EmuBuffer.From(xs);
        using var y = EmuBuffer.Alloc(3);
        m.Launch("early_exit_sum", new Dim3(3), new Dim3(256), 0, y.Ptr, x.Ptr);
        for (int b = 0; b < 3; b++) Assert.Equal(xs.Skip(100 * b).Take(100).Sum(), y.Span[b]);
    }

    [Fact]
    public void Three_dimensional_grids_and_blocks()
    {
        var m = Module(Sync);
        var grid = new Dim3(2, 3, 4);
        var block = new Dim3(4, 2, 3);
        using var o = EmuBuffer.Alloc(4 * grid.Count * block.Count);
        m.Launch("coords3d", grid, block, 0, o.Ptr);
        o.CheckGuards("out");
        var ints = Ints(o);
        int i = 0;
        for (int bz = 0; bz < 4; bz++)
        for (int by = 0; by < 3; by++)
        for (int bx = 0; bx < 2; bx++)
        for (int tz = 0; tz < 3; tz++)
        for (int ty = 0; ty < 2; ty++)
        for (int tx = 0; tx < 4; tx++, i += 4)
        {
            Assert.Equal(bx * 100 + by * 10 + bz, ints[i]);
            Assert.Equal(tx * 100 + ty * 10 + tz, ints[i + 1]);
            Assert.Equal(423, ints[i + 2]);
            Assert.Equal(234, ints[i + 3]);
        }
    }

    [Fact]
    public void Blocks_of_1024_threads_with_warp_reductions_and_syncthreads_count()
    {
        var m = Module(Sync);
        var xs = RandomInts(2 * 1024, 4, -5, 6);
        using var x = EmuBuffer.From(xs);
        using var y = EmuBuffer.Alloc(2 * 5);
        m.Launch("big_block", new Dim3(2), new Dim3(1024), 0, y.Ptr, x.Ptr);
        y.CheckGuards("y");
        for (int b = 0; b < 2; b++)
        {
            var part = xs.Skip(1024 * b).Take(1024).ToArray();
            Assert.Equal(part.Sum(), y.Span[5 * b]);
            Assert.Equal(part.Count(v => v > 0), y.Span[5 * b + 1]);
            Assert.Equal(1, y.Span[5 * b + 2]);
            Assert.Equal(0, y.Span[5 * b + 3]);
            Assert.Equal(512, y.Span[5 * b + 4]);
        }
    }

    [Fact]
    public void Warp_shuffles_xor_down_up_and_indexed_with_widths()
    {
        var m = Module(Warp);
        var xs = RandomInts(2 * 64, 5, -100, 100);
        using var x = EmuBuffer.From(xs);
        using var y = EmuBuffer.Alloc(8 * xs.Length);
        m.Launch("warp_ops", new Dim3(2), new Dim3(64), 0, y.Ptr, x.Ptr);
        y.CheckGuards("y");
        for (int w = 0; w < xs.Length / 32; w++)
        {
            var v = xs.Skip(32 * w).Take(32).ToArray();
            var d = (float[])v.Clone();
            for (int k = 16; k > 0; k >>= 1) d = d.Select((dl, l) => dl + (l + k < 32 ? d[l + k] : dl)).ToArray();
            for (int l = 0; l < 32; l++)
            {
                var o = y.Span.Slice(8 * (32 * w + l), 8);
                Assert.Equal(v.Sum(), o[0]);
                Assert.Equal(d[l], o[1]);
                Assert.Equal(v.Take(l + 1).Sum(), o[2]);
                Assert.Equal(v[5], o[3]);
                Assert.Equal(v[l / 8 * 8 + (l + 1) % 8], o[4]);
                Assert.Equal(v[l ^ 4], o[5]);
                Assert.Equal(l % 16 + 3 < 16 ? v[l + 3] : v[l], o[6]);
                Assert.Equal(l % 8 >= 2 ? (l - 2) * 2 : l * 2, o[7]);
            }
        }
    }

    [Fact]
    public void Warp_votes_ballot_any_all_with_full_and_partial_masks()
    {
        var m = Module(Warp);
        // warp 0: mixed signs; warp 1: all positive, one above 100
        var xs = Enumerable.Range(0, 64).Select(t => t < 32 ? (t % 3 == 0 ? 1f : -1f) : (t == 40 ? 150f : t)).ToArray();
        using var x = EmuBuffer.From(xs);
        using var o = EmuBuffer.Alloc(5 * 64);
        m.Launch("warp_votes", new Dim3(1), new Dim3(64), 0, o.Ptr, x.Ptr);
        var r = Ints(o);
        for (int t = 0; t < 64; t++)
        {
            int w = t / 32, lane = t % 32;
            uint ballot = 0;
            for (int j = 0; j < 32; j++) ballot |= xs[32 * w + j] > 0 ? 1u << j : 0;
            uint half = lane < 16 ? 0x0000ffffu : 0xffff0000u;
            Assert.Equal(ballot, (uint)r[5 * t]);
            Assert.Equal(w == 1 ? 1 : 0, r[5 * t + 1]);
            Assert.Equal(1, r[5 * t + 2]);
            Assert.Equal(w == 1 ? 1 : 0, r[5 * t + 3]);
            Assert.Equal(ballot & half, (uint)r[5 * t + 4]);
        }
    }

    [Fact]
    public void Warp_operations_after_lanes_returned_see_only_live_lanes()
    {
        var m = Module(Warp);
        var xs = RandomInts(32, 6, 1, 100);
        using var x = EmuBuffer.From(xs);
        using var y = EmuBuffer.Alloc(4 * 32);
        m.Launch("warp_after_exit", new Dim3(1), new Dim3(32), 0, y.Ptr, x.Ptr);
        for (int l = 0; l < 20; l++)
        {
            var o = y.Span.Slice(4 * l, 4);
            Assert.Equal(xs[0], o[0]);
            Assert.Equal(20, o[1]);
            if (l + 15 >= 32) Assert.Equal(xs[l], o[2]);
            else if (l + 15 < 20) Assert.Equal(xs[l + 15], o[2]);
            else Assert.True(float.IsNaN(o[2]), $"lane {l} read returned lane {l + 15} as {o[2]}, expected NaN");
            Assert.Equal(0xFFFFF, o[3]);
        }
        Assert.True(y.Span[(4 * 20)..].ToArray().All(float.IsNaN));  // returned lanes wrote nothing
    }

    [Fact]
    public void Atomics_histogram_float_sum_max_and_tickets()
    {
        var m = Module(Atomics);
        var xs = RandomInts(4 * 256, 7, 0, 100);
        using var x = EmuBuffer.From(xs);
        using var bins = EmuBuffer.Alloc(16);
        using var total = EmuBuffer.From([0f]);
        using var maxv = EmuBuffer.Alloc(1);
        using var tickets = EmuBuffer.Alloc(xs.Length);
        using var counter = EmuBuffer.Alloc(1);
        SetInts(bins, 0);
        SetInts(maxv, int.MinValue);
        SetInts(counter, 0);
        m.Launch("histogram", new Dim3(4), new Dim3(256), 0, bins.Ptr, total.Ptr, maxv.Ptr, tickets.Ptr, counter.Ptr, x.Ptr);
        foreach (var b in new[] { bins, total, maxv, tickets, counter }) b.CheckGuards("histogram buffer");
        var expected = new int[16];
        foreach (var v in xs) expected[(int)v & 15]++;
        Assert.Equal(expected, Ints(bins));
        Assert.Equal(xs.Sum(), total.Span[0]);
        Assert.Equal((int)xs.Max(), Ints(maxv)[0]);
        Assert.Equal(xs.Length, Ints(counter)[0]);
        Assert.Equal(Enumerable.Range(0, xs.Length), Ints(tickets).Order());  // atomicAdd returns the old value
    }

    [Fact]
    public void AtomicExch_and_atomicCAS_let_exactly_one_thread_win()
    {
        var m = Module(Atomics);
        using var flag = EmuBuffer.Alloc(2);
        using var winners = EmuBuffer.Alloc(2);
        SetInts(flag, 0);
        SetInts(winners, 0);
        m.Launch("exch", new Dim3(1), new Dim3(64), 0, flag.Ptr, winners.Ptr);
        Assert.Equal(new[] { 1, 1 }, Ints(winners));
        Assert.InRange(Ints(flag)[1], 1, 64);
    }

    [Fact]
    public void Float4_loads_and_stores()
    {
        var m = Module(Misc);
        var xs = RandomInts(4 * 64, 8, -50, 50);
        using var x = EmuBuffer.From(xs);
        using var y = EmuBuffer.Alloc(4 * 64 + 1);
        m.Launch("vec4_mix", new Dim3(2), new Dim3(32), 0, y.Ptr, x.Ptr);
        y.CheckGuards("y");
        for (int i = 0; i < 64; i++)
        {
            int j = i ^ 1;
            Assert.Equal(xs[4 * i] + xs[4 * j + 3], y.Span[4 * i]);
            Assert.Equal(xs[4 * i + 1] * 2, y.Span[4 * i + 1]);
            Assert.Equal(xs[4 * i + 2] - xs[4 * j], y.Span[4 * i + 2]);
            Assert.Equal(xs[4 * i + 3], y.Span[4 * i + 3]);
        }
        Assert.Equal(1616, y.Span[256]);  // alignof(float4) 16, sizeof 16
    }

    [Fact]
    public void Math_functions_and_min_max_overloads()
    {
        var m = Module(Misc);
        var xs = Enumerable.Range(0, 32).Select(i => (float)(-2.2 + i * 0.14)).ToArray();
        using var x = EmuBuffer.From(xs);
        using var y = EmuBuffer.Alloc(16 * 32);
        m.Launch("math_funcs", new Dim3(1), new Dim3(32), 0, y.Ptr, x.Ptr);
        for (int i = 0; i < 32; i++)
        {
            double v = xs[i], a = Math.Abs(v);
            double[] expected =
            [
                Math.Exp(v), Math.Exp(v), Erf(v), 1 - Erf(v), Math.Tanh(v), Math.Sqrt(a), 1 / Math.Sqrt(a + 1),
                Math.Max(v, 0.5) + Math.Min(v, 0.5), v * 2 + 1, 2 * Math.Log(a + 1), Math.Pow(a, 1.5),
                v / 3 + 0.25 + 3, -v, -3 + Math.Max(2, i) + Math.Min(5, i), Math.Min(v, 0.25) + Math.Max(v, -0.25),
                Math.Max(-2, Math.Min(7, i - 3)),
            ];
            for (int k = 0; k < 16; k++)
            {
                double got = y.Span[16 * i + k];
                Assert.True(Math.Abs(got - expected[k]) <= 2e-6 * Math.Max(1, Math.Abs(expected[k])),
                    $"x={v}: output {k} = {got}, expected {expected[k]}");
            }
        }
    }

    [Fact]
    public void Non_pointer_parameters_are_unpacked_like_cuLaunchKernel()
    {
        var m = Module(Misc);
        using var y = EmuBuffer.Alloc(40);
        m.Launch("shift_write", new Dim3(1), new Dim3(32), 0, y.Ptr, 5);  // int 5 in the low bytes of the slot
        for (int i = 0; i < 40; i++)
        {
            if (i >= 5 && i < 37) Assert.Equal(i - 5, y.Span[i]);
            else Assert.True(float.IsNaN(y.Span[i]));
        }
        Assert.Equal(2, m.Arity("shift_write"));
        var e = Assert.Throws<EmuException>(() => m.Launch("shift_write", new Dim3(1), new Dim3(32), 0, y.Ptr));
        Assert.Contains("takes 2 arguments, got 1", e.Message, StringComparison.Ordinal);
    }

    // erf to double precision (Maclaurin series; |x| stays below 3 here)
    private static double Erf(double x)
    {
        double term = x, sum = x;
        for (int k = 1; k < 100; k++)
        {
            term *= -x * x / k;
            sum += term / (2 * k + 1);
        }
        return 2 / Math.Sqrt(Math.PI) * sum;
    }
}
