// swc_cuda_emu.h: runs ShiftWise's emitted CUDA kernels on the CPU (tests/CudaEmu). g++ force-includes it
// (-include) before the exact kernel source. The blocks of a launch run one at a time, so a C++ `static` is one
// block's shared memory; the threads of a block run as concurrent OS threads, so __syncthreads, warp operations and
// shared memory behave as on a GPU. Every wait polls an abort flag, so a failed or deadlocked launch ends with a
// message instead of hanging the test run.
#pragma once

// Every system header comes first: the CUDA keywords defined below (__noinline__, __device__, ...) would break them.
#include <atomic>
#include <climits>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>
#include <cmath>
#include <math.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SWC_CUDA_EMU 1

// ---- CUDA keywords --------------------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __managed__
#define __forceinline__ __inline__ __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// Static shared memory is a C++ static in its own section, which the emulator refills with 0xFF (NaN) at each block
// start, as it does the dynamic shared memory. (Statics of inline functions and templates may only share a named
// section with other statics because harnesses compile with -fno-weak: one translation unit needs no COMDAT.)
#define __shared__ static __attribute__((section("swc_shared")))
#define __constant__ static
// __restrict__ is a g++ keyword already.

// ---- vector types ----------------------------------------------------------------------------------------------
struct uint3 { unsigned x, y, z; };
struct dim3
{
    unsigned x = 1, y = 1, z = 1;
    constexpr dim3() = default;
    constexpr dim3(unsigned x_, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct __align__(8) float2 { float x, y; };
struct float3 { float x, y, z; };
struct __align__(16) float4 { float x, y, z, w; };
struct __align__(8) int2 { int x, y; };
struct int3 { int x, y, z; };
struct __align__(16) int4 { int x, y, z, w; };
struct __align__(8) uint2 { unsigned x, y; };
struct __align__(16) uint4 { unsigned x, y, z, w; };
struct __align__(16) double2 { double x, y; };
static_assert(alignof(float4) == 16 && sizeof(float4) == 16, "float4 must be 16 bytes, 16-aligned");
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float3 make_float3(float x, float y, float z) { return {x, y, z}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int3 make_int3(int x, int y, int z) { return {x, y, z}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline double2 make_double2(double x, double y) { return {x, y}; }

static thread_local uint3 threadIdx;
static thread_local uint3 blockIdx;
static thread_local dim3 blockDim;
static thread_local dim3 gridDim;
static constexpr int warpSize = 32;

// ---- the emulator ----------------------------------------------------------------------------------------------
namespace swc_emu {

constexpr unsigned kMaxThreads = 1024;
constexpr size_t kSmemGuard = 256;                 // bytes before and after the dynamic shared memory
constexpr unsigned long long kMaxDynamicSmem = 227ull * 1024;  // an H100's per-block limit
constexpr int kMaxMasks = 64;                       // distinct warp masks per warp and block
constexpr int kPollMs = 100;                        // how often a waiting thread looks at the abort flag
constexpr size_t kStackBytes = 1u << 20;

struct Abort {};  // unwinds a thread out of the kernel once the launch has failed

static_assert(sizeof(std::atomic<unsigned>) == sizeof(unsigned) && std::atomic<unsigned>::is_always_lock_free,
    "futexes wait on std::atomic<unsigned>");

inline void futex_wait(std::atomic<unsigned>* a, unsigned expected, int ms)
{
    timespec ts{ms / 1000, (ms % 1000) * 1000000L};
    syscall(SYS_futex, reinterpret_cast<unsigned*>(a), FUTEX_WAIT_PRIVATE, expected, &ts, nullptr, 0);
}

inline void futex_wake_all(std::atomic<unsigned>* a)
{
    syscall(SYS_futex, reinterpret_cast<unsigned*>(a), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

inline long long now_ms()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

// A barrier whose expected count shrinks as threads leave (arrive_and_drop), reset for each block.
struct BlockBarrier
{
    std::atomic<int> expected{0};
    std::atomic<int> remaining{0};
    std::atomic<unsigned> gen{0};
};

// One group of lanes synchronising with the same mask.
struct Group
{
    unsigned mask, arrived, participants;
    std::atomic<unsigned> gen{0};  // waiters sleep on it (a futex), so a wake-up needs no lock
};

struct Warp
{
    pthread_mutex_t m;  // guards alive, ngroups and the groups' mask, arrived and participants
    unsigned lanes = 0;   // threads in this warp (32 except maybe the last)
    unsigned alive = 0;   // lanes that have not returned from the kernel
    int ngroups = 0;
    Group groups[kMaxMasks];
    unsigned long long val[32];  // each lane's contribution to the current warp operation
};

struct Launch
{
    const char* entry = "";
    dim3 grid, block;
    unsigned nthreads = 0, nwarps = 0;
    unsigned long long nblocks = 0;
    void (*run)(const void*) = nullptr;  // calls the kernel with the unpacked parameters
    const void* call = nullptr;
    unsigned char* smem_base = nullptr;  // guard | dynamic shared memory | guard
    unsigned char* smem = nullptr;
    size_t smem_bytes = 0;
    BlockBarrier bar;
    Warp* warps = nullptr;
    std::atomic<int> sync_ones[3], sync_zeros[3];
    uint3 cur_block{0, 0, 0};
    std::atomic<unsigned> start_gen{0};
    std::atomic<unsigned> finished{0};
    std::atomic<bool> quit{false};
    std::atomic<bool> aborted{false};
    std::atomic<unsigned long long> progress{0};
    pthread_mutex_t err_m = PTHREAD_MUTEX_INITIALIZER;
    char error[1024] = {0};
};

struct ThreadState
{
    Launch* L;
    unsigned tid, lane, warp, sync_k;
};

static thread_local ThreadState* tl = nullptr;

// The section holding every __shared__ static of the module (the anchor makes it exist in every module).
static char shared_anchor __attribute__((section("swc_shared"), used));
extern "C" char __start_swc_shared[] __attribute__((visibility("hidden")));
extern "C" char __stop_swc_shared[] __attribute__((visibility("hidden")));

// Wakes every waiting thread so it sees the abort flag (waits also poll it, so a missed wake only delays).
inline void wake_all(Launch& L)
{
    futex_wake_all(&L.bar.gen);
    for (unsigned w = 0; w < L.nwarps; w++)
    {
        for (int i = 0; i < kMaxMasks; i++) futex_wake_all(&L.warps[w].groups[i].gen);
    }
}

// Records the first error of the launch and makes every thread leave.
inline void record_error(Launch& L, const char* msg)
{
    pthread_mutex_lock(&L.err_m);
    if (L.error[0] == 0) snprintf(L.error, sizeof L.error, "%s", msg);
    pthread_mutex_unlock(&L.err_m);
    L.aborted.store(true);
    wake_all(L);
}

// Fails the launch from a kernel thread, naming the block and thread; never returns.
[[noreturn]] __attribute__((format(printf, 1, 2))) inline void fail(const char* fmt, ...)
{
    char msg[640], full[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "block (%u,%u,%u) thread (%u,%u,%u): %s", blockIdx.x, blockIdx.y, blockIdx.z,
        threadIdx.x, threadIdx.y, threadIdx.z, msg);
    record_error(*tl->L, full);
    throw Abort{};
}

inline void check_abort(Launch& L)
{
    if (L.aborted.load()) throw Abort{};
}

// ---- block barrier ----
inline void bar_complete(Launch& L)
{
    L.bar.remaining.store(L.bar.expected.load());
    L.progress.fetch_add(1);
    L.bar.gen.fetch_add(1);
    futex_wake_all(&L.bar.gen);
}

inline void bar_wait(Launch& L)
{
    check_abort(L);
    unsigned g = L.bar.gen.load();
    if (L.bar.remaining.fetch_sub(1) == 1)
    {
        bar_complete(L);
        return;
    }
    while (L.bar.gen.load() == g)
    {
        check_abort(L);
        futex_wait(&L.bar.gen, g, kPollMs);
    }
    check_abort(L);
}

inline void bar_drop(Launch& L)
{
    L.bar.expected.fetch_sub(1);
    if (L.bar.remaining.fetch_sub(1) == 1) bar_complete(L);
}

// ---- warp groups ----
struct WarpLock
{
    pthread_mutex_t* m;
    explicit WarpLock(Warp& w) : m(&w.m) { pthread_mutex_lock(m); }
    ~WarpLock() { pthread_mutex_unlock(m); }
};

// Completes a group once every live lane of its mask has arrived (called under the warp's lock).
inline bool group_try_complete(Launch& L, Warp& w, Group& g)
{
    unsigned need = g.mask & w.alive;
    if (g.arrived == 0 || (g.arrived & need) != need) return false;
    g.participants = g.arrived;
    g.arrived = 0;
    L.progress.fetch_add(1);
    g.gen.fetch_add(1);
    futex_wake_all(&g.gen);
    return true;
}

// Waits until every live lane of `mask` has arrived; returns the lanes that took part.
inline unsigned warp_sync(unsigned mask, const char* op)
{
    ThreadState& t = *tl;
    Launch& L = *t.L;
    Warp& w = L.warps[t.warp];
    const unsigned bit = 1u << t.lane;
    if (!(mask & bit)) fail("%s: lane %u used mask 0x%08x, which does not include the lane", op, t.lane, mask);
    check_abort(L);
    Group* g = nullptr;
    unsigned my = 0;
    {
        WarpLock lock(w);
        for (int i = 0; i < w.ngroups; i++)
        {
            if (w.groups[i].mask == mask) g = &w.groups[i];
        }
        if (g == nullptr && w.ngroups < kMaxMasks)
        {
            g = &w.groups[w.ngroups++];
            g->mask = mask;
            g->arrived = 0;
            g->participants = 0;
        }
        if (g != nullptr)
        {
            g->arrived |= bit;
            if (group_try_complete(L, w, *g)) return g->participants;
            my = g->gen.load();
        }
    }
    if (g == nullptr) fail("%s: more than %d distinct warp masks in one block", op, kMaxMasks);
    // participants was written before gen moved on, and cannot change again before this lane arrives once more
    while (g->gen.load() == my)
    {
        check_abort(L);
        futex_wait(&g->gen, my, kPollMs);
    }
    return g->participants;
}

inline void warp_drop(Launch& L, unsigned warp, unsigned lane)
{
    Warp& w = L.warps[warp];
    WarpLock lock(w);
    w.alive &= ~(1u << lane);
    for (int i = 0; i < w.ngroups; i++) group_try_complete(L, w, w.groups[i]);
}

template <class T>
inline unsigned long long to_bits(T v)
{
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "warp operations take values of up to 8 bytes");
    unsigned long long b = 0;
    std::memcpy(&b, &v, sizeof(T));
    return b;
}

template <class T>
inline T from_bits(unsigned long long b)
{
    T v;
    std::memcpy(&v, &b, sizeof(T));
    return v;
}

inline void check_width(int width, const char* op)
{
    if (width < 1 || width > 32 || (width & (width - 1)) != 0) fail("%s: width %d is not a power of two <= 32", op, width);
}

// Every lane publishes `var`, then reads lane `src` (its own value when src < 0). A lane that did not take part
// (it returned, or lies outside the mask or the warp) reads as all one bits: NaN for floats.
template <class T>
inline T shuffle(unsigned mask, T var, int src, const char* op)
{
    ThreadState& t = *tl;
    Warp& w = t.L->warps[t.warp];
    w.val[t.lane] = to_bits(var);
    unsigned part = warp_sync(mask, op);
    T r = var;
    if (src >= 0 && src != static_cast<int>(t.lane))
    {
        r = (src < 32 && ((part >> src) & 1u)) ? from_bits<T>(w.val[src]) : from_bits<T>(~0ull);
    }
    warp_sync(mask, op);
    return r;
}

// Every lane publishes `v`; `f(values, participants)` combines them (same result in every lane).
template <class F>
inline auto warp_collect(unsigned mask, unsigned long long v, const char* op, F f)
{
    ThreadState& t = *tl;
    Warp& w = t.L->warps[t.warp];
    w.val[t.lane] = v;
    unsigned part = warp_sync(mask, op);
    auto r = f(w.val, part);
    warp_sync(mask, op);
    return r;
}

// __syncthreads_count/and/or: three rotating accumulators, the next one cleared before the barrier.
inline void syncthreads_tally(int pred, int& ones, int& zeros)
{
    ThreadState& t = *tl;
    Launch& L = *t.L;
    unsigned k = t.sync_k++ % 3;
    if (pred) L.sync_ones[k].fetch_add(1);
    else L.sync_zeros[k].fetch_add(1);
    L.sync_ones[(k + 1) % 3].store(0);
    L.sync_zeros[(k + 1) % 3].store(0);
    bar_wait(L);
    ones = L.sync_ones[k].load();
    zeros = L.sync_zeros[k].load();
}

// ---- launching ----
static pthread_mutex_t g_launch_mutex = PTHREAD_MUTEX_INITIALIZER;
static unsigned g_watchdog_ms = 30000;
static bool g_poisoned = false;

struct Worker
{
    Launch* L;
    unsigned tid;
    pthread_t th;
};

inline void* worker_main(void* arg)
{
    Worker& wk = *static_cast<Worker*>(arg);
    Launch& L = *wk.L;
    ThreadState ts{&L, wk.tid, wk.tid % 32, wk.tid / 32, 0};
    tl = &ts;
    blockDim = L.block;
    gridDim = L.grid;
    threadIdx = uint3{wk.tid % L.block.x, (wk.tid / L.block.x) % L.block.y, wk.tid / (L.block.x * L.block.y)};
    unsigned seen = 0;
    for (;;)
    {
        unsigned g;
        while ((g = L.start_gen.load()) == seen) futex_wait(&L.start_gen, seen, kPollMs);
        seen = g;
        if (L.quit.load()) break;
        blockIdx = L.cur_block;
        ts.sync_k = 0;
        if (!L.aborted.load())
        {
            bool left = false;
            try
            {
                L.run(L.call);
                left = true;
            }
            catch (Abort&)
            {
            }
            catch (std::exception& e)
            {
                char m[600];
                snprintf(m, sizeof m, "block (%u,%u,%u) thread (%u,%u,%u): C++ exception: %s", blockIdx.x, blockIdx.y,
                    blockIdx.z, threadIdx.x, threadIdx.y, threadIdx.z, e.what());
                record_error(L, m);
            }
            catch (...)
            {
                record_error(L, "a kernel thread threw an unknown C++ exception");
            }
            // A thread that has returned (early or not) no longer takes part in barriers and warp operations.
            if (left && !L.aborted.load())
            {
                bar_drop(L);
                warp_drop(L, ts.warp, ts.lane);
            }
        }
        L.progress.fetch_add(1);
        if (L.finished.fetch_add(1) + 1 == L.nthreads) futex_wake_all(&L.finished);
    }
    tl = nullptr;
    return nullptr;
}

inline void describe_deadlock(Launch& L, char* out, size_t n)
{
    int len = snprintf(out, n,
        "deadlock: no thread of block (%u,%u,%u) made progress for %u ms (%d of %d live threads wait at __syncthreads",
        L.cur_block.x, L.cur_block.y, L.cur_block.z, g_watchdog_ms,
        L.bar.expected.load() - L.bar.remaining.load(), L.bar.expected.load());
    for (unsigned w = 0; w < L.nwarps && len > 0 && static_cast<size_t>(len) < n; w++)
    {
        Warp& wp = L.warps[w];
        WarpLock lock(wp);
        for (int i = 0; i < wp.ngroups && static_cast<size_t>(len) < n; i++)
        {
            if (wp.groups[i].arrived != 0)
            {
                len += snprintf(out + len, n - len, "; warp %u: lanes 0x%08x wait with mask 0x%08x, live lanes 0x%08x",
                    w, wp.groups[i].arrived, wp.groups[i].mask, wp.alive);
            }
        }
    }
    if (len > 0 && static_cast<size_t>(len) < n) snprintf(out + len, n - len, ")");
}

inline void reset_block(Launch& L, unsigned long long b)
{
    L.cur_block = uint3{static_cast<unsigned>(b % L.grid.x), static_cast<unsigned>((b / L.grid.x) % L.grid.y),
        static_cast<unsigned>(b / (static_cast<unsigned long long>(L.grid.x) * L.grid.y))};
    // never-written shared memory, dynamic or static, reads as NaN
    std::memset(L.smem_base, 0xFF, L.smem_bytes + 2 * kSmemGuard);
    std::memset(__start_swc_shared, 0xFF, static_cast<size_t>(__stop_swc_shared - __start_swc_shared));
    L.bar.expected.store(static_cast<int>(L.nthreads));
    L.bar.remaining.store(static_cast<int>(L.nthreads));
    for (unsigned w = 0; w < L.nwarps; w++)
    {
        Warp& wp = L.warps[w];
        wp.alive = wp.lanes == 32 ? ~0u : (1u << wp.lanes) - 1;
        wp.ngroups = 0;
        std::memset(wp.val, 0xFF, sizeof wp.val);
    }
    for (int k = 0; k < 3; k++)
    {
        L.sync_ones[k].store(0);
        L.sync_zeros[k].store(0);
    }
    L.finished.store(0);
}

// Runs one block; false when the launch failed or deadlocked. Sets `stuck` when threads did not stop after an abort.
inline bool run_block(Launch& L, bool& stuck)
{
    L.start_gen.fetch_add(1);
    futex_wake_all(&L.start_gen);
    unsigned long long last = L.progress.load();
    long long since = now_ms();
    for (;;)
    {
        unsigned f = L.finished.load();
        if (f == L.nthreads) break;
        futex_wait(&L.finished, f, 20);
        unsigned long long p = L.progress.load();
        if (p != last)
        {
            last = p;
            since = now_ms();
        }
        else if (!L.aborted.load() && now_ms() - since > g_watchdog_ms)
        {
            char m[1000];
            describe_deadlock(L, m, sizeof m);
            record_error(L, m);
            since = now_ms();
        }
        else if (L.aborted.load() && now_ms() - since > 5000)
        {
            stuck = true;  // a thread spins without ever reaching a barrier
            return false;
        }
    }
    for (size_t i = 0; i < kSmemGuard; i++)
    {
        size_t at = L.smem_bytes + kSmemGuard + i;
        if (L.smem_base[i] != 0xFF || L.smem_base[at] != 0xFF)
        {
            char m[300];
            snprintf(m, sizeof m, "block (%u,%u,%u) wrote outside its %zu bytes of dynamic shared memory (%s)",
                L.cur_block.x, L.cur_block.y, L.cur_block.z, L.smem_bytes,
                L.smem_base[i] != 0xFF ? "before the start" : "past the end");
            record_error(L, m);
            break;
        }
    }
    return !L.aborted.load();
}

inline int finish(char* err, int err_len, const char* entry, const char* msg)
{
    if (err != nullptr && err_len > 0) snprintf(err, static_cast<size_t>(err_len), "launch of %s: %s", entry, msg);
    return 1;
}

inline int run_launch(const char* entry, const unsigned* g3, const unsigned* b3, unsigned long long smem, int arity,
    void** params, void (*run)(const void*), const void* call, char* err, int err_len)
{
    char m[400];
    if (g3 == nullptr || b3 == nullptr) return finish(err, err_len, entry, "grid and block must not be null");
    if (arity > 0 && params == nullptr) return finish(err, err_len, entry, "params must not be null");
    dim3 grid(g3[0], g3[1], g3[2]), block(b3[0], b3[1], b3[2]);
    unsigned long long nt = static_cast<unsigned long long>(block.x) * block.y * block.z;
    if (block.x == 0 || block.y == 0 || block.z == 0 || block.x > 1024 || block.y > 1024 || block.z > 64 ||
        nt > kMaxThreads)
    {
        snprintf(m, sizeof m, "invalid block (%u,%u,%u): each dimension >= 1, x,y <= 1024, z <= 64, at most %u threads",
            block.x, block.y, block.z, kMaxThreads);
        return finish(err, err_len, entry, m);
    }
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535)
    {
        snprintf(m, sizeof m, "invalid grid (%u,%u,%u): x in 1..2^31-1, y and z in 1..65535", grid.x, grid.y, grid.z);
        return finish(err, err_len, entry, m);
    }
    if (smem > kMaxDynamicSmem)
    {
        snprintf(m, sizeof m, "%llu bytes of dynamic shared memory exceed the %llu a block can have", smem,
            kMaxDynamicSmem);
        return finish(err, err_len, entry, m);
    }
    pthread_mutex_lock(&g_launch_mutex);
    if (g_poisoned)
    {
        pthread_mutex_unlock(&g_launch_mutex);
        return finish(err, err_len, entry, "an earlier launch of this module left threads running; reload it");
    }
    Launch* Lp = new Launch();
    Launch& L = *Lp;
    L.entry = entry;
    L.grid = grid;
    L.block = block;
    L.nthreads = static_cast<unsigned>(nt);
    L.nwarps = (L.nthreads + 31) / 32;
    L.nblocks = static_cast<unsigned long long>(grid.x) * grid.y * grid.z;
    L.run = run;
    L.call = call;
    L.smem_bytes = static_cast<size_t>(smem);
    L.smem_base = static_cast<unsigned char*>(::operator new(L.smem_bytes + 2 * kSmemGuard, std::align_val_t(64)));
    L.smem = L.smem_base + kSmemGuard;
    L.warps = new Warp[L.nwarps];
    for (unsigned w = 0; w < L.nwarps; w++)
    {
        pthread_mutex_init(&L.warps[w].m, nullptr);
        L.warps[w].lanes = L.nthreads - 32 * w < 32 ? L.nthreads - 32 * w : 32;
    }
    Worker* workers = new Worker[L.nthreads];
    pthread_attr_t ta;
    pthread_attr_init(&ta);
    pthread_attr_setstacksize(&ta, kStackBytes);
    unsigned started = 0;
    for (; started < L.nthreads; started++)
    {
        workers[started].L = &L;
        workers[started].tid = started;
        if (pthread_create(&workers[started].th, &ta, worker_main, &workers[started]) != 0) break;
    }
    pthread_attr_destroy(&ta);
    bool stuck = false;
    if (started < L.nthreads)
    {
        snprintf(m, sizeof m, "could not start thread %u of %u", started, L.nthreads);
        record_error(L, m);
    }
    else
    {
        for (unsigned long long b = 0; b < L.nblocks; b++)
        {
            reset_block(L, b);
            if (!run_block(L, stuck)) break;
        }
    }
    L.quit.store(true);
    L.start_gen.fetch_add(1);
    futex_wake_all(&L.start_gen);
    int rc = 0;
    if (stuck)
    {
        // Threads that never reach a barrier cannot be stopped: leave them (and the launch state they use) alone.
        for (unsigned i = 0; i < started; i++) pthread_detach(workers[i].th);
        g_poisoned = true;
        rc = finish(err, err_len, entry, L.error[0] ? L.error : "threads did not stop");
    }
    else
    {
        for (unsigned i = 0; i < started; i++) pthread_join(workers[i].th, nullptr);
        if (L.error[0] != 0) rc = finish(err, err_len, entry, L.error);
        for (unsigned w = 0; w < L.nwarps; w++)
        {
            pthread_mutex_destroy(&L.warps[w].m);
        }
        delete[] workers;
        delete[] L.warps;
        ::operator delete(L.smem_base, std::align_val_t(64));
        delete Lp;
    }
    pthread_mutex_unlock(&g_launch_mutex);
    return rc;
}

// Unpacks cuLaunchKernel-style parameters: params[i] points to the value of the i-th argument.
template <class... A>
struct Call
{
    void (*fn)(A...);
    void** params;

    template <size_t... I>
    void go(std::index_sequence<I...>) const { fn(*static_cast<A*>(params[I])...); }

    static void run(const void* self) { static_cast<const Call*>(self)->go(std::index_sequence_for<A...>{}); }
};

template <class... A>
inline int launch_entry(const char* entry, void (*fn)(A...), const unsigned* grid3, const unsigned* block3,
    unsigned long long shared_bytes, void** params, char* err, int err_len)
{
    Call<A...> call{fn, params};
    try
    {
        return run_launch(entry, grid3, block3, shared_bytes, static_cast<int>(sizeof...(A)), params,
            &Call<A...>::run, &call, err, err_len);
    }
    catch (std::exception& e)
    {
        return finish(err, err_len, entry, e.what());
    }
    catch (...)
    {
        return finish(err, err_len, entry, "unknown C++ exception");
    }
}

template <class... A>
inline int arity(void (*)(A...)) { return static_cast<int>(sizeof...(A)); }

inline void set_watchdog_ms(unsigned ms) { g_watchdog_ms = ms == 0 ? 1 : ms; }

}  // namespace swc_emu

// Dynamic shared memory: one buffer per launch of its dynamic size, refilled with 0xFF (NaN) at each block start.
#define SWC_DYNAMIC_SMEM(T, name) T* const name = reinterpret_cast<T*>(::swc_emu::tl->L->smem)

// ---- synchronisation ---------------------------------------------------------------------------------------------
inline void __syncthreads() { swc_emu::bar_wait(*swc_emu::tl->L); }
inline int __syncthreads_count(int pred)
{
    int ones, zeros;
    swc_emu::syncthreads_tally(pred, ones, zeros);
    return ones;
}
inline int __syncthreads_and(int pred)
{
    int ones, zeros;
    swc_emu::syncthreads_tally(pred, ones, zeros);
    return zeros == 0;
}
inline int __syncthreads_or(int pred)
{
    int ones, zeros;
    swc_emu::syncthreads_tally(pred, ones, zeros);
    return ones != 0;
}
inline void __syncwarp(unsigned mask = 0xffffffffu) { swc_emu::warp_sync(mask, "__syncwarp"); }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
[[noreturn]] inline void __trap() { swc_emu::fail("__trap()"); }

// The lanes of the warp that have not returned. Emulated as a full-warp convergence point (every live lane of the
// warp must call it), so that after `if (lane >= n) return;` it gives the same answer in every lane, as on a GPU.
inline unsigned __activemask() { return swc_emu::warp_sync(0xffffffffu, "__activemask"); }

// ---- warp operations ----
template <class T>
inline T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize)
{
    swc_emu::check_width(width, "__shfl_sync");
    int lane = static_cast<int>(swc_emu::tl->lane);
    int src = (lane / width) * width + ((srcLane % width) + width) % width;
    return swc_emu::shuffle(mask, var, src, "__shfl_sync");
}

template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize)
{
    swc_emu::check_width(width, "__shfl_up_sync");
    int lane = static_cast<int>(swc_emu::tl->lane);
    int src = static_cast<unsigned>(lane % width) >= delta ? lane - static_cast<int>(delta) : -1;
    return swc_emu::shuffle(mask, var, src, "__shfl_up_sync");
}

template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize)
{
    swc_emu::check_width(width, "__shfl_down_sync");
    int lane = static_cast<int>(swc_emu::tl->lane);
    int src = static_cast<unsigned>(lane % width) + delta < static_cast<unsigned>(width) ? lane + static_cast<int>(delta) : -1;
    return swc_emu::shuffle(mask, var, src, "__shfl_down_sync");
}

template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize)
{
    swc_emu::check_width(width, "__shfl_xor_sync");
    int lane = static_cast<int>(swc_emu::tl->lane);
    int src = lane ^ laneMask;
    if (src < 0 || src >= (lane / width + 1) * width) src = -1;  // later groups (and outside the warp) give var back
    return swc_emu::shuffle(mask, var, src, "__shfl_xor_sync");
}

inline unsigned __ballot_sync(unsigned mask, int pred)
{
    return swc_emu::warp_collect(mask, pred != 0, "__ballot_sync", [](const unsigned long long* v, unsigned part) {
        unsigned r = 0;
        for (int j = 0; j < 32; j++)
        {
            if (((part >> j) & 1u) && v[j] != 0) r |= 1u << j;
        }
        return r;
    });
}

inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }

inline int __all_sync(unsigned mask, int pred)
{
    return swc_emu::warp_collect(mask, pred != 0, "__all_sync", [](const unsigned long long* v, unsigned part) {
        for (int j = 0; j < 32; j++)
        {
            if (((part >> j) & 1u) && v[j] == 0) return 0;
        }
        return 1;
    });
}

template <class T, class Op>
inline T swc_warp_reduce(unsigned mask, T value, const char* name, Op op)
{
    return swc_emu::warp_collect(mask, swc_emu::to_bits(value), name, [op](const unsigned long long* v, unsigned part) {
        bool first = true;
        T r{};
        for (int j = 0; j < 32; j++)
        {
            if (!((part >> j) & 1u)) continue;
            T x = swc_emu::from_bits<T>(v[j]);
            r = first ? x : op(r, x);
            first = false;
        }
        return r;
    });
}

inline unsigned __reduce_add_sync(unsigned mask, unsigned v)
{
    return swc_warp_reduce(mask, v, "__reduce_add_sync", [](unsigned a, unsigned b) { return a + b; });
}
inline int __reduce_add_sync(unsigned mask, int v)
{
    return swc_warp_reduce(mask, v, "__reduce_add_sync", [](int a, int b) { return static_cast<int>(static_cast<unsigned>(a) + static_cast<unsigned>(b)); });
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned v)
{
    return swc_warp_reduce(mask, v, "__reduce_min_sync", [](unsigned a, unsigned b) { return a < b ? a : b; });
}
inline int __reduce_min_sync(unsigned mask, int v)
{
    return swc_warp_reduce(mask, v, "__reduce_min_sync", [](int a, int b) { return a < b ? a : b; });
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned v)
{
    return swc_warp_reduce(mask, v, "__reduce_max_sync", [](unsigned a, unsigned b) { return a > b ? a : b; });
}
inline int __reduce_max_sync(unsigned mask, int v)
{
    return swc_warp_reduce(mask, v, "__reduce_max_sync", [](int a, int b) { return a > b ? a : b; });
}

// ---- atomics (return the old value, as CUDA's do) ----
inline int atomicAdd(int* a, int v) { return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicAdd(unsigned* a, unsigned v) { return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST); }
inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) { return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST); }
template <class F, class B>
inline F swc_atomic_float_add(F* a, F v)
{
    B* p = reinterpret_cast<B*>(a);
    B old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
    for (;;)
    {
        F f;
        std::memcpy(&f, &old, sizeof f);
        F n = f + v;
        B nb;
        std::memcpy(&nb, &n, sizeof nb);
        if (__atomic_compare_exchange_n(p, &old, nb, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return f;
    }
}
inline float atomicAdd(float* a, float v) { return swc_atomic_float_add<float, unsigned>(a, v); }
inline double atomicAdd(double* a, double v) { return swc_atomic_float_add<double, unsigned long long>(a, v); }
inline int atomicSub(int* a, int v) { return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicSub(unsigned* a, unsigned v) { return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST); }
template <class T, class Pick>
inline T swc_atomic_pick(T* a, T v, Pick pick)
{
    T old = __atomic_load_n(a, __ATOMIC_SEQ_CST);
    while (!__atomic_compare_exchange_n(a, &old, pick(old, v), false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
    return old;
}
inline int atomicMax(int* a, int v) { return swc_atomic_pick(a, v, [](int x, int y) { return x > y ? x : y; }); }
inline unsigned atomicMax(unsigned* a, unsigned v) { return swc_atomic_pick(a, v, [](unsigned x, unsigned y) { return x > y ? x : y; }); }
inline int atomicMin(int* a, int v) { return swc_atomic_pick(a, v, [](int x, int y) { return x < y ? x : y; }); }
inline unsigned atomicMin(unsigned* a, unsigned v) { return swc_atomic_pick(a, v, [](unsigned x, unsigned y) { return x < y ? x : y; }); }
inline int atomicExch(int* a, int v) { return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicExch(unsigned* a, unsigned v) { return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST); }
inline unsigned long long atomicExch(unsigned long long* a, unsigned long long v) { return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST); }
inline float atomicExch(float* a, float v)
{
    unsigned b;
    std::memcpy(&b, &v, 4);
    unsigned o = __atomic_exchange_n(reinterpret_cast<unsigned*>(a), b, __ATOMIC_SEQ_CST);
    float r;
    std::memcpy(&r, &o, 4);
    return r;
}
inline int atomicCAS(int* a, int compare, int v)
{
    __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return compare;
}
inline unsigned atomicCAS(unsigned* a, unsigned compare, unsigned v)
{
    __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return compare;
}
inline unsigned long long atomicCAS(unsigned long long* a, unsigned long long compare, unsigned long long v)
{
    __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return compare;
}
inline int atomicAnd(int* a, int v) { return __atomic_fetch_and(a, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicAnd(unsigned* a, unsigned v) { return __atomic_fetch_and(a, v, __ATOMIC_SEQ_CST); }
inline int atomicOr(int* a, int v) { return __atomic_fetch_or(a, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicOr(unsigned* a, unsigned v) { return __atomic_fetch_or(a, v, __ATOMIC_SEQ_CST); }
inline int atomicXor(int* a, int v) { return __atomic_fetch_xor(a, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicXor(unsigned* a, unsigned v) { return __atomic_fetch_xor(a, v, __ATOMIC_SEQ_CST); }

// ---- loads and math ----
template <class T>
inline T __ldg(const T* p) { return *p; }

inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return powf(10.0f, x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }
inline int __float2int_rn(float x) { return static_cast<int>(nearbyintf(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline int __float2int_rd(float x) { return static_cast<int>(floorf(x)); }
inline int __float2int_ru(float x) { return static_cast<int>(ceilf(x)); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __mul24(int a, int b) { return a * b; }
inline unsigned __umul24(unsigned a, unsigned b) { return a * b; }

// CUDA's min and max overloads (integer pairs of mixed signedness compare as unsigned, as in CUDA).
#define SWC_MINMAX(T)                                   \
    inline T min(T a, T b) { return a < b ? a : b; }    \
    inline T max(T a, T b) { return a > b ? a : b; }
SWC_MINMAX(int)
SWC_MINMAX(unsigned)
SWC_MINMAX(long)
SWC_MINMAX(unsigned long)
SWC_MINMAX(long long)
SWC_MINMAX(unsigned long long)
#undef SWC_MINMAX
inline unsigned min(int a, unsigned b) { return min(static_cast<unsigned>(a), b); }
inline unsigned min(unsigned a, int b) { return min(a, static_cast<unsigned>(b)); }
inline unsigned max(int a, unsigned b) { return max(static_cast<unsigned>(a), b); }
inline unsigned max(unsigned a, int b) { return max(a, static_cast<unsigned>(b)); }
inline unsigned long long min(long long a, unsigned long long b) { return min(static_cast<unsigned long long>(a), b); }
inline unsigned long long min(unsigned long long a, long long b) { return min(a, static_cast<unsigned long long>(b)); }
inline unsigned long long max(long long a, unsigned long long b) { return max(static_cast<unsigned long long>(a), b); }
inline unsigned long long max(unsigned long long a, long long b) { return max(a, static_cast<unsigned long long>(b)); }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline double min(float a, double b) { return fmin(a, b); }
inline double min(double a, float b) { return fmin(a, b); }
inline double max(float a, double b) { return fmax(a, b); }
inline double max(double a, float b) { return fmax(a, b); }
