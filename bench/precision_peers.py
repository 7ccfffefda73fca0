#!/usr/bin/python3
"""sw-tiny inference in 16 bits, side by side: PyTorch peers measured here, swc's rows read from `swc bench --json`.

Issue 22's throughput lines (batch 128, 224², one GPU). PyTorch rows, measured in this process in interleaved rounds
(PERFORMANCE.md: one call per peer per round, start position rotating; a row's images/s = batch / median call time,
CUDA events around each call on a GPU, perf_counter on the CPU), all eval mode under torch.no_grad():

  eager-fp32        tools/fixtures/sw_torch.py's ShiftWise_v2 (sw-tiny; the SW shift-add as gather index ops) in
                    eager PyTorch, fp32, TF32 off for cuBLAS and cuDNN (cudnn.benchmark on)
  eager-bf16        the same model under torch.autocast(dtype=bfloat16)      ("PyTorch autocast-bf16 eager")
  eager-fp16        the same model under torch.autocast(dtype=float16)
  compile-bf16      torch.compile(model) (default mode, static shapes) under bf16 autocast ("torch.compile"); where
                    torch has no torch.compile (Debian's 1.13) the row says "not available in torch X"
  unireplknet-bf16  bench/unireplknet.py's UniRepLKNet-T, re-parameterised, channels_last, bf16 autocast (the
                    headline row: the large-kernel network swc's sw-tiny should beat)

swc rows: --swc PRECISION=FILE (fp32, tf32, bf16, fp16), each FILE written by
    swc bench sw-tiny --device cuda --batch 128 --precision PRECISION --json FILE
of which "images_per_s" (and "batch", "ms_per_batch", "device" when present) are read.

Ratio lines (issue 22's targets for swc bf16), each "met", "not met" or "not measured (why)":
    swc bf16 >= 2.5x swc fp32;  >= 1.5x PyTorch autocast-bf16 eager;  >= 1.2x torch.compile;
    and the goal > 1.0x UniRepLKNet-T (bf16, channels_last, re-parameterised).

    precision_peers.py --swc fp32=r/fp32.json --swc tf32=r/tf32.json --swc bf16=r/bf16.json --swc fp16=r/fp16.json \\
                       --json r/precision-peers.json [--time-budget 240]
    precision_peers.py --device cpu --batch 2 --image-size 64 --depths 1,1,1,1 --json /tmp/p.json   # small run
    precision_peers.py --self-test                                                                    # CPU, seconds
JSON (--json, rewritten after every phase; a markdown table beside it, .md): {"device", "torch", "config",
"settings", "timing", "rows": [{"name", "label", "source", "status", "reason", "images_per_s", "ms_per_batch", ...}],
"ratios": [{"what", "ratio", "target", "verdict", "line"}], "notes"}. Exit 1 when eager-fp32 was asked for and not
measured or an swc JSON could not be read; a skipped or failed optional row is reported, not an error.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tools", "fixtures"))
sys.path.insert(0, os.path.join(HERE, "..", "tools", "gpu"))
import sw_torch  # noqa: E402
from bench_torch_peer import SW_TINY, select_device  # noqa: E402  (the GPU peer's sw-tiny and --device handling)
from precision_rows import (SWC_PRECISIONS, TORCH_PEERS, describe, format_row, markdown, new_row,  # noqa: E402
                            ratio_lines, read_swc)

AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def log(msg=""):
    print(msg, flush=True)


class Peer:
    def __init__(self, name, fn, x, autocast, dev):
        self.name, self.fn, self.x, self.dtype, self.dev = name, fn, x, AUTOCAST[autocast], dev
        self.samples = []
        self.row = new_row(name, f"measured here (torch {torch.__version__})")

    def __call__(self):
        with torch.no_grad():
            if self.dtype is None:
                return self.fn(self.x)
            with torch.autocast(self.dev.type, dtype=self.dtype):
                return self.fn(self.x)

    def autocast_problem(self):
        """None, or why autocast to this dtype does not work here: torch 1.13's CPU autocast refuses float16 (or
        disables itself with a warning), and such a row would otherwise time fp32 under a 16-bit name."""
        if self.dtype is None:
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with torch.autocast(self.dev.type, dtype=self.dtype):
                    on = torch.is_autocast_enabled() if self.dev.type == "cuda" else torch.is_autocast_cpu_enabled()
        except RuntimeError as e:
            on, why = False, describe(e)
        else:
            why = "it disables itself"
        return None if on else f"autocast to {self.dtype} not supported on {self.dev.type} in torch " \
                               f"{torch.__version__} ({why})"


def build_sw_tiny(args, dev):
    cfg = dict(SW_TINY, depths=tuple(args.depths), dims=tuple(args.dims))
    torch.manual_seed(args.seed)
    model = sw_torch.ShiftWiseV2(**cfg)  # its SW layers reseed torch and numpy with 123, as the original
    torch.manual_seed(args.seed)
    model.apply(model._init_weights)  # the original's init from --seed (values do not change the speed)
    model = model.to(dev).eval()
    for m in model.modules():
        if isinstance(m, sw_torch.ShiftWiseConv):
            m.tables_to(dev)  # the index tables on the device: no host copies in the timed calls
    return model


def time_call(peer, cuda):
    if cuda:
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        peer()
        e.record()
        e.synchronize()
        return s.elapsed_time(e)
    t0 = time.perf_counter()
    peer()
    return (time.perf_counter() - t0) * 1e3


def summarise(peer, batch):
    if peer.samples:
        ms = statistics.median(peer.samples)
        peer.row.update(status="ok", reason=None, ms_per_batch=ms, images_per_s=batch / ms * 1e3,
                        calls_timed=len(peer.samples), ms_min=min(peer.samples), ms_max=max(peer.samples))


def set_settings(dev):
    # fp32 rows are quoted without TF32 (PERFORMANCE.md: state the TF32 setting of every GEMM peer)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = dev.type == "cuda"
    return {"cuda.matmul.allow_tf32": False, "cudnn.allow_tf32": False,
            "cudnn.benchmark": torch.backends.cudnn.benchmark, "torch_compile": hasattr(torch, "compile")}


def measure(args, wanted, save, deadline):
    """Builds and times the wanted PyTorch peers; returns their rows (save() is called after every phase)."""
    dev, _ = select_device(args.device, "precision_peers")
    cuda = dev.type == "cuda"
    left = lambda: deadline - time.perf_counter()  # noqa: E731
    x = torch.randn(args.batch, 3, args.image_size, args.image_size,
                    generator=torch.Generator().manual_seed(args.seed)).to(dev)
    peers, rows = {}, {n: new_row(n, f"measured here (torch {torch.__version__})") for n in TORCH_PEERS}
    for n in TORCH_PEERS:
        if n not in wanted:
            rows[n].update(status="skipped", reason="not in --peers")
    model = build_sw_tiny(args, dev) if any(n.startswith(("eager", "compile")) for n in wanted) else None
    active = []

    def warm(p):
        try:
            why = p.autocast_problem()
            if why:
                p.row.update(status="skipped", reason=why)
                log(f"  {p.name}: skipped ({why})")
                return False
            t0 = time.perf_counter()
            for _ in range(args.warmup):
                p()
            if cuda:
                torch.cuda.synchronize(dev)
            p.row["warmup_s"] = time.perf_counter() - t0
            p.row.update(status="not timed")
            return True
        except Exception as e:  # noqa: BLE001 (a failed peer is reported; the others go on)
            p.row.update(status="failed", reason=describe(e))
            p.fn = None
            if cuda:
                torch.cuda.empty_cache()
            log(f"  {p.name}: {p.row['status']} ({p.row['reason']})")
            return False

    def rounds(phase):
        for r in range(args.repeats):
            if left() < 0:
                log(f"  phase {phase}: stopped after {r} of {args.repeats} rounds (--time-budget)")
                break
            k = r % len(active)
            for p in active[k:] + active[:k]:
                p.samples.append(time_call(p, cuda))
        for p in active:
            summarise(p, args.batch)
            log(f"  {format_row(p.row)}")

    for n in ("eager-fp32", "eager-bf16", "eager-fp16", "unireplknet-bf16"):
        if n not in wanted:
            continue
        if n == "unireplknet-bf16":
            import unireplknet  # noqa: E402 (only when its row is wanted)
            fn = unireplknet.deployed(dev, args.seed)
            xin = x.contiguous(memory_format=torch.channels_last)
            p = Peer(n, fn, xin, "bf16", dev)
        else:
            p = Peer(n, model, x, n.split("-")[1], dev)
        peers[n] = p
        log(f"{n}: warm-up")
        if warm(p):
            active.append(p)
    if active:
        log(f"phase 1: {args.repeats} interleaved rounds over {', '.join(p.name for p in active)}")
        rounds(1)
    for p in peers.values():
        rows[p.name] = p.row
    save(list(rows.values()))

    if "compile-bf16" in wanted:
        row = rows["compile-bf16"]
        if not hasattr(torch, "compile"):
            row.update(status="skipped", reason=f"not available in torch {torch.__version__}")
        elif left() < args.compile_min_s:
            row.update(status="skipped", reason=f"only {max(0, left()):.0f} s of --time-budget left")
        else:
            log("compile-bf16: torch.compile (default mode, static shapes); the warm-up compiles")
            p = Peer("compile-bf16", None, x, "bf16", dev)
            rows["compile-bf16"] = p.row
            p.row.update(status="compiling", reason="a run stopped here was compiling")
            save(list(rows.values()))
            try:
                p.fn = torch.compile(model, dynamic=False)
                ok = warm(p)
            except Exception as e:  # noqa: BLE001
                p.row.update(status="failed", reason=describe(e))
                ok = False
            rows["compile-bf16"] = p.row
            if ok:
                active.append(p)
                log(f"phase 2: {args.repeats} interleaved rounds over {', '.join(q.name for q in active)}")
                rounds(2)
        r = rows["compile-bf16"]
        log(f"  compile-bf16: {r['status']}{' (' + r['reason'] + ')' if r.get('reason') else ''}")
    return list(rows.values())


def bench_one(name, args):
    """One PyTorch row on its own (unireplknet.py --bench uses it): the same warm-up and rounds."""
    ns = argparse.Namespace(device=args.device, batch=args.batch, image_size=args.image_size, seed=0,
                            repeats=args.repeats, warmup=args.warmup, compile_min_s=0,
                            depths=list(SW_TINY["depths"]), dims=list(SW_TINY["dims"]))
    set_settings(select_device(args.device, "precision_peers")[0])
    rows = measure(ns, {name}, lambda rows: None, time.perf_counter() + 1e9)
    return next(r for r in rows if r["name"] == name)


# ----------------------------------------------------------------------------------------------------------------
# Report

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=10, help="timed rounds per phase; median reported (default 10)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed calls per peer (default 3; compile happens here)")
    ap.add_argument("--peers", default=",".join(TORCH_PEERS), help=f"some of {','.join(TORCH_PEERS)} (default all)")
    ap.add_argument("--swc", action="append", default=[], metavar="PRECISION=FILE",
                    help="an swc bench --json file and the --precision it ran with (repeatable)")
    ap.add_argument("--depths", default="3,3,18,3", help="sw-tiny's blocks per stage (override for small runs)")
    ap.add_argument("--dims", default="80,160,320,640", help="sw-tiny's channels per stage")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-budget", type=float, default=None,
                    help="seconds: stop timing rounds when spent; skip torch.compile when < --compile-min-s left")
    ap.add_argument("--compile-min-s", type=float, default=90.0)
    ap.add_argument("--json", help="results JSON; a markdown table is written beside it (.md)")
    ap.add_argument("--self-test", action="store_true", help="CPU: a tiny run with made-up swc JSONs")
    args = ap.parse_args(argv)
    try:
        args.depths = [int(v) for v in args.depths.split(",")]
        args.dims = [int(v) for v in args.dims.split(",")]
    except ValueError:
        ap.error("--depths and --dims take four comma-separated integers")
    if len(args.depths) != 4 or len(args.dims) != 4:
        ap.error("--depths and --dims take four comma-separated integers")
    for name in ("batch", "image_size", "repeats", "warmup"):
        if getattr(args, name) <= 0:
            ap.error(f"--{name.replace('_', '-')} must be positive")
    return args


def run(args):
    t_start = time.perf_counter()
    deadline = t_start + (args.time_budget if args.time_budget else 1e9)
    dev, dev_name = select_device(args.device, "precision_peers")
    wanted = {p.strip() for p in args.peers.split(",") if p.strip()}
    if not wanted or wanted - set(TORCH_PEERS):
        raise SystemExit(f"precision_peers: --peers takes some of {','.join(TORCH_PEERS)}, got {args.peers!r}")
    result = {"device": dev_name, "torch": torch.__version__, "python": platform.python_version(),
              "config": {"model": "sw-tiny", "depths": args.depths, "dims": args.dims, "batch": args.batch,
                         "image_size": args.image_size, "mode": "eval, torch.no_grad()", "seed": args.seed},
              "settings": set_settings(dev),
              "timing": {"warmup_calls": args.warmup, "rounds_per_phase": args.repeats, "statistic": "median",
                         "clock": "CUDA events around each call" if dev.type == "cuda" else "perf_counter"},
              "rows": [], "ratios": [], "notes": []}
    swc_rows, swc_ok = [], True
    for spec in args.swc:
        prec, sep, path = spec.partition("=")
        prec = prec.strip().lower()
        if not sep or prec not in SWC_PRECISIONS or not path:
            raise SystemExit(f"precision_peers: --swc takes PRECISION=FILE with PRECISION one of "
                             f"{','.join(SWC_PRECISIONS)}, got {spec!r}")
        row, notes = read_swc(prec, path, args.batch)
        swc_ok &= row["status"] == "ok"
        swc_rows.append(row)
        result["notes"] += notes
    given = {r["name"] for r in swc_rows}
    swc_rows += [dict(new_row(f"swc-{p}", "-"), status="not given", reason="no --swc file")
                 for p in SWC_PRECISIONS if f"swc-{p}" not in given]
    swc_rows.sort(key=lambda r: SWC_PRECISIONS.index(r["name"][4:]))

    def save(torch_rows):
        result["rows"] = swc_rows + torch_rows
        result["ratios"] = ratio_lines(result["rows"])
        if args.json:
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            md = (args.json[:-5] if args.json.endswith(".json") else args.json) + ".md"
            for path, text in ((args.json, json.dumps(result, indent=2) + "\n"), (md, markdown(result))):
                with open(path + ".tmp", "w") as f:
                    f.write(text)
                os.replace(path + ".tmp", path)

    log(f"precision_peers: {dev_name}, torch {torch.__version__}; sw-tiny depths {args.depths} batch {args.batch} "
        f"{args.image_size}²; {args.warmup} warm-up calls, {args.repeats} rounds")
    save([])
    rows = measure(args, wanted, save, deadline)
    save(rows)
    log("")
    log(markdown(result).rstrip())
    log(f"({time.perf_counter() - t_start:.0f} s)")
    fp32 = next(r for r in rows if r["name"] == "eager-fp32")
    return 0 if swc_ok and ("eager-fp32" not in wanted or fp32["status"] == "ok") else 1


def self_test():
    import tempfile
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for prec, ips in (("fp32", 100.0), ("bf16", 300.0), ("fp16", 310.0)):
            path = os.path.join(tmp, f"{prec}.json")
            with open(path, "w") as f:
                json.dump({"images_per_s": ips, "ms_per_batch": 2000 / ips, "batch": 2, "tf32": False}, f)
            files += ["--swc", f"{prec}={path}"]
        out = os.path.join(tmp, "p.json")
        rc = main(["--device", "cpu", "--batch", "2", "--image-size", "32", "--depths", "1,1,1,1",
                   "--dims", "16,32,64,128", "--warmup", "1", "--repeats", "2", "--json", out] + files)
        assert rc == 0, rc
        res = json.load(open(out))
        rows = {r["name"]: r for r in res["rows"]}
        assert rows["eager-fp32"]["status"] == "ok" and rows["eager-fp32"]["calls_timed"] == 2, rows["eager-fp32"]
        assert rows["eager-bf16"]["status"] == "ok", rows["eager-bf16"]
        assert rows["eager-fp16"]["status"] in ("ok", "skipped"), rows["eager-fp16"]  # 1.13's CPU: no fp16 autocast
        assert rows["unireplknet-bf16"]["status"] == "ok", rows["unireplknet-bf16"]
        if not hasattr(torch, "compile"):
            assert rows["compile-bf16"]["reason"] == f"not available in torch {torch.__version__}", rows
        assert rows["swc-tf32"]["status"] == "not given" and rows["swc-bf16"]["images_per_s"] == 300.0
        lines = {r["what"]: r for r in res["ratios"]}
        first = lines["swc bf16 vs swc fp32"]
        assert first["verdict"] == "met" and abs(first["ratio"] - 3.0) < 1e-12, first
        assert all(r["verdict"] in ("met", "not met", "not measured") for r in res["ratios"])
        assert os.path.isfile(os.path.join(tmp, "p.md"))
        # a bad swc file fails the run but still reports; the ratio then reads "not measured"
        bad = os.path.join(tmp, "bad.json")
        open(bad, "w").write("{}")
        row, _ = read_swc("bf16", bad, 2)
        assert row["status"] == "failed" and "images_per_s" in row["reason"], row
        r = ratio_lines([row, dict(new_row("swc-fp32", "x"), images_per_s=1.0)])[0]
        assert r["verdict"] == "not measured" and r["line"].startswith("swc bf16 vs swc fp32: not measured"), r
        r = ratio_lines([dict(new_row("swc-bf16", "x"), images_per_s=2.4), dict(new_row("swc-fp32", "x"),
                                                                                  images_per_s=1.0)])[0]
        assert r["verdict"] == "not met" and r["line"].endswith("target >= 2.5x): not met"), r
    log(f"self-test passed ({time.perf_counter() - t0:.1f} s)")
    return 0


def main(argv=None):
    args = parse_args(argv)
    return self_test() if args.self_test else run(args)


if __name__ == "__main__":
    sys.exit(main())
