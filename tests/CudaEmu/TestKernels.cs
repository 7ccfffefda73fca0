using System.Runtime.InteropServices;
using ShiftWise.CodegenCuda;

namespace ShiftWise.CudaEmu;

/// <summary>Hand-written kernel sources that follow the emitted-kernel conventions, and small test helpers.</summary>
internal static class TestKernels
{
    /// <summary>The prelude every emitted kernel starts with (after its first comment line).</summary>
    public const string Prelude =
        "#ifndef SWC_DYNAMIC_SMEM\n#define SWC_DYNAMIC_SMEM(T, name) extern __shared__ __align__(16) T name[]\n#endif\n";

    /// <summary>Lines before the body: the comment line and the prelude.</summary>
    public const int BodyFirstLine = 5;

    public static CudaKernelSource Cu(string name, string body, params string[] entries) =>
        new(name, "test", $"// {name}: hand-written emulator test kernel\n" + Prelude + body,
            entries.Length == 0 ? [name] : entries);

    public static void RequireEmulator()
    {
        if (!CudaEmulator.Available) Assert.Skip(CudaEmulator.MissingReason);
    }

    public static float[] RandomInts(int n, int seed, int lo, int hi)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)r.Next(lo, hi)).ToArray();
    }

    public static int[] Ints(EmuBuffer b) => MemoryMarshal.Cast<float, int>(b.Span).ToArray();

    public static void SetInts(EmuBuffer b, int value) => MemoryMarshal.Cast<float, int>(b.Span).Fill(value);

    // ---- modules shared by several tests (each compiled once per process, then cached) ----

    public static readonly CudaKernelSource Sync = Cu("emu_test_sync", """
        extern "C" __global__ void __launch_bounds__(256) block_sum(float* __restrict__ y, const float* __restrict__ x)
        {
            __shared__ float tile[256];
            const unsigned t = threadIdx.x;
            tile[t] = x[blockIdx.x * 256 + t];
            __syncthreads();
            #pragma unroll
            for (unsigned s = 128; s > 0; s >>= 1)
            {
                if (t < s) tile[t] += tile[t + s];
                __syncthreads();
            }
            if (t == 0) y[blockIdx.x] = tile[0];
        }

        // y = x reversed within each block, through dynamic shared memory of blockDim.x floats
        extern "C" __global__ void block_reverse(float* __restrict__ y, const float* __restrict__ x)
        {
            SWC_DYNAMIC_SMEM(float, smem);
            const unsigned t = threadIdx.x, n = blockDim.x, base = blockIdx.x * n;
            smem[t] = x[base + t];
            __syncthreads();
            y[base + t] = smem[n - 1 - t];
        }

        // y (96x64) = transpose of x (64x96), 32x32 tiles through padded static shared memory, blocks of 32x8
        extern "C" __global__ void __launch_bounds__(256) transpose_64x96(float* __restrict__ y, const float* __restrict__ x)
        {
            const int R = 64, C = 96;
            __shared__ __align__(16) float tile[32][33];
            const int c = blockIdx.x * 32 + threadIdx.x, r0 = blockIdx.y * 32;
            for (int j = threadIdx.y; j < 32; j += 8) tile[j][threadIdx.x] = x[(r0 + j) * C + c];
            __syncthreads();
            const int r = r0 + threadIdx.x, c0 = blockIdx.x * 32;
            for (int j = threadIdx.y; j < 32; j += 8) y[(c0 + j) * R + r] = tile[threadIdx.x][j];
        }

        // only block 0 writes the dynamic shared memory; every block reads it
        extern "C" __global__ void smem_uninit(float* __restrict__ y)
        {
            SWC_DYNAMIC_SMEM(float, smem);
            const unsigned t = threadIdx.x;
            if (blockIdx.x == 0) smem[t] = 1.0f;
            __syncthreads();
            y[blockIdx.x * blockDim.x + t] = smem[t];
        }

        // only block 0 writes the static shared memory (of an inline helper and of the kernel); every block reads it
        static __device__ __forceinline__ float* helper_tile()
        {
            __shared__ __align__(16) float h[32];
            return h;
        }

        extern "C" __global__ void static_smem_uninit(float* __restrict__ y)
        {
            __shared__ float tile[32];
            const unsigned t = threadIdx.x;
            float* h = helper_tile();
            if (blockIdx.x == 0)
            {
                tile[t] = 1.0f;
                h[t] = 2.0f;
            }
            __syncthreads();
            y[2 * (blockIdx.x * blockDim.x + t)] = tile[t];
            y[2 * (blockIdx.x * blockDim.x + t) + 1] = h[t];
        }

        // threads >= 200 return at once, 100..199 after one barrier; the rest sum 100 values over two more barriers
        extern "C" __global__ void __launch_bounds__(256) early_exit_sum(float* __restrict__ y, const float* __restrict__ x)
        {
            __shared__ float tile[256];
            const unsigned t = threadIdx.x;
            if (t >= 200) return;
            tile[t] = x[blockIdx.x * 100 + t % 100];
            __syncthreads();
            if (t >= 100) return;
            if (t < 50) tile[t] += tile[t + 50];
            __syncthreads();
            if (t < 25) tile[t] += tile[t + 25];
            __syncthreads();
            if (t == 0)
            {
                float s = 0.0f;
                for (int i = 0; i < 25; i++) s += tile[i];
                y[blockIdx.x] = s;
            }
        }

        extern "C" __global__ void coords3d(int* __restrict__ out)
        {
            const unsigned tpb = blockDim.x * blockDim.y * blockDim.z;
            const unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
            const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
            int* o = out + 4 * (b * tpb + t);
            o[0] = blockIdx.x * 100 + blockIdx.y * 10 + blockIdx.z;
            o[1] = threadIdx.x * 100 + threadIdx.y * 10 + threadIdx.z;
            o[2] = blockDim.x * 100 + blockDim.y * 10 + blockDim.z;
            o[3] = gridDim.x * 100 + gridDim.y * 10 + gridDim.z;
        }

        // 1024 threads: warp sums, then warp 0 sums the 32 partials; plus __syncthreads_count/and/or
        extern "C" __global__ void __launch_bounds__(1024) big_block(float* __restrict__ y, const float* __restrict__ x)
        {
            __shared__ float partial[32];
            const unsigned t = threadIdx.x, lane = t % 32, warp = t / 32;
            const float v = x[blockIdx.x * 1024 + t];
            float s = v;
            for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
            if (lane == 0) partial[warp] = s;
            const int positives = __syncthreads_count(v > 0.0f);
            const int all = __syncthreads_and(v > -1000.0f);
            const int any = __syncthreads_or(v > 1000.0f);
            const int odd = __syncthreads_count(t & 1);
            if (warp == 0)
            {
                float p = partial[lane];
                for (int o = 16; o > 0; o >>= 1) p += __shfl_xor_sync(0xffffffffu, p, o);
                if (lane == 0)
                {
                    float* r = y + 5 * blockIdx.x;
                    r[0] = p;
                    r[1] = positives;
                    r[2] = all;
                    r[3] = any;
                    r[4] = odd;
                }
            }
        }
        """, "block_sum", "block_reverse", "transpose_64x96", "smem_uninit", "static_smem_uninit", "early_exit_sum", "coords3d", "big_block");

    public static readonly CudaKernelSource Warp = Cu("emu_test_warp", """
        extern "C" __global__ void __launch_bounds__(64) warp_ops(float* __restrict__ y, const float* __restrict__ x)
        {
            const unsigned t = blockIdx.x * blockDim.x + threadIdx.x, lane = threadIdx.x % 32;
            const float v = x[t];
            float* o = y + 8 * t;
            float s = v;
            for (int m = 16; m > 0; m >>= 1) s += __shfl_xor_sync(0xffffffffu, s, m);
            o[0] = s;
            float d = v;
            for (int k = 16; k > 0; k >>= 1) d += __shfl_down_sync(0xffffffffu, d, k);
            o[1] = d;
            float u = v;
            for (int k = 1; k < 32; k <<= 1)
            {
                const float n = __shfl_up_sync(0xffffffffu, u, k);
                if (lane >= (unsigned)k) u += n;
            }
            o[2] = u;
            o[3] = __shfl_sync(0xffffffffu, v, 5);
            o[4] = __shfl_sync(0xffffffffu, v, lane + 1, 8);
            o[5] = __shfl_xor_sync(0xffffffffu, v, 4, 16);
            o[6] = __shfl_down_sync(0xffffffffu, v, 3, 16);
            o[7] = (float)__shfl_up_sync(0xffffffffu, (int)lane * 2, 2, 8);
        }

        extern "C" __global__ void warp_votes(int* __restrict__ out, const float* __restrict__ x)
        {
            const unsigned t = threadIdx.x, lane = t % 32;
            const float v = x[t];
            int* o = out + 5 * t;
            o[0] = (int)__ballot_sync(0xffffffffu, v > 0.0f);
            o[1] = __any_sync(0xffffffffu, v > 100.0f);
            o[2] = __all_sync(0xffffffffu, v > -100.0f);
            o[3] = __all_sync(0xffffffffu, v > 0.0f);
            const unsigned half = lane < 16 ? 0x0000ffffu : 0xffff0000u;
            o[4] = (int)__ballot_sync(half, v > 0.0f);
        }

        // lanes >= 20 return; the rest use __activemask() as the mask
        extern "C" __global__ void warp_after_exit(float* __restrict__ y, const float* __restrict__ x)
        {
            const unsigned lane = threadIdx.x % 32;
            if (lane >= 20) return;
            const unsigned active = __activemask();
            const float v = x[threadIdx.x];
            float* o = y + 4 * threadIdx.x;
            o[0] = __shfl_sync(active, v, 0);
            o[1] = (float)__popc(__ballot_sync(active, 1));
            o[2] = __shfl_down_sync(active, v, 15);
            o[3] = (float)active;
        }
        """, "warp_ops", "warp_votes", "warp_after_exit");

    public static readonly CudaKernelSource Atomics = Cu("emu_test_atomics", """
        extern "C" __global__ void __launch_bounds__(256) histogram(int* __restrict__ bins, float* __restrict__ total,
            int* __restrict__ maxv, unsigned* __restrict__ tickets, unsigned* __restrict__ counter, const float* __restrict__ x)
        {
            __shared__ int local[16];
            const unsigned t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
            if (t < 16) local[t] = 0;
            __syncthreads();
            const int v = (int)x[i];
            atomicAdd(&local[v & 15], 1);
            atomicAdd(total, x[i]);
            atomicMax(maxv, v);
            tickets[i] = atomicAdd(counter, 1u);
            __syncthreads();
            if (t < 16) atomicAdd(&bins[t], local[t]);
        }

        extern "C" __global__ void exch(int* __restrict__ flag, int* __restrict__ winners)
        {
            if (atomicExch(flag, 1) == 0) atomicAdd(winners, 1);
            if (atomicCAS(flag + 1, 0, (int)threadIdx.x + 1) == 0) atomicAdd(winners + 1, 1);
        }
        """, "histogram", "exch");

    public static readonly CudaKernelSource Misc = Cu("emu_test_misc", """
        extern "C" __global__ void vec4_mix(float* __restrict__ y, const float* __restrict__ x)
        {
            const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
            const float4 a = reinterpret_cast<const float4*>(x)[i];
            const float4 b = __ldg(reinterpret_cast<const float4*>(x) + (i ^ 1));
            reinterpret_cast<float4*>(y)[i] = make_float4(a.x + b.w, a.y * 2.0f, a.z - b.x, a.w);
            if (i == 0) y[4 * blockDim.x * gridDim.x] = (float)(alignof(float4) * 100 + sizeof(float4));
        }

        extern "C" __global__ void math_funcs(float* __restrict__ y, const float* __restrict__ x)
        {
            const unsigned i = threadIdx.x;
            const float v = x[i], a = fabsf(v);
            float* o = y + 16 * i;
            o[0] = expf(v);
            o[1] = __expf(v);
            o[2] = erff(v);
            o[3] = erfcf(v);
            o[4] = tanhf(v);
            o[5] = sqrtf(a);
            o[6] = rsqrtf(a + 1.0f);
            o[7] = fmaxf(v, 0.5f) + fminf(v, 0.5f);
            o[8] = fmaf(v, 2.0f, 1.0f);
            o[9] = logf(a + 1.0f) + __logf(a + 1.0f);
            o[10] = powf(a, 1.5f);
            o[11] = __fdividef(v, 3.0f) + __frcp_rn(4.0f) + __fsqrt_rn(9.0f);
            o[12] = __int_as_float(__float_as_int(v) ^ (int)0x80000000);
            o[13] = (float)(min(-3, (int)i) + (int)max(2u, i) + (int)min(5LL, (long long)i));
            o[14] = min(v, 0.25f) + max(v, -0.25f);
            o[15] = (float)(max(-2, min(7, (int)i - 3)));
        }

        // a by-value int parameter: cuLaunchKernel-style unpacking works for any parameter type
        extern "C" __global__ void shift_write(float* __restrict__ y, int shift)
        {
            y[(int)threadIdx.x + shift] = (float)threadIdx.x;
        }
        """, "vec4_mix", "math_funcs", "shift_write");
}
