// The mock CUDA runtime and cuBLAS of cuda_runtime.h and cublas_v2.h here. The test's stubs file defines
// swc_mock_entries (every kernel entry's address and name); SWC_MOCK_KERNELS names a file of "entry<TAB>library"
// lines, the emulator's compiled module of each entry, which exports swc_emu_launch_<entry>. Every call is counted;
// SWC_MOCK_TRACE names a file that gets one line per launch or GEMM.
#include "cublas_v2.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

struct swc_mock_entry { const void* func; const char* name; };
extern "C" const swc_mock_entry swc_mock_entries[];
extern "C" const int swc_mock_entry_count;

namespace {

typedef int (*launch_fn)(const unsigned*, const unsigned*, unsigned long long, void**, char*, int);
std::map<const void*, launch_fn> g_launchers;
bool g_loaded = false;
FILE* g_trace = nullptr;
int g_fail_launch = -1;  // SWC_MOCK_FAIL_LAUNCH=N: the Nth launch (from 0) fails, as a GPU fault would
int g_launches = 0;

bool load()
{
    if (g_loaded) return true;
    const char* list = std::getenv("SWC_MOCK_KERNELS");
    if (!list) { std::fprintf(stderr, "mock cuda: SWC_MOCK_KERNELS is not set\n"); return false; }
    FILE* f = std::fopen(list, "r");
    if (!f) { std::fprintf(stderr, "mock cuda: cannot open %s\n", list); return false; }
    std::map<std::string, std::string> libs;
    char line[4096];
    while (std::fgets(line, sizeof line, f)) {
        char* tab = std::strchr(line, '\t');
        if (!tab) continue;
        *tab = '\0';
        std::string lib = tab + 1;
        while (!lib.empty() && (lib.back() == '\n' || lib.back() == '\r')) lib.pop_back();
        libs[line] = lib;
    }
    std::fclose(f);
    for (int i = 0; i < swc_mock_entry_count; i++) {
        auto it = libs.find(swc_mock_entries[i].name);
        if (it == libs.end()) { std::fprintf(stderr, "mock cuda: no library for entry %s\n", swc_mock_entries[i].name); return false; }
        void* h = dlopen(it->second.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!h) { std::fprintf(stderr, "mock cuda: dlopen %s: %s\n", it->second.c_str(), dlerror()); return false; }
        std::string sym = std::string("swc_emu_launch_") + swc_mock_entries[i].name;
        void* fn = dlsym(h, sym.c_str());
        if (!fn) { std::fprintf(stderr, "mock cuda: %s has no %s\n", it->second.c_str(), sym.c_str()); return false; }
        g_launchers[swc_mock_entries[i].func] = reinterpret_cast<launch_fn>(fn);
    }
    if (const char* t = std::getenv("SWC_MOCK_TRACE")) g_trace = std::fopen(t, "w");
    if (const char* n = std::getenv("SWC_MOCK_FAIL_LAUNCH")) g_fail_launch = std::atoi(n);
    g_loaded = true;
    return true;
}

const char* entry_name(const void* func)
{
    for (int i = 0; i < swc_mock_entry_count; i++) if (swc_mock_entries[i].func == func) return swc_mock_entries[i].name;
    return "?";
}

}  // namespace

const char* cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    }
    return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "mock CUDA error"; }

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorNoDevice; }

cudaError_t cudaMallocBytes(void** p, size_t bytes)
{
    *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t cudaFree(void* p) { std::free(p); return cudaSuccess; }

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) { std::memmove(dst, src, bytes); return cudaSuccess; }

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind k, cudaStream_t) { return cudaMemcpy(dst, src, bytes, k); }

cudaError_t cudaMemset(void* p, int value, size_t bytes) { std::memset(p, value, bytes); return cudaSuccess; }

cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) { return cudaMemset(p, value, bytes); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) { *s = reinterpret_cast<cudaStream_t>(new int(0)); return cudaSuccess; }

cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

cudaError_t cudaStreamDestroy(cudaStream_t s) { delete reinterpret_cast<int*>(s); return cudaSuccess; }

cudaError_t cudaFuncSetAttribute(const void*, cudaFuncAttribute, int) { return cudaSuccess; }

cudaError_t cudaLaunchKernel(const void* func, dim3 grid, dim3 block, void** args, size_t shared, cudaStream_t)
{
    if (!load()) return cudaErrorInvalidDeviceFunction;
    auto it = g_launchers.find(func);
    if (it == g_launchers.end()) return cudaErrorInvalidDeviceFunction;
    if (g_launches++ == g_fail_launch) return cudaErrorLaunchFailure;
    if (g_trace) std::fprintf(g_trace, "launch %s [%u,%u,%u] [%u,%u,%u] %zu\n", entry_name(func), grid.x, grid.y, grid.z, block.x, block.y, block.z, shared);
    const unsigned g3[3] = { grid.x, grid.y, grid.z }, b3[3] = { block.x, block.y, block.z };
    char err[1024] = "";
    if (it->second(g3, b3, shared, args, err, sizeof err) != 0) {
        std::fprintf(stderr, "mock cuda: %s: %s\n", entry_name(func), err);
        return cudaErrorLaunchFailure;
    }
    return cudaSuccess;
}

cublasStatus_t cublasCreate(cublasHandle_t* h) { *h = reinterpret_cast<cublasHandle_t>(new int(0)); return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasDestroy(cublasHandle_t h) { delete reinterpret_cast<int*>(h); return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }

// cuBLAS's column-major strided-batched SGEMM, accumulated in double; C is not read when beta is 0
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
    const float* alpha, const float* a, int lda, long long sa, const float* b, int ldb, long long sb,
    const float* beta, float* c, int ldc, long long sc, int batch)
{
    if (m < 0 || n < 0 || k < 0 || batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (g_trace) std::fprintf(g_trace, "gemm %d %d m %d n %d k %d batch %d\n", (int)ta, (int)tb, m, n, k, batch);
    for (int i = 0; i < batch; i++) {
        const float* A = a + i * sa;
        const float* B = b + i * sb;
        float* C = c + i * sc;
        for (int col = 0; col < n; col++) {
            for (int r = 0; r < m; r++) {
                double acc = 0;
                for (int q = 0; q < k; q++) {
                    double x = ta == CUBLAS_OP_T ? A[q + (long long)r * lda] : A[r + (long long)q * lda];
                    double y = tb == CUBLAS_OP_T ? B[col + (long long)q * ldb] : B[q + (long long)col * ldb];
                    acc += x * y;
                }
                long long at = r + (long long)col * ldc;
                double v = (double)*alpha * acc;
                if (*beta != 0) v += (double)*beta * C[at];
                C[at] = (float)v;
            }
        }
    }
    return CUBLAS_STATUS_SUCCESS;
}

// 16-bit storage for the mock GemmEx: exact widening, rounding to nearest even (bf16 from the float32 bits; fp16
// through the compiler's _Float16, whose conversion rounds to nearest even)
static double widen16(const void* p, long long i, cudaDataType t)
{
    const unsigned short h = static_cast<const unsigned short*>(p)[i];
    if (t == CUDA_R_16BF) {
        unsigned u = (unsigned)h << 16;
        float f;
        std::memcpy(&f, &u, 4);
        return f;
    }
    _Float16 v;
    std::memcpy(&v, &h, 2);
    return (double)(float)v;
}

static void store16(void* p, long long i, double v, cudaDataType t)
{
    unsigned short h;
    float f = (float)v;
    if (t == CUDA_R_16BF) {
        unsigned u;
        std::memcpy(&u, &f, 4);
        h = (f != f) ? 0x7FFF : (unsigned short)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    } else {
        _Float16 x = (_Float16)f;
        std::memcpy(&h, &x, 2);
    }
    static_cast<unsigned short*>(p)[i] = h;
}

// cuBLAS's column-major strided-batched GemmEx for 16-bit A, B and C with float32 compute, accumulated in double;
// C is not read when beta is 0
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
    const void* alpha, const void* a, cudaDataType at, int lda, long long sa, const void* b, cudaDataType bt, int ldb,
    long long sb, const void* beta, void* c, cudaDataType ct, int ldc, long long sc, int batch,
    cublasComputeType_t compute, cublasGemmAlgo_t)
{
    if (m < 0 || n < 0 || k < 0 || batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (at != bt || at != ct || (at != CUDA_R_16BF && at != CUDA_R_16F) || compute != CUBLAS_COMPUTE_32F) {
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (g_trace) std::fprintf(g_trace, "gemm %d %d m %d n %d k %d batch %d\n", (int)ta, (int)tb, m, n, k, batch);
    const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
    for (int i = 0; i < batch; i++) {
        for (int col = 0; col < n; col++) {
            for (int r = 0; r < m; r++) {
                double acc = 0;
                for (int q = 0; q < k; q++) {
                    double x = widen16(a, i * sa + (ta == CUBLAS_OP_T ? q + (long long)r * lda : r + (long long)q * lda), at);
                    double y = widen16(b, i * sb + (tb == CUBLAS_OP_T ? col + (long long)q * ldb : q + (long long)col * ldb), bt);
                    acc += x * y;
                }
                long long at_c = i * sc + r + (long long)col * ldc;
                double v = (double)al * acc;
                if (be != 0) v += (double)be * widen16(c, at_c, ct);
                store16(c, at_c, v, ct);
            }
        }
    }
    return CUBLAS_STATUS_SUCCESS;
}
