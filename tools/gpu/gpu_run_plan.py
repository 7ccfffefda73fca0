#!/usr/bin/env python3
"""Runs a CUDA plan written by `swc compile --target cuda` on a real GPU, without .NET.

The emitted kernels are compiled here by the machine's own NVRTC to CUBIN for the device's arch and launched through the
CUDA driver (ctypes); the plan's GEMM calls run as torch matmuls on views that follow cuBLAS's column-major convention
exactly as plan.json states them (TF32 off). Memory: one arena as plan.json lays it out (filled with NaN first, so a
read of a value nobody wrote shows), parameters from weights.safetensors, derived tensors from derived.safetensors.

    gpu_run_plan.py DIR --input x.npy [--expected y.npy] [--repeat N]

Prints per-kernel NVRTC results, the relative L2 error of each output against --expected, and the mean time of a
whole run (CUDA events). Exit status 1 when an error exceeds --tol.
"""
import argparse
import ctypes
import json
import os
import struct
import sys

import numpy as np
import torch


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32}
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype=dtypes[v["dtype"]]).reshape(v["shape"])
    return out


def load_lib(names):
    for n in names:
        try:
            return ctypes.CDLL(n)
        except OSError:
            pass
    sys.exit(f"none of {', '.join(names)} could be loaded")


nvrtc = load_lib(["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"])
cu = load_lib(["libcuda.so.1"])
vp = ctypes.c_void_p
cu.cuModuleLoadData.argtypes = [ctypes.POINTER(vp), ctypes.c_char_p]
cu.cuModuleGetFunction.argtypes = [ctypes.POINTER(vp), vp, ctypes.c_char_p]
cu.cuLaunchKernel.argtypes = [vp] + [ctypes.c_uint] * 7 + [vp, ctypes.POINTER(vp), vp]
cu.cuGetErrorName.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
cu.cuFuncGetAttribute.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_int, vp]


def cu_check(r, what):
    if r != 0:
        name = ctypes.c_char_p()
        cu.cuGetErrorName(r, ctypes.byref(name))
        raise RuntimeError(f"{what} failed: {name.value.decode() if name.value else r}")


def nvrtc_version():
    a, b = ctypes.c_int(), ctypes.c_int()
    nvrtc.nvrtcVersion(ctypes.byref(a), ctypes.byref(b))
    return f"{a.value}.{b.value}"


def compile_cubin(source, name, arch):
    prog = vp()
    r = nvrtc.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None)
    if r:
        raise RuntimeError(f"nvrtcCreateProgram {name}: {r}")
    opts = [f"--gpu-architecture={arch}".encode(), b"-default-device", b"--std=c++17"]
    arr = (ctypes.c_char_p * len(opts))(*opts)
    r = nvrtc.nvrtcCompileProgram(prog, len(opts), arr)
    size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetProgramLog(prog, log)
    if r:
        raise RuntimeError(f"NVRTC could not compile {name}:\n{log.value.decode()}")
    nvrtc.nvrtcGetCUBINSize(prog, ctypes.byref(size))
    buf = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetCUBIN(prog, buf)
    nvrtc.nvrtcDestroyProgram(ctypes.byref(prog))
    return buf.raw


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--input", required=True)
    ap.add_argument("--expected")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--tol", type=float, default=1e-5)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda")
    plan = json.load(open(os.path.join(a.dir, "plan.json")))
    major, minor = torch.cuda.get_device_capability()
    arch = f"sm_{major}{minor}"
    print(f"device {torch.cuda.get_device_name()} ({arch}), NVRTC {nvrtc_version()}, plan {plan['graph']}")
    torch.zeros(1, device=dev)  # the primary context, current on this thread

    funcs = {}
    modules = []
    for k in plan["kernels"]:
        src = open(os.path.join(a.dir, k["file"])).read()
        cubin = compile_cubin(src, os.path.basename(k["file"]), arch)
        mod = vp()
        cu_check(cu.cuModuleLoadData(ctypes.byref(mod), cubin), f"cuModuleLoadData {k['name']}")
        modules.append(mod)
        for e in k["entries"]:
            f = vp()
            cu_check(cu.cuModuleGetFunction(ctypes.byref(f), mod, e.encode()), f"cuModuleGetFunction {e}")
            regs, local = ctypes.c_int(), ctypes.c_int()
            cu.cuFuncGetAttribute(ctypes.byref(regs), 4, f)    # CU_FUNC_ATTRIBUTE_NUM_REGS
            cu.cuFuncGetAttribute(ctypes.byref(local), 3, f)   # CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES
            funcs[e] = f
            print(f"  {e}: {regs.value} registers, {local.value} bytes local")
    print(f"compiled {len(plan['kernels'])} kernels to CUBIN for {arch}")

    weights = {k: torch.from_numpy(np.array(v, dtype=np.float32)).to(dev).reshape(-1)
               for k, v in load_safetensors(os.path.join(a.dir, "weights.safetensors")).items()}
    dpath = os.path.join(a.dir, "derived.safetensors")
    derived = {k: torch.from_numpy(np.array(v, dtype=np.float32)).to(dev).reshape(-1)
               for k, v in (load_safetensors(dpath).items() if os.path.exists(dpath) else [])}
    arena = torch.full((max(1, plan["arena"]["bytes"] // 4),), float("nan"), device=dev)
    slots = {b["value"]: b["offset"] // 4 for b in plan["arena"]["buffers"]}
    views = plan["arena"]["views"]
    scratch = {s["name"]: torch.full((max(1, s["floats"]),), float("nan"), device=dev) for s in plan["scratch"]}
    x = np.load(a.input).astype(np.float32)
    inputs = {plan["inputs"][0]["name"]: torch.from_numpy(x).to(dev).reshape(-1)}

    def root(v):
        while v in views:
            v = views[v]
        return v

    def resolve(ref):
        kind, _, rest = ref.partition(":")
        name, _, off = rest.partition("+")
        off = int(off) if off else 0
        if kind == "value":
            name = root(name)
            if name in inputs:
                return inputs[name], off
            if name in weights:
                return weights[name], off
            return arena, slots[name] + off
        if kind == "param":
            return weights[name], off
        if kind == "derived":
            return derived[name], off
        if kind == "scratch":
            return scratch[name], off
        raise ValueError(ref)

    stream = torch.cuda.current_stream().cuda_stream

    # the arena, parameters and GEMMs here are float32; a bf16/fp16 plan (issue 22) is not run as if it were
    sixteen = [s["node"] for s in plan["steps"] if s["op"] == "gemm" and s.get("storage", "f32") != "f32"]
    if sixteen:
        sys.exit(f"{len(sixteen)} GEMMs store 16-bit values (e.g. node {sixteen[0]}): this runner handles float32 plans")

    def run(timed=None):
        for s in plan["steps"]:
            if timed is not None:
                ev = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                ev[0].record()
            if s["op"] == "launch":
                ptrs = []
                for r in s["args"]:
                    t, off = resolve(r)
                    ptrs.append(ctypes.c_uint64(t.data_ptr() + 4 * off))
                params = (vp * len(ptrs))(*[ctypes.cast(ctypes.pointer(p), vp) for p in ptrs])
                g, b = s["grid"], s["block"]
                cu_check(cu.cuLaunchKernel(funcs[s["entry"]], g[0], g[1], g[2], b[0], b[1], b[2],
                                           s["dynamic_shared_bytes"], vp(stream), params, None), f"launch {s['entry']}")
            else:
                m, n, k, batch = s["m"], s["n"], s["k"], s["batch"]
                ta, oa = resolve(s["a"])
                tb, ob = resolve(s["b"])
                tc, oc = resolve(s["c"])
                A = torch.as_strided(ta, (batch, m, k), (s["stride_a"], s["lda"], 1) if s["trans_a"] else (s["stride_a"], 1, s["lda"]), oa)
                B = torch.as_strided(tb, (batch, k, n), (s["stride_b"], s["ldb"], 1) if s["trans_b"] else (s["stride_b"], 1, s["ldb"]), ob)
                C = torch.as_strided(tc, (batch, m, n), (s["stride_c"], 1, s["ldc"]), oc)
                prod = torch.bmm(A, B) * s["alpha"]
                C.copy_(prod if s["beta"] == 0 else prod + s["beta"] * C)
            if timed is not None:
                ev[1].record()
                timed.append((s, ev))

    run()
    torch.cuda.synchronize()
    worst = 0.0
    if a.expected:
        exp = np.load(a.expected).astype(np.float64).reshape(-1)
        o = plan["outputs"][0]
        t, off = resolve("value:" + o)
        got = t[off:off + exp.size].double().cpu().numpy()
        err = float(np.linalg.norm(got - exp) / max(np.linalg.norm(exp), 1e-30))
        worst = max(worst, err)
        print(f"output {o}: relative L2 vs the reference {err:.3e} (bound {a.tol:g}); "
              f"top-1 {int(np.argmax(got))} vs {int(np.argmax(exp))}")
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(3):
        run()
    start.record()
    for _ in range(a.repeat):
        run()
    end.record()
    torch.cuda.synchronize()
    ms = start.elapsed_time(end) / a.repeat
    batch = plan["inputs"][0]["shape"][0]
    print(f"whole plan: {ms:.3f} ms per run (batch {batch}, {batch * 1000 / ms:.1f} images/s; launches from Python, "
          f"so this includes launch overhead)")
    timed = []
    run(timed)
    torch.cuda.synchronize()
    kinds = {k["name"]: k["kind"] for k in plan["kernels"]}
    by_kind = {}
    for s, (e0, e1) in timed:
        kind = "gemm (torch)" if s["op"] == "gemm" else kinds[s["kernel"]]
        by_kind[kind] = by_kind.get(kind, 0.0) + e0.elapsed_time(e1)
    print("time per step kind (one run, events around each step):")
    for kind, t in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:24s} {t:8.3f} ms")
    return 1 if worst > a.tol else 0


if __name__ == "__main__":
    sys.exit(main())
