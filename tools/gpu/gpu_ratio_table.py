#!/usr/bin/env python3
"""The table at the end of scripts/gpu-check.sh: swc on the GPU against the PyTorch peer, from the JSON files.

    gpu_ratio_table.py RESULTS_DIR [--gpu-name NAME] [--sm-count N] [--sm-mhz MHZ] [--note TEXT]

Reads RESULTS_DIR/swc-tiny-b{1,32,128}[-graph].json and swc-layer-s{0..3}.json (written by `swc bench --json`:
images_per_s, ms_per_batch, batch, flops_per_image), torch.json and torch-compiled.json (tools/gpu/bench_torch_peer.py).
Prints sw-tiny images/s ours vs PyTorch (eager and torch.compile), the SW layer's ms per call ours vs PyTorch per
stage, and the SW layer's achieved TFLOP/s (flops_per_image x batch / time) against the FP32 peak
SMs x 128 FP32 lanes x 2 FLOP per FMA x max SM clock. Also writes RESULTS_DIR/ratios.json. Missing numbers print as
'-'. The defaults of the options come from the environment (GPU_NAME, SM_COUNT, SM_MAX_MHZ, COMPILE_NOTE).
Standard library only.
"""
import argparse
import json
import os
import sys

BATCHES = (1, 32, 128)
STAGES = [(80, 56, 51), (160, 28, 49), (320, 14, 47), (640, 7, 13)]
LANES_PER_SM = 128


def num(v):
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def env_number(name, kind):
    try:
        return kind(os.environ.get(name, "").strip())
    except ValueError:
        return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results")
    ap.add_argument("--gpu-name", default=os.environ.get("GPU_NAME") or None)
    ap.add_argument("--sm-count", type=int, default=env_number("SM_COUNT", int))
    ap.add_argument("--sm-mhz", type=float, default=env_number("SM_MAX_MHZ", float))
    ap.add_argument("--note", default=os.environ.get("COMPILE_NOTE") or None)
    args = ap.parse_args(argv)
    R = args.results
    if not os.path.isdir(R):
        sys.exit(f"gpu_ratio_table: {R} is not a folder")
    bad, cache = [], {}

    def load(name):
        if name not in cache:
            path, data = os.path.join(R, name), {}
            if os.path.exists(path):
                try:
                    with open(path) as f:
                        data = json.load(f)
                except (OSError, ValueError):
                    bad.append(name)
            cache[name] = data if isinstance(data, dict) else {}
        return cache[name]

    torch_e, torch_c = load("torch.json"), load("torch-compiled.json")
    dev = args.gpu_name or torch_e.get("device") or "unknown GPU"
    out = {"device": dev, "torch": torch_e.get("torch") or torch_c.get("torch"), "model": {}, "layer": {}}

    print(f"ShiftWise sw-tiny on {dev}: swc (CUDA) against PyTorch {out['torch'] or '?'} "
          "(SW layer as gather index ops, no custom kernels; fp32, TF32 off)")
    print()
    print("sw-tiny, images/s; ratios = swc / PyTorch (> 1: swc is faster); 'best' = the faster of swc and swc graph")
    print(f"{'batch':>5} {'swc':>9} {'swc graph':>10} {'torch':>9} {'compiled':>9} {'swc/torch':>10} "
          f"{'graph/torch':>12} {'best/compiled':>14}")
    peer_e = (torch_e.get("model") or {}).get("batch") or {}
    peer_c = (torch_c.get("model_compiled") or torch_e.get("model_compiled") or {}).get("batch") or {}
    for b in BATCHES:
        ours = num(load(f"swc-tiny-b{b}.json").get("images_per_s"))
        graph = num(load(f"swc-tiny-b{b}-graph.json").get("images_per_s"))
        te, tc = num(peer_e.get(str(b))), num(peer_c.get(str(b)))
        best = max([v for v in (ours, graph) if v is not None], default=None)
        row = {"swc": ours, "swc_graph": graph, "torch": te, "torch_compiled": tc, "swc_vs_torch": ratio(ours, te),
               "graph_vs_torch": ratio(graph, te), "best_vs_compiled": ratio(best, tc)}
        out["model"][str(b)] = row
        print(f"{b:>5} {fmt(ours):>9} {fmt(graph):>10} {fmt(te):>9} {fmt(tc):>9} "
              f"{fmt(row['swc_vs_torch'], '.2f'):>10} {fmt(row['graph_vs_torch'], '.2f'):>12} "
              f"{fmt(row['best_vs_compiled'], '.2f'):>14}")

    peak = None
    if args.sm_count and args.sm_mhz:
        peak = args.sm_count * LANES_PER_SM * 2 * args.sm_mhz * 1e6
    out["fp32_peak_tflops"] = None if peak is None else peak / 1e12
    layer_e = torch_e.get("layer") or {}
    layer_c = torch_c.get("layer_compiled") or torch_e.get("layer_compiled") or {}
    peer_lb = torch_e.get("layer_batch") or torch_c.get("layer_batch")
    print()
    print(f"SW layer at sw-tiny's stage shapes, ms per call at batch 32 (PyTorch at batch {peer_lb or '?'}); "
          "speed-up = PyTorch ms / swc ms")
    print(f"{'stage':>5} {'shape':>15} {'swc ms':>9} {'torch ms':>9} {'compiled':>9} {'speed-up':>9} "
          f"{'vs compiled':>12} {'TFLOP/s':>8} {'of peak':>8}")
    for i, (c, h, k) in enumerate(STAGES):
        j = load(f"swc-layer-s{i}.json")
        ms, fl = num(j.get("ms_per_batch")), num(j.get("flops_per_image"))
        bt = num(j.get("batch")) or 32.0
        te, tc = num(layer_e.get(f"stage{i}")), num(layer_c.get(f"stage{i}"))
        tfl = None if ms is None or fl is None or ms <= 0 else fl * bt / (ms / 1e3) / 1e12
        share = None if tfl is None or peak is None else tfl * 1e12 / peak
        out["layer"][f"stage{i}"] = {"swc_ms": ms, "torch_ms": te, "torch_compiled_ms": tc,
                                     "speedup_vs_torch": ratio(te, ms), "speedup_vs_compiled": ratio(tc, ms),
                                     "tflops": tfl, "fraction_of_peak": share, "batch": bt}
        pct = "-" if share is None else f"{100 * share:.0f}%"
        print(f"{'s' + str(i):>5} {f'C{c} {h}x{h} B{k}':>15} {fmt(ms, '.4f'):>9} {fmt(te, '.4f'):>9} "
              f"{fmt(tc, '.4f'):>9} {fmt(ratio(te, ms), '.1f'):>9} {fmt(ratio(tc, ms), '.1f'):>12} "
              f"{fmt(tfl, '.2f'):>8} {pct:>8}")
    swc_lb = {num(load(f"swc-layer-s{i}.json").get("batch")) for i in range(len(STAGES))} - {None}
    if peer_lb and swc_lb and swc_lb != {float(peer_lb)}:
        theirs = ", ".join(f"{b:g}" for b in sorted(swc_lb))
        print(f"warning: the PyTorch layer batch ({peer_lb}) is not swc's ({theirs}): those speed-ups are not like "
              "for like")
    print()
    if peak is not None:
        print(f"FP32 peak {peak / 1e12:.1f} TFLOP/s = {args.sm_count} SMs x {LANES_PER_SM} FP32 lanes x 2 FLOP "
              f"per FMA x {args.sm_mhz:.0f} MHz (the max SM clock nvidia-smi reports; assumes {LANES_PER_SM} FP32 "
              "lanes per SM, true of Hopper, Ada and Ampere GA10x, not of A100 or V100 with 64). "
              "TFLOP/s = swc's flops_per_image x batch / time.")
    else:
        print("FP32 peak unknown (needs the SM count from torch and the max SM clock from nvidia-smi)")
    if args.note:
        print(args.note)
    for name in bad:
        print(f"warning: {name} is not valid JSON")
    tmp = os.path.join(R, f".ratios.json.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    os.replace(tmp, os.path.join(R, "ratios.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
