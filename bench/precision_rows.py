#!/usr/bin/python3
"""The rows and ratio lines of bench/precision_peers.py (no torch needed): swc's rows read from `swc bench --json`,
issue 22's targets for swc bf16, and the markdown table. precision_peers.py --self-test covers them."""
import json

TORCH_PEERS = ("eager-fp32", "eager-bf16", "eager-fp16", "compile-bf16", "unireplknet-bf16")
SWC_PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
LABELS = {"eager-fp32": "PyTorch eager fp32", "eager-bf16": "PyTorch autocast-bf16 eager",
          "eager-fp16": "PyTorch autocast-fp16 eager", "compile-bf16": "torch.compile (autocast-bf16)",
          "unireplknet-bf16": "UniRepLKNet-T (bf16 autocast, channels_last, reparam.)",
          **{f"swc-{p}": f"swc {p}" for p in SWC_PRECISIONS}}
# (other row, target): swc bf16 images/s must be at least target x the other row's (issue 22)
TARGETS = (("swc-fp32", 2.5), ("eager-bf16", 1.5), ("compile-bf16", 1.2), ("unireplknet-bf16", 1.0))


def describe(e):
    text = str(e).strip()
    if "out of memory" in text.lower():
        return "out of memory"
    first = text.splitlines()[0][:300] if text else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def new_row(name, source):
    return {"name": name, "label": LABELS[name], "source": source, "status": "not run", "reason": None,
            "images_per_s": None, "ms_per_batch": None}


def format_row(r):
    ips = "-" if r["images_per_s"] is None else f"{r['images_per_s']:.1f}"
    ms = "-" if r["ms_per_batch"] is None else f"{r['ms_per_batch']:.2f}"
    why = f" ({r['reason']})" if r.get("reason") else ""
    return f"| {r['label']} | {r['source']} | {ips} | {ms} | {r['status']}{why} |".replace("\n", " ")


# ----------------------------------------------------------------------------------------------------------------
# swc's rows

def read_swc(precision, path, batch):
    """A row from `swc bench --json` (images_per_s required); notes when its batch or precision differ."""
    row, notes = new_row(f"swc-{precision}", path), []
    try:
        with open(path) as f:
            data = json.load(f)
        ips = data.get("images_per_s") if isinstance(data, dict) else None
        if not isinstance(ips, (int, float)) or isinstance(ips, bool) or not ips > 0:
            raise ValueError(f"images_per_s must be a positive number, got {ips!r}")
    except (OSError, ValueError) as e:
        row.update(status="failed", reason=f"unreadable: {describe(e)}")
        return row, notes
    row.update(status="ok", images_per_s=float(ips), ms_per_batch=data.get("ms_per_batch"),
               batch=data.get("batch"), device=data.get("device"))
    if data.get("batch") not in (None, batch):
        notes.append(f"{path}: batch {data['batch']}, this run {batch}: the ratios compare different work")
    got = data.get("precision")  # swc may record it; the flag the file was given under is what the row claims
    if got is not None and str(got).lower() != precision:
        notes.append(f"{path}: given as {precision} but records precision {got}")
    if precision == "tf32" and data.get("tf32") is False:
        notes.append(f"{path}: given as tf32 but records tf32 false")
    return row, notes


def ratio_lines(rows):
    by = {r["name"]: r for r in rows}
    swc = by.get("swc-bf16") or new_row("swc-bf16", "-")
    out = []
    for other, target in TARGETS:
        o = by.get(other) or new_row(other, "-")
        what = f"swc bf16 vs {o['label']}"
        if swc["images_per_s"] is None or o["images_per_s"] is None:
            missing = [r for r in (swc, o) if r["images_per_s"] is None]
            why = "; ".join(f"{r['label']}: {r['status']}{' - ' + r['reason'] if r.get('reason') else ''}"
                            for r in missing)
            out.append({"what": what, "ratio": None, "target": target, "verdict": "not measured",
                        "line": f"{what}: not measured ({why}; target >= {target:g}x)"})
            continue
        ratio = swc["images_per_s"] / o["images_per_s"]
        verdict = "met" if ratio >= target else "not met"
        out.append({"what": what, "ratio": ratio, "target": target, "verdict": verdict,
                    "line": f"{what}: {ratio:.2f}x ({swc['images_per_s']:.1f} vs {o['images_per_s']:.1f} images/s; "
                            f"target >= {target:g}x): {verdict}"})
    return out


# ----------------------------------------------------------------------------------------------------------------


def markdown(result):
    c = result["config"]
    out = [f"# sw-tiny in 16 bits: batch {c['batch']}, {c['image_size']}², {result['device']}", "",
           f"torch {result['torch']}; PyTorch fp32 rows with TF32 off; images/s = batch / median call time over "
           f"interleaved rounds ({result['timing']['clock']}).", "",
           "| row | source | images/s | ms per batch | status |", "|---|---|---|---|---|"]
    out += [format_row(r) for r in result["rows"]]
    out += ["", "Targets (issue 22, swc bf16):"] + [f"- {r['line']}" for r in result["ratios"]]
    if result["notes"]:
        out += ["", "Notes:"] + [f"- {n}" for n in result["notes"]]
    return "\n".join(out) + "\n"
