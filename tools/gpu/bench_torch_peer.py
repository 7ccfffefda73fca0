#!/usr/bin/python3
"""The PyTorch peer of the GPU benchmarks: sw-tiny and its SW layer in eager PyTorch (and torch.compile).

The model is tools/fixtures/sw_torch.py's ShiftWise_v2 (the original network, written from the spec) with the SW layer's
shift-add as index operations (zero padding + torch.gather), PyTorch's own conv/linear/norm kernels and no custom
kernel. Eval mode, fp32, TF32 off for cuBLAS and cuDNN, cudnn.benchmark on, torch.no_grad(). Weights are the
original's initialisation drawn from --seed (values do not matter for speed). The SW layers' index tables
are moved to the device once (ShiftWiseConv.tables_to), so the timed forward does no host-to-device copies.

    bench_torch_peer.py --device cuda --out results.json [--compile] [--batches 1,32,128] [--layer-batch 32]
    bench_torch_peer.py --device cpu --quick --out /tmp/peer.json            # smoke test (batch 1, one iteration)

Measures images/s of the whole model at each batch and ms per call of the SW layer alone at sw-tiny's four stage
shapes (C 80 56x56 B 51, C 160 28x28 B 49, C 320 14x14 B 47, C 640 7x7 B 13), each as the median of --rounds rounds
of enough iterations for --seconds seconds (CUDA events on a GPU), after warm-up. --compile adds the same under
torch.compile (static shapes; skipped with a message where torch.compile is missing or fails). The JSON is
rewritten (atomically) after every measurement, so a run stopped by a timeout leaves what it had measured:
    {"device", "torch", "model": {"batch": {"1": img/s, ...}, "ms_per_batch": {...}}, "model_compiled": {...}|null,
     "layer": {"stage0": ms, ...}, "layer_compiled": {...}|null, "layer_batch": 32, ...}
"""
import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
import sw_torch  # noqa: E402

# sw-tiny (src/Frontend/Zoo/ShiftWiseV2Options.cs: the sw-tiny preset is the defaults)
SW_TINY = dict(in_chans=3, num_classes=1000, depths=(3, 3, 18, 3), dims=(80, 160, 320, 640), width_factor=1.0,
               kernel_size=(51, 49, 47, 13, 3), ghost_ratio=0.23, N_path=2, N_rep=4, bn=True,
               layer_scale_init_value=1e-6)
# the SW layer at each sw-tiny stage: (channels, height = width, big kernel)
STAGES = [(80, 56, 51), (160, 28, 49), (320, 14, 47), (640, 7, 13)]


def log(msg):
    print(msg, flush=True)


def parse_ints(text, what):
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"bench_torch_peer: {what} must be comma-separated integers, got {text!r}")
    if not vals or any(v <= 0 for v in vals):
        raise SystemExit(f"bench_torch_peer: {what} must be positive integers, got {text!r}")
    return vals


def select_device(spec, prog):
    """The torch device that --device SPEC names (cuda, cuda:N or cpu) and its name for the results; a CUDA device
    becomes the current one (plain cuda: the current device). Exits naming PROG where torch cannot use it.
    bench/train_step_peers.py imports this too."""
    try:
        dev = torch.device(spec)
    except RuntimeError as e:
        raise SystemExit(f"{prog}: --device {spec}: {e}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(f"{prog}: --device {spec}, but this torch ({torch.__version__}) sees no CUDA device")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(dev)
        return dev, torch.cuda.get_device_name(dev)
    if dev.type == "cpu":
        return dev, f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    raise SystemExit(f"{prog}: unsupported --device {spec} (cuda or cpu)")


def set_precision(dev):
    """fp32 everywhere: TF32 off for cuBLAS and cuDNN (the peers' GEMMs are quoted without TF32)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    state = {}
    for name, get in [("cuda.matmul.allow_tf32", lambda: torch.backends.cuda.matmul.allow_tf32),
                      ("cudnn.allow_tf32", lambda: torch.backends.cudnn.allow_tf32),
                      ("float32_matmul_precision", torch.get_float32_matmul_precision)]:
        try:
            state[name] = get()
        except Exception as e:  # a torch version without the API
            state[name] = f"unknown ({type(e).__name__})"
    return state


class Timer:
    """Median seconds per call of fn: warm-up, a calibration call, then rounds of enough calls for target_s."""

    def __init__(self, dev, target_s, rounds, warmup):
        self.dev, self.target_s, self.rounds, self.warmup = dev, target_s, rounds, warmup

    def sync(self):
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)

    def run(self, fn, iters):
        if self.dev.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(iters):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000.0 / iters
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        return (time.perf_counter() - t0) / iters

    def __call__(self, fn):
        for _ in range(self.warmup):
            fn()
        self.sync()
        one = self.run(fn, 1)
        iters = max(1, min(100000, math.ceil(self.target_s / max(one, 1e-7))))
        times = [self.run(fn, iters) for _ in range(self.rounds)]
        return statistics.median(times), iters


def is_oom(e):
    return "out of memory" in str(e).lower()


def describe(e):
    """One line for a failed measurement."""
    if is_oom(e):
        return "out of memory"
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def free_memory(dev):
    if dev.type == "cuda":
        torch.cuda.empty_cache()


def try_compile(module, mode):
    """torch.compile(module) with static shapes, or (None, reason)."""
    if not hasattr(torch, "compile"):
        return None, f"torch {torch.__version__} has no torch.compile"
    try:
        kwargs = {"dynamic": False}
        if mode and mode != "default":
            kwargs["mode"] = mode
        return torch.compile(module, **kwargs), None
    except Exception as e:
        return None, f"torch.compile failed: {describe(e)}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    ap.add_argument("--out", required=True, help="results JSON (written atomically, after every measurement)")
    ap.add_argument("--compile", action="store_true", help="also measure the torch.compile'd model and layers")
    ap.add_argument("--compile-mode", default="default",
                    help="torch.compile mode (default, reduce-overhead, max-autotune, ...)")
    ap.add_argument("--batches", default=None, help="model batch sizes (default 1,32,128; 1 with --quick)")
    ap.add_argument("--layer-batch", type=int, default=None, help="SW layer batch (default 32; 1 with --quick)")
    ap.add_argument("--depths", default=None, help="blocks per stage (default sw-tiny's 3,3,18,3)")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--seconds", type=float, default=None, help="time per round (default 1.0; 0 with --quick)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds, median reported (default 3; 1 with --quick)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up calls (default 3; 1 with --quick)")
    ap.add_argument("--merge-paths", action="store_true",
                    help="merge the N_path parallel small convs of every SW layer first (off: the original as built)")
    ap.add_argument("--only-compiled", action="store_true",
                    help="with --compile: skip the eager measurements (a second run after an eager one)")
    ap.add_argument("--no-model", action="store_true", help="skip the whole-model measurements")
    ap.add_argument("--no-layer", action="store_true", help="skip the SW layer measurements")
    ap.add_argument("--seed", type=int, default=0, help="seeds the weights (the original's init) and the inputs")
    ap.add_argument("--quick", action="store_true", help="smoke test: batch 1, one warm-up, one timed call")
    args = ap.parse_args(argv)

    if args.only_compiled and not args.compile:
        raise SystemExit("bench_torch_peer: --only-compiled needs --compile")
    quick = args.quick
    eager = not args.only_compiled
    batches = parse_ints(args.batches or ("1" if quick else "1,32,128"), "--batches")
    layer_batch = args.layer_batch if args.layer_batch is not None else (1 if quick else 32)
    if layer_batch <= 0:
        raise SystemExit("bench_torch_peer: --layer-batch must be positive")
    depths = parse_ints(args.depths, "--depths") if args.depths else list(SW_TINY["depths"])
    if len(depths) != 4:
        raise SystemExit("bench_torch_peer: --depths needs four values")
    seconds = args.seconds if args.seconds is not None else (0.0 if quick else 1.0)
    rounds = args.rounds if args.rounds is not None else (1 if quick else 3)
    warmup = args.warmup if args.warmup is not None else (1 if quick else 3)

    dev, dev_name = select_device(args.device, "bench_torch_peer")
    precision = set_precision(dev)
    timer = Timer(dev, seconds, rounds, warmup)

    cfg = dict(SW_TINY, depths=tuple(depths))
    result = {
        "device": dev_name,
        "torch": torch.__version__,
        "model": None, "model_compiled": None,
        "layer": None, "layer_compiled": None, "layer_batch": layer_batch,
        "config": {**{k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
                   "image_size": args.image_size, "merged_paths": args.merge_paths, "dtype": "float32",
                   "sw_layer": "sw_torch gather (index ops), no custom kernels"},
        "layer_shapes": {f"stage{i}": {"channels": c, "height": h, "width": h, "big": b, "small": 3}
                         for i, (c, h, b) in enumerate(STAGES)},
        "precision": precision,
        "timing": {"seconds_per_round": seconds, "rounds": rounds, "warmup": warmup, "statistic": "median",
                   "clock": "cuda events" if dev.type == "cuda" else "perf_counter", "quick": quick},
        "notes": [],
    }

    def save():
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        tmp = f"{args.out}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        os.replace(tmp, args.out)

    def note(msg):
        log(msg)
        result["notes"].append(msg)
        save()

    log(f"bench_torch_peer: {dev_name}, torch {torch.__version__}, fp32"
        f"{', TF32 off, cudnn.benchmark on' if dev.type == 'cuda' else ''}; "
        f"{seconds:g} s x {rounds} rounds after {warmup} warm-up calls")
    save()

    def measure_model(model, key, label):
        result[key] = {"batch": {}, "ms_per_batch": {}}
        for b in batches:
            x = torch.randn(b, cfg["in_chans"], args.image_size, args.image_size, device=dev)
            try:
                with torch.no_grad():
                    t, iters = timer(lambda: model(x))
            except Exception as e:
                free_memory(dev)
                why = describe(e)
                note(f"{label} batch {b}: failed ({why})")
                result[key]["batch"][str(b)] = None
                result[key]["ms_per_batch"][str(b)] = None
                save()
                if key == "model_compiled" and not is_oom(e):
                    return False
                continue
            result[key]["batch"][str(b)] = b / t
            result[key]["ms_per_batch"][str(b)] = t * 1e3
            log(f"  {label} batch {b}: {b / t:.1f} images/s ({t * 1e3:.3f} ms per batch, {iters} calls per round)")
            save()
        return True

    def measure_layers(compiled, key, label):
        result[key] = {}
        for i, (c, h, big) in enumerate(STAGES):
            stage = f"stage{i}"
            torch.manual_seed(args.seed)
            layer = sw_torch.ShiftWiseConv(c, big, cfg["kernel_size"][-1], cfg["ghost_ratio"], cfg["N_path"],
                                           cfg["N_rep"], cfg["bn"])
            torch.manual_seed(args.seed + 1 + i)
            layer = layer.to(dev).eval().tables_to(dev)
            if args.merge_paths:
                layer.merge_branches()
            fn = layer
            if compiled:
                fn, why = try_compile(layer, args.compile_mode)
                if fn is None:
                    note(f"{label}: skipped ({why})")
                    result[key] = None
                    save()
                    return
            x = torch.randn(layer_batch, c, h, h, device=dev)
            try:
                with torch.no_grad():
                    t, iters = timer(lambda: fn(x))
            except Exception as e:
                free_memory(dev)
                why = describe(e)
                note(f"{label} {stage}: failed ({why})")
                result[key][stage] = None
                save()
                continue
            result[key][stage] = t * 1e3
            log(f"  {label} {stage} (C {c}, {h}x{h}, B {big}, batch {layer_batch}): {t * 1e3:.4f} ms "
                f"({iters} calls per round)")
            save()

    model = None
    if not args.no_model:
        torch.manual_seed(args.seed)
        t0 = time.perf_counter()
        model = sw_torch.ShiftWiseV2(**cfg)  # its SW layers reseed torch and numpy with 123 (as the original)
        torch.manual_seed(args.seed)
        model.apply(model._init_weights)  # the original's init again, now drawn from --seed
        model = model.to(dev).eval()
        for m in model.modules():
            if isinstance(m, sw_torch.ShiftWiseConv):
                m.tables_to(dev)
        if args.merge_paths:
            model.reparameterize()
        log(f"model: ShiftWise_v2 depths {','.join(map(str, depths))} dims 80,160,320,640 kernels 51,49,47,13,3 "
            f"N_rep 4 N_path 2{' (merged)' if args.merge_paths else ''} ghost 0.23, "
            f"{sum(p.numel() for p in model.parameters()):,} parameters, built in {time.perf_counter() - t0:.1f} s")
        if eager:
            log("eager model:")
            measure_model(model, "model", "eager")
    if eager and not args.no_layer:
        log(f"eager SW layer (batch {layer_batch}):")
        measure_layers(False, "layer", "eager layer")
    if args.compile:
        if not args.no_layer:
            log(f"compiled SW layer (batch {layer_batch}, torch.compile mode {args.compile_mode}):")
            measure_layers(True, "layer_compiled", "compiled layer")
        if model is not None:
            log(f"compiled model (torch.compile mode {args.compile_mode}, static shapes; the first call of each "
                "batch compiles):")
            cmodel, why = try_compile(model, args.compile_mode)
            if cmodel is None:
                note(f"compiled model: skipped ({why})")
            else:
                t0 = time.perf_counter()
                ok = measure_model(cmodel, "model_compiled", "compiled")
                log(f"  compiled model: {time.perf_counter() - t0:.0f} s including compilation"
                    + ("" if ok else " (stopped after a compile failure)"))
        save()

    # table
    log("")
    log(f"PyTorch peer on {dev_name} (torch {torch.__version__}, fp32{', TF32 off' if dev.type == 'cuda' else ''})")
    if result["model"] or result["model_compiled"]:
        log(f"{'batch':>6} {'eager img/s':>12} {'compiled img/s':>15}")
        for b in batches:
            e = (result["model"] or {}).get("batch", {}).get(str(b))
            c = (result["model_compiled"] or {}).get("batch", {}).get(str(b))
            log(f"{b:>6} {'-' if e is None else format(e, '.1f'):>12} {'-' if c is None else format(c, '.1f'):>15}")
    if result["layer"] or result["layer_compiled"]:
        log(f"SW layer, batch {layer_batch}:")
        log(f"{'stage':>7} {'shape':>20} {'eager ms':>10} {'compiled ms':>12}")
        for i, (c, h, big) in enumerate(STAGES):
            s = f"stage{i}"
            e = (result["layer"] or {}).get(s)
            cm = (result["layer_compiled"] or {}).get(s)
            log(f"{s:>7} {f'C{c} {h}x{h} B{big}':>20} {'-' if e is None else format(e, '.4f'):>10} "
                f"{'-' if cm is None else format(cm, '.4f'):>12}")
    save()
    log(f"wrote {args.out}")
    # an eager measurement that failed fails the run; a compiled one is a note (the compiled peer is optional)
    return 1 if any(n.startswith("eager") and "failed" in n for n in result["notes"]) else 0


if __name__ == "__main__":
    sys.exit(main())
