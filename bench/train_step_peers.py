#!/usr/bin/python3
"""Peers of swc's training step: one sw-tiny training step in PyTorch, three ways, measured in one process.

A step is: forward, cross-entropy loss on random labels, backward, AdamW step (fp32; TF32 off for cuBLAS and cuDNN,
cudnn.benchmark on; train mode, so BatchNorm uses batch statistics). The network is tools/fixtures/sw_torch.py's
ShiftWise_v2 (the original network written from docs/SPEC-shiftwise.md; its SW layer's shift-add is a gather of
index ops, no custom kernel). The peers:

  eager    PyTorch eager on that network.
  compile  torch.compile(model) (default mode, static shapes; loss, backward and AdamW run around the compiled
           module). When torch.compile is missing or fails (at wrapping or at its first call), the reason is reported
           and the other peers go on.
  atomic   "the original algorithm": the same network with its shift-add (SPEC 1.5) replaced by a CUDA extension
           built at run time with torch.utils.cpp_extension.load_inline: the forward is the original's atomicAdd
           scatter (one thread per element of the small-conv output X, adding it into its shifted output positions
           for every replica), the backward the gather (one thread per element of X, no atomics), in a
           torch.autograd.Function. Before it is timed it is checked against sw_torch.shift_add on small inputs
           (relative L2 of the three outputs and of dX below 1e-5) and the whole swapped network against the eager
           one on two images (logits within 1e-4, the SW small-conv weight gradients within 1e-3, relative L2).
           CUDA only: skipped with the reason on other devices.

Protocol: per peer, build the model (weights from --seed), reset the device's peak-memory counter, run --warmup steps
(compilation and cudnn autotuning happen here) and read torch.cuda.max_memory_allocated. Then timing in interleaved
rounds (PERFORMANCE.md): phase 1 over eager and atomic, phase 2 (after torch.compile has compiled) over all peers
again, one step per peer per round, start position rotating, --iters rounds per phase. Every step is timed on its own
(CUDA events around it on a GPU, perf_counter on the CPU); a peer's ms per step is the median of all its timed steps.
The JSON (and the markdown table beside it) is rewritten after every phase, so a run stopped by a timeout keeps what
it had measured; --time-budget makes the script itself skip what no longer fits.

peak_bytes per peer = max_memory_allocated during its build and warm-up minus what was allocated before it was built
(the other peers' models) plus the input batch and labels: the memory that one training step of that peer needs.
None on the CPU.

swc's side (--swc-json FILE): a JSON object written by swc's training benchmark, at least
    {"ms_per_step": float, "peak_bytes": int}
(optional: "batch", "image_size", "device", compared with this run's and warned about when they differ). With it the
script prints, per peer, "swc is N.NN× faster than PEER (target T×): PASS|FAIL" against the issue-21 targets
(PyTorch eager 3×, torch.compile 1.5×, the atomicAdd op 2×), speed-up = peer ms per step / swc ms per step, and the
memory ratio peer peak / swc peak.

    train_step_peers.py --out bench/results/train-peers.json                       # cuda, sw-tiny, batch 64, 224²
    train_step_peers.py --device cpu --batch 2 --image-size 64 --depths 1,1,1,1 --warmup 1 --iters 2 --out /tmp/t.json
    train_step_peers.py --self-test       # CPU: the CUDA kernels' index arithmetic emulated with g++, a tiny run
    train_step_peers.py --self-test --host-check     # and the extension's host code through g++ -fsyntax-only

Output JSON: {"device", "torch", "config": {...}, "precision": {...}, "timing": {...},
  "peers": {"eager"|"compile"|"atomic": {"status": "ok"|"skipped"|"failed"|"not timed", "reason", "ms_per_step",
            "images_per_s", "peak_bytes", "steps_timed", "ms_min", "ms_max", "warmup_s", "build_s", ...}},
  "checks": {...}, "swc": {...}|null, "ratios": {peer: {"speedup", "target", "pass"}}|null, "notes": [...]}
Exit status: 0 when the eager peer was measured and every check that ran passed; 1 otherwise (a skipped or failed
compile or atomic peer is reported, not an error).
"""
import argparse
import ctypes
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools", "fixtures"))
sys.path.insert(0, os.path.join(HERE, "..", "tools", "gpu"))
import sw_torch  # noqa: E402
from bench_torch_peer import select_device  # noqa: E402  (the GPU benchmarks' PyTorch peer: --device handling)

PEERS = ("eager", "compile", "atomic")
LABELS = {"eager": "PyTorch eager", "compile": "torch.compile", "atomic": "the atomicAdd op"}
TARGETS = {"eager": 3.0, "compile": 1.5, "atomic": 2.0}  # issue 21: swc must be this many times faster
DEFAULTS = dict(in_chans=3, num_classes=1000, kernel_size=(51, 49, 47, 13, 3), ghost_ratio=0.23, N_path=2, N_rep=4,
                bn=True, layer_scale_init_value=1e-6)

# ----------------------------------------------------------------------------------------------------------------
# The original algorithm (SPEC 1.5) as CUDA kernels. Written so that the kernels alone also compile with g++ and a
# small shim (--self-test runs them on the CPU, thread by thread).
#
# X: (N, T, Hp, Wp) contiguous, T = R*n, Hp = H+2e, Wp = W+2e. sh, sv: (T, G) int32 horizontal/vertical shifts
# (pad_hv[:, :G], pad_hv[:, G:]); ident: (R, G) int32, the sub-channel the identity path of replica g takes.
# Y: (3N, R, H, W) = [Y_h; Y_v; Y_i] along dim 0, zeroed by the caller.

KERNELS = r"""
// Where input element idx of the padded (N, T, H+2e, W+2e) tensor sits: row i, column j, sub-channel t, sample b,
// rep channel o; and the offset of (b, o)'s first output plane. Shared by the scatter and its adjoint gather.
struct SwPos { int i, j, t, o; long long base; bool row_ok, col_ok; };
__device__ __forceinline__ SwPos sw_pos(long long idx, int T, int R, int n, int H, int W, int e) {
  const int Hp = H + 2 * e, Wp = W + 2 * e;
  SwPos p;
  p.j = (int)(idx % Wp);
  long long rest = idx / Wp;
  p.i = (int)(rest % Hp);
  rest /= Hp;
  p.t = (int)(rest % T);
  const int b = (int)(rest / T);
  p.o = p.t / n;
  p.base = ((long long)b * R + p.o) * H * W;
  p.row_ok = p.i - e >= 0 && p.i - e < H;  // the unshifted axis of the horizontal and identity paths
  p.col_ok = p.j - e >= 0 && p.j - e < W;  // the unshifted axis of the vertical and identity paths
  return p;
}

__global__ void sw_scatter_kernel(const float* __restrict__ X, const int* __restrict__ sh,
                                  const int* __restrict__ sv, const int* __restrict__ ident,
                                  float* __restrict__ Y, long long total, int N, int T, int R, int n, int G,
                                  int H, int W, int e) {
  const long long plane = (long long)N * R * H * W;
  const long long step = (long long)blockDim.x * gridDim.x;
  for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += step) {
    const SwPos p = sw_pos(idx, T, R, n, H, W, e);
    const int i = p.i, j = p.j, t = p.t;
    const float val = X[idx];
    float* yh = Y + p.base;
    float* yv = yh + plane;
    float* yi = yv + plane;
    for (int g = 0; g < G; ++g) {
      const int s_h = sh[t * G + g], s_v = sv[t * G + g];
      if (p.row_ok && j + s_h >= 0 && j + s_h < W) atomicAdd(yh + (long long)(i - e) * W + (j + s_h), val);
      if (p.col_ok && i + s_v >= 0 && i + s_v < H) atomicAdd(yv + (long long)(i + s_v) * W + (j - e), val);
      if (p.row_ok && p.col_ok && ident[p.o * G + g] == t) atomicAdd(yi + (long long)(i - e) * W + (j - e), val);
    }
  }
}

__global__ void sw_gather_grad_kernel(const float* __restrict__ GY, const int* __restrict__ sh,
                                      const int* __restrict__ sv, const int* __restrict__ ident,
                                      float* __restrict__ DX, long long total, int N, int T, int R, int n, int G,
                                      int H, int W, int e) {
  const long long plane = (long long)N * R * H * W;
  const long long step = (long long)blockDim.x * gridDim.x;
  for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += step) {
    const SwPos p = sw_pos(idx, T, R, n, H, W, e);
    const int i = p.i, j = p.j, t = p.t;
    const float* gh = GY + p.base;
    const float* gv = gh + plane;
    const float* gi = gv + plane;
    float acc = 0.0f;
    for (int g = 0; g < G; ++g) {
      const int s_h = sh[t * G + g], s_v = sv[t * G + g];
      if (p.row_ok && j + s_h >= 0 && j + s_h < W) acc += gh[(long long)(i - e) * W + (j + s_h)];
      if (p.col_ok && i + s_v >= 0 && i + s_v < H) acc += gv[(long long)(i + s_v) * W + (j - e)];
      if (p.row_ok && p.col_ok && ident[p.o * G + g] == t) acc += gi[(long long)(i - e) * W + (j - e)];
    }
    DX[idx] = acc;
  }
}
"""

# Launch as the original does: 512 threads per block, ceil(elements / 4096) blocks, grid-stride loop.
LAUNCHERS = r"""
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAException.h>
#include <ATen/cuda/CUDAContext.h>

static void sw_check_tables(const torch::Tensor& sh, const torch::Tensor& sv, const torch::Tensor& ident,
                            const torch::Tensor& like) {
  for (const auto* t : {&sh, &sv, &ident}) {
    TORCH_CHECK(t->is_cuda() && t->device() == like.device(), "sw tables must be on the input's device");
    TORCH_CHECK(t->scalar_type() == torch::kInt32 && t->dim() == 2 && t->is_contiguous(),
                "sw tables must be contiguous 2-d int32");
  }
  TORCH_CHECK(sh.sizes() == sv.sizes(), "sh and sv differ in shape");
  TORCH_CHECK(ident.size(1) == sh.size(1), "ident and sh differ in G");
  TORCH_CHECK(sh.size(0) % ident.size(0) == 0, "T must be a multiple of R");
}

static int sw_grid(long long total) {
  long long blocks = (total + 4095) / 4096;
  if (blocks < 1) blocks = 1;
  if (blocks > 2147483647LL) blocks = 2147483647LL;
  return (int)blocks;
}

torch::Tensor sw_forward(torch::Tensor X, torch::Tensor sh, torch::Tensor sv, torch::Tensor ident, int64_t H,
                         int64_t W, int64_t e) {
  TORCH_CHECK(X.is_cuda() && X.scalar_type() == torch::kFloat32 && X.dim() == 4 && X.is_contiguous(),
              "X must be a contiguous 4-d float32 CUDA tensor");
  sw_check_tables(sh, sv, ident, X);
  const c10::cuda::CUDAGuard guard(X.device());
  const int64_t N = X.size(0), T = X.size(1), R = ident.size(0), G = ident.size(1);
  TORCH_CHECK(sh.size(0) == T && X.size(2) == H + 2 * e && X.size(3) == W + 2 * e, "X does not match the tables");
  auto Y = torch::zeros({3 * N, R, H, W}, X.options());
  const long long total = X.numel();
  if (total == 0) return Y;
  sw_scatter_kernel<<<sw_grid(total), 512, 0, at::cuda::getCurrentCUDAStream()>>>(
      X.data_ptr<float>(), sh.data_ptr<int>(), sv.data_ptr<int>(), ident.data_ptr<int>(), Y.data_ptr<float>(), total,
      (int)N, (int)T, (int)R, (int)(T / R), (int)G, (int)H, (int)W, (int)e);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return Y;
}

torch::Tensor sw_backward(torch::Tensor GY, torch::Tensor sh, torch::Tensor sv, torch::Tensor ident, int64_t H,
                          int64_t W, int64_t e) {
  TORCH_CHECK(GY.is_cuda() && GY.scalar_type() == torch::kFloat32 && GY.dim() == 4 && GY.is_contiguous(),
              "the output gradient must be a contiguous 4-d float32 CUDA tensor");
  sw_check_tables(sh, sv, ident, GY);
  const c10::cuda::CUDAGuard guard(GY.device());
  const int64_t T = sh.size(0), R = ident.size(0), G = ident.size(1);
  TORCH_CHECK(GY.size(0) % 3 == 0 && GY.size(1) == R && GY.size(2) == H && GY.size(3) == W,
              "the output gradient must be (3N, R, H, W)");
  const int64_t N = GY.size(0) / 3;
  auto DX = torch::empty({N, T, H + 2 * e, W + 2 * e}, GY.options());
  const long long total = DX.numel();
  if (total == 0) return DX;
  sw_gather_grad_kernel<<<sw_grid(total), 512, 0, at::cuda::getCurrentCUDAStream()>>>(
      GY.data_ptr<float>(), sh.data_ptr<int>(), sv.data_ptr<int>(), ident.data_ptr<int>(), DX.data_ptr<float>(),
      total, (int)N, (int)T, (int)R, (int)(T / R), (int)G, (int)H, (int)W, (int)e);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return DX;
}
"""

DECLARATIONS = r"""
torch::Tensor sw_forward(torch::Tensor X, torch::Tensor sh, torch::Tensor sv, torch::Tensor ident, int64_t H,
                         int64_t W, int64_t e);
torch::Tensor sw_backward(torch::Tensor GY, torch::Tensor sh, torch::Tensor sv, torch::Tensor ident, int64_t H,
                          int64_t W, int64_t e);
"""


def build_extension(build_dir=None, verbose=False):
    """The compiled extension module (load_inline; nvcc and ninja needed)."""
    from torch.utils.cpp_extension import load_inline
    kwargs = dict(name="sw_atomic_shift_add", cpp_sources=[DECLARATIONS], cuda_sources=[KERNELS + LAUNCHERS],
                  functions=["sw_forward", "sw_backward"], extra_cuda_cflags=["-O3"], verbose=verbose)
    if build_dir:
        os.makedirs(build_dir, exist_ok=True)
        kwargs["build_directory"] = build_dir
    return load_inline(**kwargs)


class AtomicShiftAdd(torch.autograd.Function):
    """(Y_h, Y_v, Y_i) stacked as (3N, R, H, W) from X (N, R*n, H+2e, W+2e): the scatter forward, gather backward."""

    @staticmethod
    def forward(ctx, X, sh, sv, ident, height, width, e, ext):
        ctx.save_for_backward(sh, sv, ident)
        ctx.dims, ctx.ext = (height, width, e), ext
        return ext.sw_forward(X.contiguous(), sh, sv, ident, height, width, e)

    @staticmethod
    def backward(ctx, grad):
        sh, sv, ident = ctx.saved_tensors
        height, width, e = ctx.dims
        return ctx.ext.sw_backward(grad.contiguous(), sh, sv, ident, height, width, e), None, None, None, None, \
            None, None, None


def int_tables(layer_or_tables, G, dev):
    """(sh, sv, ident): contiguous int32 device tensors from a ShiftWiseConv (or a shift_tables dict)."""
    if isinstance(layer_or_tables, dict):
        pad_hv = torch.as_tensor(layer_or_tables["pad_hv"])
        ident = torch.as_tensor(layer_or_tables["idx_identit"])
    else:
        pad_hv, ident = layer_or_tables.pad_hv, layer_or_tables.idx_identit
    conv = lambda t: t.to(device=dev, dtype=torch.int32).contiguous()  # noqa: E731
    return conv(pad_hv[:, :G]), conv(pad_hv[:, G:]), conv(ident)


def _atomic_forward(self, x):
    """ShiftWiseConv.forward (tools/fixtures/sw_torch.py) with sw_torch.shift_add replaced by AtomicShiftAdd."""
    _, _, height, width = x.shape
    x_rep = x.index_select(1, self.rep.to(x.device))
    x_ghost = x.index_select(1, self.ghost.to(x.device))
    sh, sv, ident = self.atomic_tables
    y = AtomicShiftAdd.apply(self.small_conv(x_rep), sh, sv, ident, height, width, self.extra_pad, self.atomic_ext)
    y_h, y_v, y_i = y.chunk(3, dim=0)
    if self.use_bn:
        y_h, y_v, y_i = self.bn_lora1(y_h), self.bn_lora2(y_v), self.bn_small(y_i)
    return torch.cat([y_h + y_v + y_i + x_rep, x_ghost], dim=1)


def swap_in_atomic(model, ext, dev):
    """Replace the shift-add of every SW layer of model by the extension's. Returns the number of layers swapped."""
    count = 0
    for m in model.modules():
        if isinstance(m, sw_torch.ShiftWiseConv):
            m.atomic_tables = int_tables(m, m.n_rep, dev)
            m.atomic_ext = ext
            m.forward = types.MethodType(_atomic_forward, m)
            count += 1
    return count


def rel_l2(a, b):
    a, b = a.double(), b.double()
    den = float(b.norm())
    return float((a - b).norm()) / (den if den > 0 else 1.0)


def network_check(build, ext, dev, xs, ys, tol_logits=1e-4, tol_grads=1e-3):
    """Two models from build() (same weights), the second with the extension swapped in: one forward, loss and
    backward each; relative L2 of the logits and the worst relative L2 of the gradient of an SW layer's small-conv
    weight (LoRAs.*.weight: the op's backward feeds it directly). The layer scale of 1e-6 keeps the blocks' effect on
    the logits small, and other parameters' gradients can be sums that nearly cancel (float32 rounding noise)."""
    ref, swapped = build(), build()
    swapped.load_state_dict(ref.state_dict())
    count = swap_in_atomic(swapped, ext, dev)
    outs = []
    for m in (ref, swapped):
        out = m(xs)
        F.cross_entropy(out, ys).backward()
        outs.append(out.detach())
    e_out, e_grad, worst, missing, compared = rel_l2(outs[1], outs[0]), 0.0, None, 0, 0
    for (name, a), (_, b) in zip(ref.named_parameters(), swapped.named_parameters()):
        if ".LoRAs." not in name:
            continue
        if a.grad is None or b.grad is None:
            missing += (a.grad is None) != (b.grad is None)
            continue
        if float(a.grad.norm()) > 0:
            compared += 1
            err = rel_l2(b.grad, a.grad)
            if err >= e_grad:
                e_grad, worst = err, name
    return {"layers_swapped": count, "compared": f"logits, {compared} SW small-conv weight gradients",
            "logits_rel_l2": e_out, "worst_grad_rel_l2": e_grad, "worst_grad": worst, "tol_logits": tol_logits,
            "tol_grads": tol_grads, "pass": count > 0 and compared > 0 and missing == 0 and e_out <= tol_logits
            and e_grad <= tol_grads}


# layer cases of the checks: (big, small, R, G, H, W, N); the second has shifts beyond the image (clipping), the
# third is an sw-tiny stage-3 layer (B 13, G 4) at 7x7
CHECK_CASES = [(13, 3, 6, 4, 11, 9, 2), (51, 3, 4, 4, 20, 17, 2), (13, 3, 8, 4, 7, 7, 3), (11, 5, 3, 3, 10, 12, 1)]


def check_shift_add(run_fwd, run_bwd, dev, tol=1e-5):
    """run_fwd(X, sh, sv, ident, H, W, e) -> (3N, R, H, W) and run_bwd(GY, ...) -> dX, against sw_torch.shift_add
    (float64) and its autograd: worst relative L2 over CHECK_CASES of the forward outputs and of dX."""
    gen = torch.Generator().manual_seed(11)
    worst_f = worst_b = 0.0
    for big, small, R, G, H, W, N in CHECK_CASES:
        tb = sw_torch.shift_tables(big, small, R, G)
        e, n = tb["e"], tb["n"]
        sh, sv, ident = int_tables(tb, G, dev)
        X = torch.randn(N, R * n, H + 2 * e, W + 2 * e, generator=gen, dtype=torch.float64)
        GY = torch.randn(3 * N, R, H, W, generator=gen, dtype=torch.float64)
        pad = torch.as_tensor(tb["pad_hv"])
        Xr = X.clone().requires_grad_(True)
        ref = torch.cat(sw_torch.shift_add(Xr, pad[:, :G], pad[:, G:], torch.as_tensor(tb["idx_identit"]), H, W, e))
        (ref * GY).sum().backward()
        got = run_fwd(X.float().to(dev).contiguous(), sh, sv, ident, H, W, e)
        dX = run_bwd(GY.float().to(dev).contiguous(), sh, sv, ident, H, W, e)
        worst_f = max(worst_f, rel_l2(got.cpu(), ref.detach()))
        worst_b = max(worst_b, rel_l2(dX.cpu(), Xr.grad))
    return {"cases": len(CHECK_CASES), "forward_rel_l2": worst_f, "backward_rel_l2": worst_b, "tol": tol,
            "pass": worst_f <= tol and worst_b <= tol}


# ----------------------------------------------------------------------------------------------------------------
# CPU emulation of the kernels (--self-test): the same source, compiled by g++ with a shim, every (block, thread)
# run in turn. Checks the index arithmetic and bounds of the CUDA code on a machine without a GPU.

SHIM = r"""
#include <cstdint>
struct sw_dim3 { unsigned x = 1, y = 1, z = 1; };
static sw_dim3 blockIdx, threadIdx, blockDim, gridDim;
#define __global__ static
static inline float atomicAdd(float* p, float v) { float old = *p; *p += v; return old; }
"""
SHIM_DRIVER = r"""
static int emu_grid(long long total) { long long b = (total + 4095) / 4096; return b < 1 ? 1 : (int)b; }
#define EMU_LAUNCH(KERNEL, ...) do { gridDim.x = emu_grid(total); blockDim.x = 512; \
  for (unsigned bx = 0; bx < gridDim.x; ++bx) for (unsigned tx = 0; tx < blockDim.x; ++tx) { \
    blockIdx.x = bx; threadIdx.x = tx; KERNEL(__VA_ARGS__); } } while (0)
extern "C" void emu_forward(const float* X, const int* sh, const int* sv, const int* ident, float* Y,
    long long total, int N, int T, int R, int n, int G, int H, int W, int e) {
  EMU_LAUNCH(sw_scatter_kernel, X, sh, sv, ident, Y, total, N, T, R, n, G, H, W, e);
}
extern "C" void emu_backward(const float* GY, const int* sh, const int* sv, const int* ident, float* DX,
    long long total, int N, int T, int R, int n, int G, int H, int W, int e) {
  EMU_LAUNCH(sw_gather_grad_kernel, GY, sh, sv, ident, DX, total, N, T, R, n, G, H, W, e);
}
"""


def host_code_syntax_check(workdir):
    """g++ -fsyntax-only of the launchers and declarations against this torch's C++ headers, with the three CUDA
    headers stubbed and <<<...>>> launches written as calls: catches mistakes in the torch API use without nvcc.
    Returns None when it passed or was skipped (with a message), else the compiler's errors."""
    import re
    import sysconfig
    from torch.utils.cpp_extension import include_paths
    cxx = shutil.which("g++") or shutil.which("c++")
    incs = [d for d in include_paths() if os.path.isdir(d)] + [sysconfig.get_paths()["include"]]
    if not cxx or not any(os.path.isfile(os.path.join(d, "torch", "types.h")) for d in incs):
        log("self-test: host-code syntax check skipped (no g++ or no torch C++ headers)")
        return None
    launch = LAUNCHERS.replace(
        "#include <c10/cuda/CUDAGuard.h>\n#include <c10/cuda/CUDAException.h>\n#include <ATen/cuda/CUDAContext.h>\n",
        "namespace c10 { namespace cuda { struct CUDAGuard { explicit CUDAGuard(c10::Device) {} }; } }\n"
        "namespace at { namespace cuda { inline void* getCurrentCUDAStream() { return nullptr; } } }\n"
        "#define C10_CUDA_KERNEL_LAUNCH_CHECK() do {} while (0)\n")
    launch = re.sub(r"(\w+)<<<[^>]*>>>\(", r"\1(", launch)
    src = os.path.join(workdir, "host.cpp")
    with open(src, "w") as f:
        f.write("#include <torch/types.h>\n" + SHIM + KERNELS + launch + "\n#include <torch/extension.h>\n"
                + DECLARATIONS)
    proc = subprocess.run([cxx, "-std=c++17", "-fsyntax-only"] + [f"-I{d}" for d in incs] + [src],
                          capture_output=True, text=True)
    return None if proc.returncode == 0 else proc.stderr[-3000:]


def emulated_kernels(workdir):
    """(run_fwd, run_bwd) calling the kernels compiled for the CPU, or (None, reason)."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if not cxx:
        return None, "no g++ on PATH"
    src, lib = os.path.join(workdir, "emu.cpp"), os.path.join(workdir, "emu.so")
    with open(src, "w") as f:
        f.write(SHIM + KERNELS + SHIM_DRIVER)
    proc = subprocess.run([cxx, "-O1", "-std=c++17", "-shared", "-fPIC", "-o", lib, src], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        return None, f"g++ failed: {proc.stderr.strip()[:2000]}"
    so = ctypes.CDLL(lib)
    argtypes = [ctypes.c_void_p] * 5 + [ctypes.c_longlong] + [ctypes.c_int] * 8
    so.emu_forward.argtypes = so.emu_backward.argtypes = argtypes

    def call(fn, inp, out, sh, sv, ident, H, W, e, N, T, R, G):
        fn(inp.data_ptr(), sh.data_ptr(), sv.data_ptr(), ident.data_ptr(), out.data_ptr(), out.numel()
           if fn is so.emu_backward else inp.numel(), N, T, R, T // R, G, H, W, e)

    def run_fwd(X, sh, sv, ident, H, W, e):
        N, T = X.shape[:2]
        R, G = ident.shape
        Y = torch.zeros(3 * N, R, H, W)
        call(so.emu_forward, X, Y, sh, sv, ident, H, W, e, N, T, R, G)
        return Y

    def run_bwd(GY, sh, sv, ident, H, W, e):
        T = sh.shape[0]
        R, G = ident.shape
        N = GY.shape[0] // 3
        DX = torch.empty(N, T, H + 2 * e, W + 2 * e)
        call(so.emu_backward, GY, DX, sh, sv, ident, H, W, e, N, T, R, G)
        return DX

    return (run_fwd, run_bwd), None


# ----------------------------------------------------------------------------------------------------------------
# Measurement

def log(msg=""):
    print(msg, flush=True)


def describe(e):
    text = str(e).strip()
    if "out of memory" in text.lower():
        return "out of memory"
    first = text.splitlines()[0] if text else ""
    if len(first) > 300:
        first = first[:300] + "..."
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def parse_ints(text, what, count=None):
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"train_step_peers: {what} must be comma-separated integers, got {text!r}")
    if not vals or any(v <= 0 for v in vals) or (count and len(vals) != count):
        raise SystemExit(f"train_step_peers: {what} must be {count or 'some'} positive integers, got {text!r}")
    return vals


def set_precision(dev):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = dev.type == "cuda"
    return {"cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
            "cudnn.benchmark": torch.backends.cudnn.benchmark, "dtype": "float32"}


class Peer:
    def __init__(self, name):
        self.name, self.model, self.fn, self.opt, self.step = name, None, None, None, None
        self.samples = []
        self.info = {"status": "not run", "reason": None, "ms_per_step": None, "images_per_s": None,
                     "peak_bytes": None}


def load_swc_json(path):
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    ms = data.get("ms_per_step")
    if not isinstance(ms, (int, float)) or isinstance(ms, bool) or not ms > 0:
        raise ValueError(f"ms_per_step must be a positive number, got {ms!r}")
    peak = data.get("peak_bytes")
    if peak is not None and (not isinstance(peak, int) or isinstance(peak, bool) or peak < 0):
        raise ValueError(f"peak_bytes must be a non-negative integer, got {peak!r}")
    return data


def compute_ratios(peers_info, swc):
    """{peer: {"speedup", "target", "pass", "memory_ratio"}} and the printed lines."""
    ratios, lines = {}, []
    swc_ms, swc_peak = float(swc["ms_per_step"]), swc.get("peak_bytes")
    for name in PEERS:
        info = peers_info.get(name) or {}
        ms = info.get("ms_per_step")
        if ms is None:
            ratios[name] = {"speedup": None, "target": TARGETS[name], "pass": None}
            lines.append(f"swc vs {LABELS[name]}: no measurement ({info.get('status', 'not run')}"
                         f"{': ' + info['reason'] if info.get('reason') else ''})")
            continue
        speedup = ms / swc_ms
        ok = speedup >= TARGETS[name]
        mem = (info["peak_bytes"] / swc_peak) if info.get("peak_bytes") and swc_peak else None
        ratios[name] = {"speedup": speedup, "target": TARGETS[name], "pass": ok, "memory_ratio": mem}
        lines.append(f"swc is {speedup:.2f}× faster than {LABELS[name]} ({ms:.2f} vs {swc_ms:.2f} ms per step; "
                     f"target {TARGETS[name]:g}×): {'PASS' if ok else 'FAIL'}"
                     + (f"; peer uses {mem:.2f}× swc's peak memory" if mem is not None else ""))
    return ratios, lines


def markdown(result):
    cfg = result["config"]
    out = [f"# Training-step peers: {cfg['model']} batch {cfg['batch']}, {cfg['image_size']}², {result['device']}",
           "",
           f"torch {result['torch']}, fp32{', TF32 off' if result['precision']['cudnn.benchmark'] else ''}; "
           "forward + cross-entropy + backward + AdamW; ms per step = median of "
           f"{result['timing']['statistic_over']}.", "",
           "| peer | status | ms per step | images/s | peak MiB | steps timed |", "|---|---|---|---|---|---|"]
    for name in PEERS:
        p = result["peers"].get(name) or {}
        status = p.get("status", "not run") + (f" ({p['reason']})" if p.get("reason") else "")
        status = status.replace("|", "/").replace("\n", " ")
        ms, ips, peak = p.get("ms_per_step"), p.get("images_per_s"), p.get("peak_bytes")
        out.append(f"| {LABELS[name]} | {status} | {'-' if ms is None else f'{ms:.2f}'} | "
                   f"{'-' if ips is None else f'{ips:.1f}'} | {'-' if peak is None else f'{peak / 2**20:.0f}'} | "
                   f"{p.get('steps_timed', 0)} |")
    if result.get("swc"):
        s = result["swc"]
        out += ["", f"swc: {s['ms_per_step']:.2f} ms per step"
                + (f", peak {s['peak_bytes'] / 2**20:.0f} MiB" if s.get("peak_bytes") else "")
                + f" (from {s['path']})", ""]
        out += [f"- {line}" for line in result.get("ratio_lines", [])]
    if result["checks"]:
        out += ["", "Checks:"]
        for k, v in result["checks"].items():
            out.append(f"- {k}: {json.dumps(v)}")
    if result["notes"]:
        out += ["", "Notes:"] + [f"- {n}" for n in result["notes"]]
    return "\n".join(out) + "\n"


def run(args):
    t_start = time.perf_counter()
    deadline = t_start + args.time_budget if args.time_budget else None
    left = lambda: (deadline - time.perf_counter()) if deadline else float("inf")  # noqa: E731

    dev, dev_name = select_device(args.device, "train_step_peers")
    cuda = dev.type == "cuda"
    precision = set_precision(dev)
    wanted = [p.strip() for p in args.peers.split(",") if p.strip()]
    bad = [p for p in wanted if p not in PEERS]
    if bad or not wanted:
        raise SystemExit(f"train_step_peers: --peers takes some of {','.join(PEERS)}, got {args.peers!r}")

    preset = sw_torch.PRESETS[args.model]
    cfg = dict(DEFAULTS, depths=tuple(parse_ints(args.depths, "--depths", 4) if args.depths else preset["depths"]),
               dims=tuple(parse_ints(args.dims, "--dims", 4) if args.dims else preset["dims"]),
               num_classes=args.num_classes, drop_path_rate=args.drop_path)
    swc = None
    result = {
        "device": dev_name, "torch": torch.__version__, "python": platform.python_version(),
        "config": {"model": args.model, "batch": args.batch, "image_size": args.image_size,
                   **{k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
                   "optimizer": {"name": "AdamW", "lr": args.lr, "weight_decay": args.weight_decay},
                   "loss": "cross_entropy (random labels)", "mode": "train", "seed": args.seed},
        "precision": precision,
        "timing": {"warmup_steps": args.warmup, "rounds_per_phase": args.iters,
                   "statistic_over": "every timed step of the peer (interleaved rounds, one step per peer per round)",
                   "clock": "cuda events around each step" if cuda else "perf_counter around each step",
                   "time_budget_s": args.time_budget},
        "peers": {}, "checks": {}, "swc": None, "ratios": None, "ratio_lines": [], "notes": [],
    }
    if args.swc_json:
        try:
            swc = load_swc_json(args.swc_json)
            result["swc"] = {"path": args.swc_json, **swc}
            for key, mine in (("batch", args.batch), ("image_size", args.image_size)):
                if key in swc and swc[key] != mine:
                    result["notes"].append(f"swc's JSON has {key} {swc[key]}, this run {mine}: the ratios compare "
                                           "different work")
        except (OSError, ValueError) as e:
            result["notes"].append(f"--swc-json {args.swc_json}: unreadable ({describe(e)}); no ratios")
            swc = None

    base = os.path.splitext(args.out)[0] if args.out.endswith(".json") else args.out
    md_path = base + ".md"

    def save():
        for p in peers.values():
            result["peers"][p.name] = p.info
        if swc is not None:
            result["ratios"], result["ratio_lines"] = compute_ratios(result["peers"], swc)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)) or ".", exist_ok=True)
        for path, text in ((args.out, json.dumps(result, indent=2) + "\n"), (md_path, markdown(result))):
            tmp = f"{path}.tmp{os.getpid()}"
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, path)

    def note(msg):
        log(msg)
        result["notes"].append(msg)

    peers = {name: Peer(name) for name in PEERS}
    for name in PEERS:
        if name not in wanted:
            peers[name].info.update(status="skipped", reason="not in --peers")
    log(f"train_step_peers: {dev_name}, torch {torch.__version__}, fp32{', TF32 off' if cuda else ''}; "
        f"{args.model} depths {','.join(map(str, cfg['depths']))} batch {args.batch} {args.image_size}²; "
        f"{args.warmup} warm-up steps, {args.iters} rounds per phase")

    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch, cfg["in_chans"], args.image_size, args.image_size, generator=gen).to(dev)
    labels = torch.randint(0, cfg["num_classes"], (args.batch,), generator=gen).to(dev)
    batch_bytes = x.numel() * x.element_size() + labels.numel() * labels.element_size()

    def sync():
        if cuda:
            torch.cuda.synchronize(dev)

    def build_model():
        torch.manual_seed(args.seed)
        model = sw_torch.ShiftWiseV2(**cfg)  # its SW layers reseed torch and numpy with 123 (as the original)
        torch.manual_seed(args.seed)
        model.apply(model._init_weights)  # the original's init, drawn from --seed
        model = model.to(dev).train()
        for m in model.modules():
            if isinstance(m, sw_torch.ShiftWiseConv):
                m.tables_to(dev)
        return model

    def make_step(peer):
        fn, opt = peer.fn, peer.opt

        def step():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(fn(x), labels)
            loss.backward()
            opt.step()
        return step

    def prepare(peer, wrap=None):
        """Build, (wrap), warm up; fills peer.info; returns True when the peer can be timed."""
        t0 = time.perf_counter()
        if cuda:
            sync()
            torch.cuda.empty_cache()
            before = torch.cuda.memory_allocated(dev)
            torch.cuda.reset_peak_memory_stats(dev)
        try:
            peer.model = build_model()
            peer.fn = peer.model
            if wrap is not None:
                peer.fn = wrap(peer.model)
            peer.opt = torch.optim.AdamW(peer.model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
            peer.info["build_s"] = time.perf_counter() - t0
            peer.step = make_step(peer)
            t1 = time.perf_counter()
            for _ in range(args.warmup):
                peer.step()
            sync()
            peer.info["warmup_s"] = time.perf_counter() - t1
        except Exception as e:  # noqa: BLE001 (a peer's failure is reported; the others go on)
            peer.info.update(status="failed", reason=describe(e))
            peer.model = peer.fn = peer.opt = peer.step = None
            if cuda:
                torch.cuda.empty_cache()
            note(f"{peer.name}: failed ({peer.info['reason']})")
            return False
        if cuda:
            peer.info["peak_bytes"] = int(torch.cuda.max_memory_allocated(dev) - before + batch_bytes)
        peer.info.update(status="not timed", reason=None,
                         parameters=sum(p.numel() for p in peer.model.parameters()))
        log(f"  {peer.name}: built in {peer.info['build_s']:.1f} s, {args.warmup} warm-up steps in "
            f"{peer.info['warmup_s']:.1f} s"
            + (f", peak {peer.info['peak_bytes'] / 2**20:.0f} MiB" if peer.info["peak_bytes"] else ""))
        return True

    def summarise(p):
        if p.samples:
            ms = statistics.median(p.samples)
            p.info.update(status="ok", ms_per_step=ms, images_per_s=args.batch / ms * 1e3,
                          steps_timed=len(p.samples), ms_min=min(p.samples), ms_max=max(p.samples))

    def time_rounds(active, phase):
        if not active:
            return
        for r in range(args.iters):
            if left() < 0:
                note(f"phase {phase}: stopped after {r} of {args.iters} rounds (--time-budget)")
                break
            order = active[r % len(active):] + active[:r % len(active)]
            events = []
            for p in order:
                if cuda:
                    s, t = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    s.record()
                    p.step()
                    t.record()
                    events.append((p, s, t))
                else:
                    t0 = time.perf_counter()
                    p.step()
                    p.samples.append((time.perf_counter() - t0) * 1e3)
            if cuda:
                sync()
                for p, s, t in events:
                    p.samples.append(s.elapsed_time(t))
            for p in active:
                summarise(p)
            save()  # after every round: a run stopped by a timeout keeps the steps timed so far
        for p in active:
            if p.samples:
                log(f"  {p.name}: {p.info['ms_per_step']:.2f} ms per step ({p.info['images_per_s']:.1f} images/s), "
                    f"median of {len(p.samples)} steps")

    save()
    # ---- phase 1: eager and atomic
    active = []
    if "eager" in wanted:
        log("eager:")
        if prepare(peers["eager"]):
            active.append(peers["eager"])
        save()
    if "atomic" in wanted:
        log("atomic (the original's atomicAdd scatter shift-add as a CUDA extension):")
        p = peers["atomic"]
        if not cuda:
            p.info.update(status="skipped", reason="needs a CUDA device (the extension is CUDA only)")
            note(f"atomic: skipped on {dev.type} (the extension is CUDA only)")
        else:
            ext = None
            try:
                t0 = time.perf_counter()
                ext = build_extension(args.ext_build_dir, verbose=args.verbose)
                p.info["extension_build_s"] = time.perf_counter() - t0
                log(f"  extension built in {p.info['extension_build_s']:.1f} s")
            except Exception as e:  # noqa: BLE001
                p.info.update(status="failed", reason=f"extension build failed: {describe(e)}")
                note(f"atomic: {p.info['reason']}")
            if ext is not None:
                try:
                    chk = check_shift_add(
                        lambda X, sh, sv, ident, H, W, e: AtomicShiftAdd.apply(X, sh, sv, ident, H, W, e, ext),
                        lambda GY, sh, sv, ident, H, W, e: ext.sw_backward(GY, sh, sv, ident, H, W, e), dev)
                except Exception as e:  # noqa: BLE001
                    chk = {"pass": False, "error": describe(e)}
                result["checks"]["atomic shift-add vs sw_torch.shift_add"] = chk
                log(f"  check vs sw_torch.shift_add: {json.dumps(chk)}")
                if not chk["pass"]:
                    p.info.update(status="failed", reason="check against the eager shift-add failed")
                    note("atomic: the check against the eager shift-add failed; not timed")
                elif prepare(p, wrap=lambda m: (swap_in_atomic(m, ext, dev), m)[1]):
                    # the swapped network against the eager one: fresh models, same weights, train mode, one
                    # forward and backward on two images of the input
                    key = "atomic network vs eager network (batch 2)"
                    try:
                        chk = network_check(build_model, ext, dev, x[:2], labels[:2])
                    except Exception as e:  # noqa: BLE001
                        chk = {"pass": False, "error": describe(e)}
                    result["checks"][key] = chk
                    log(f"  {key}: {json.dumps(chk)}")
                    if not chk["pass"]:
                        p.info.update(status="failed", reason="the swapped network differs from the eager one")
                        p.step = None
                    if p.step is not None:
                        active.append(p)
        save()
    time_rounds(active, 1)

    # ---- phase 2: torch.compile, then every peer again
    if "compile" in wanted:
        p = peers["compile"]
        log("compile (torch.compile(model), default mode, static shapes; warm-up compiles):")
        if not hasattr(torch, "compile"):
            p.info.update(status="skipped", reason=f"torch {torch.__version__} has no torch.compile")
            note(f"compile: skipped (torch {torch.__version__} has no torch.compile)")
        elif left() < args.compile_min_s:
            p.info.update(status="skipped", reason=f"only {max(0, left()):.0f} s of --time-budget left")
            note(f"compile: skipped ({p.info['reason']})")
        else:
            if prepare(p, wrap=lambda m: torch.compile(m, dynamic=False)):
                active.append(p)
                time_rounds(active, 2)
        save()

    # ---- report
    eager_ok = peers["eager"].info.get("ms_per_step") is not None or "eager" not in wanted
    log("")
    log(markdown(result).rstrip())
    for line in result["ratio_lines"]:
        log(line)
    log(f"wrote {args.out} and {md_path} ({time.perf_counter() - t_start:.0f} s)")
    checks_ok = all(c.get("pass", True) for c in result["checks"].values())
    return 0 if eager_ok and checks_ok else 1


def self_test(host_check=False):
    """CPU: the kernels emulated with g++ against sw_torch.shift_add, then a tiny end-to-end run with a swc JSON."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        kernels, why = emulated_kernels(tmp)
        if kernels is None:
            log(f"self-test: kernel emulation skipped ({why})")
        else:
            chk = check_shift_add(kernels[0], kernels[1], torch.device("cpu"))
            log(f"self-test: CUDA kernels emulated on the CPU vs sw_torch.shift_add: {json.dumps(chk)}")
            assert chk["pass"], chk
            # the autograd Function and the swap, with the emulated kernels standing in for the extension
            ext = types.SimpleNamespace(sw_forward=kernels[0], sw_backward=kernels[1])
            cfg = dict(DEFAULTS, depths=(1, 1, 1, 1), dims=(16, 32, 64, 128), num_classes=10)

            def build():
                torch.manual_seed(0)
                return sw_torch.ShiftWiseV2(**cfg).train()
            chk = network_check(build, ext, torch.device("cpu"), torch.randn(2, 3, 32, 32), torch.tensor([1, 7]))
            log(f"self-test: network with the emulated op swapped in vs eager: {json.dumps(chk)}")
            assert chk["pass"] and chk["layers_swapped"] == 4, chk
        if host_check:
            t1 = time.perf_counter()
            errors = host_code_syntax_check(tmp)
            assert errors is None, errors
            log(f"self-test: the extension's host code compiles against torch {torch.__version__}'s headers "
                f"(g++ -fsyntax-only, CUDA headers stubbed; {time.perf_counter() - t1:.0f} s)")
        swc_path, out = os.path.join(tmp, "swc.json"), os.path.join(tmp, "peers.json")
        with open(swc_path, "w") as f:
            json.dump({"ms_per_step": 1.0, "peak_bytes": 1 << 20, "batch": 2}, f)
        rc = main(["--device", "cpu", "--batch", "2", "--image-size", "32", "--depths", "1,1,1,1",
                   "--dims", "16,32,64,128", "--num-classes", "10", "--warmup", "1", "--iters", "2",
                   "--swc-json", swc_path, "--out", out])
        with open(out) as f:
            res = json.load(f)
        assert rc == 0, rc
        eager = res["peers"]["eager"]
        assert eager["status"] == "ok" and eager["ms_per_step"] > 0 and eager["steps_timed"] == 2, eager
        assert abs(eager["images_per_s"] - 2e3 / eager["ms_per_step"]) < 1e-6 * eager["images_per_s"]
        assert res["peers"]["atomic"]["status"] == "skipped", res["peers"]["atomic"]
        assert res["peers"]["compile"]["status"] in ("ok", "skipped", "failed"), res["peers"]["compile"]
        r = res["ratios"]["eager"]
        assert r["target"] == 3.0 and abs(r["speedup"] - eager["ms_per_step"]) < 1e-9 and r["pass"] is True, r
        assert os.path.isfile(os.path.join(tmp, "peers.md"))
        _, lines = compute_ratios({"eager": {"ms_per_step": 2.9, "peak_bytes": 10}}, {"ms_per_step": 1.0,
                                                                                       "peak_bytes": 5})
        assert lines[0].startswith("swc is 2.90× faster than PyTorch eager") and lines[0].endswith(
            "FAIL; peer uses 2.00× swc's peak memory"), lines[0]
    log(f"self-test passed ({time.perf_counter() - t0:.1f} s)")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="results JSON; the markdown table goes beside it (.md)")
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    ap.add_argument("--model", default="sw-tiny", choices=sorted(sw_torch.PRESETS), help="default sw-tiny")
    ap.add_argument("--depths", help="blocks per stage, overrides the preset (e.g. 1,1,1,1)")
    ap.add_argument("--dims", help="channels per stage, overrides the preset (e.g. 16,32,64,128)")
    ap.add_argument("--num-classes", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per peer (default 3)")
    ap.add_argument("--iters", type=int, default=10, help="timed rounds per phase (default 10)")
    ap.add_argument("--peers", default=",".join(PEERS), help="some of eager,compile,atomic (default all)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--drop-path", type=float, default=0.0, help="drop_path_rate of the network (default 0)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--swc-json", help='swc\'s step time: {"ms_per_step": float, "peak_bytes": int}; prints ratios')
    ap.add_argument("--time-budget", type=float, default=None,
                    help="seconds: skip torch.compile when less than --compile-min-s is left, stop timing rounds "
                         "when it is spent")
    ap.add_argument("--compile-min-s", type=float, default=60.0)
    ap.add_argument("--ext-build-dir", help="load_inline build folder (default torch's cache)")
    ap.add_argument("--verbose", action="store_true", help="show the extension's build commands")
    ap.add_argument("--self-test", action="store_true", help="CPU self-test (kernel emulation, a tiny run)")
    ap.add_argument("--host-check", action="store_true",
                    help="with --self-test: also g++ -fsyntax-only the extension's host code (about 20 s)")
    args = ap.parse_args(argv)
    if args.self_test:
        return self_test(args.host_check)
    if not args.out:
        ap.error("--out is required")
    for name in ("batch", "image_size", "iters", "num_classes"):
        if getattr(args, name) <= 0:
            ap.error(f"--{name.replace('_', '-')} must be positive")
    if args.warmup < 1:
        ap.error("--warmup must be at least 1 (the compile peer compiles there)")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
