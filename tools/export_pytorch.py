#!/usr/bin/env python3
"""Export a ShiftWise_v2 PyTorch checkpoint to weights.safetensors + model.json for ShiftWise.Compiler.

Run it in your own PyTorch environment (any torch >= 1.10 with numpy; nothing else is needed):

    python3 tools/export_pytorch.py CHECKPOINT.pth OUT_DIR [--model sw-tiny|sw-small|sw-base|sw-large]
                                    [--kernel-size 51,49,47,13,3] [--n-rep 4] [--ghost-ratio 0.23]
                                    [--unsafe-load]
    python3 tools/export_pytorch.py --self-test      (needs tools/fixtures/sw_torch.py)

Input: a torch.save() file, either the official training layout {'model': state_dict, ...} (also
{'state_dict': ...}) or a bare state_dict; a DDP 'module.' prefix is stripped. It is loaded on the CPU with
weights_only=True when the installed torch supports it. Official checkpoints also pickle the training arguments
(an argparse.Namespace); torch versions with torch.serialization.add_safe_globals accept that safely, older ones
refuse it, and then --unsafe-load (full pickle: only for files you trust) is the way in.

Output (each file written to a temporary name, then renamed):
  OUT_DIR/weights.safetensors  every state_dict tensor as float32 (num_batches_tracked dropped), names as in
                               the checkpoint. A merged checkpoint (Block.reparameterize(): one
                               'large_kernel.LoRA.weight' per block) is renamed to 'large_kernel.LoRAs.0.weight'.
  OUT_DIR/model.json           {"in_chans", "num_classes", "depths", "dims", "kernel_size", "ghost_ratio", "N_path",
                               "N_rep", "bn", "layer_scale_init_value", "width_factor", "merged", "model", "source"}

in_chans, num_classes, depths, dims, N_path, bn and layer scale are read from the state_dict. The shift tables and
channel split are not in checkpoints (they are regenerated from seed 123), and the big kernels and N_rep cannot be
recovered from the weights, so they come from the flags; they must match the training run. The small kernel and
ceil(B/k) per stage are checked against the LoRAs weight shapes (with --ghost-ratio), and every tensor name and
shape is checked against the model the options describe. N_rep cannot be checked: the default 4 is main.py's.
"""
import argparse
import inspect
import json
import math
import os
import re
import struct
import sys

import numpy as np
import torch

PRESETS = {
    "sw-tiny": dict(depths=[3, 3, 18, 3], dims=[80, 160, 320, 640]),
    "sw-small": dict(depths=[3, 3, 27, 3], dims=[96, 192, 384, 768]),
    "sw-base": dict(depths=[3, 3, 27, 3], dims=[128, 256, 512, 1024]),
    "sw-large": dict(depths=[3, 3, 27, 3], dims=[192, 384, 768, 1536]),
}
DEFAULT_KERNELS = [51, 49, 47, 13, 3]


class ExportError(Exception):
    pass


# ----------------------------------------------------------------------------------------------------------------
# loading

def load_checkpoint(path, unsafe=False):
    """The state_dict inside a torch.save file, as {name: tensor}."""
    kwargs = {"map_location": "cpu"}
    if "weights_only" in inspect.signature(torch.load).parameters:
        kwargs["weights_only"] = not unsafe
        if not unsafe and hasattr(torch.serialization, "add_safe_globals"):
            torch.serialization.add_safe_globals([argparse.Namespace])  # the official 'args' entry
    try:
        obj = torch.load(path, **kwargs)
    except Exception as err:
        if kwargs.get("weights_only"):
            raise ExportError(f"torch.load(weights_only=True) refused {path}: {str(err).splitlines()[0]}\n"
                              "If you trust this file, rerun with --unsafe-load.") from err
        raise
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        state = obj["model"]
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        state = obj["state_dict"]
    elif isinstance(obj, dict) and obj and all(torch.is_tensor(v) for v in obj.values()):
        state = obj
    else:
        keys = list(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
        raise ExportError(f"no state_dict found in {path} (top level: {keys})")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


# ----------------------------------------------------------------------------------------------------------------
# options

def rep_count(channels, ghost_ratio):
    """Processed ('rep') channels of an SW layer: 2 * floor(floor(C * (1 - ghost_ratio)) / 2)."""
    return int(channels * (1 - ghost_ratio)) // 2 * 2


def normalise(state):
    """Drop num_batches_tracked; rename merged LoRA weights. Returns (state, merged)."""
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    merged_keys = [k for k in state if ".large_kernel.LoRA." in k]
    if not merged_keys:
        return state, False
    if any(".large_kernel.LoRAs." in k for k in state):
        raise ExportError("checkpoint mixes merged (LoRA) and unmerged (LoRAs.q) SW layers")
    bad = [k for k in merged_keys if not k.endswith(".LoRA.weight")]
    if bad:
        raise ExportError(f"unexpected merged-conv tensors (the SW small conv has no bias): {bad[:3]}")
    return {k.replace(".large_kernel.LoRA.weight", ".large_kernel.LoRAs.0.weight"): v
            for k, v in state.items()}, True


def infer_options(state, kernel_size, n_rep, ghost_ratio, preset=None):
    def shape(name):
        if name not in state:
            raise ExportError(f"tensor '{name}' missing: not a ShiftWise_v2 checkpoint?")
        return tuple(state[name].shape)

    in_chans = shape("downsample_layers.0.0.weight")[1]
    num_classes = shape("head.weight")[0]
    depths, dims = [], []
    for i in range(4):
        blocks = sorted({int(m.group(1)) for k in state for m in [re.match(rf"stages\.{i}\.(\d+)\.", k)] if m})
        if blocks != list(range(len(blocks))):
            raise ExportError(f"stage {i} block indices are not 0..n-1: {blocks}")
        depths.append(len(blocks))
        dim = shape("downsample_layers.0.3.weight" if i == 0 else f"downsample_layers.{i}.0.weight")[0]
        if blocks and shape(f"stages.{i}.0.norm.weight")[0] != dim:
            raise ExportError(f"stage {i}: norm.weight size differs from the downsample conv's {dim} outputs")
        dims.append(dim)
    lora = re.compile(r"stages\.(\d+)\.(\d+)\.large_kernel\.LoRAs\.(\d+)\.weight$")
    paths = {}
    for k in state:
        m = lora.match(k)
        if m:
            paths.setdefault((int(m.group(1)), int(m.group(2))), set()).add(int(m.group(3)))
    counts = {len(v) for v in paths.values()}
    if len(counts) != 1:
        raise ExportError(f"blocks disagree on the number of LoRAs paths: {sorted(counts)}")
    n_path = counts.pop()
    bn = any(k.endswith(".large_kernel.bn_lora1.weight") for k in state)
    layer_scale = any(re.match(r"stages\.\d+\.\d+\.gamma$", k) for k in state)

    if len(kernel_size) != 5:
        raise ExportError("--kernel-size needs 5 values: the four stage big kernels, then the small kernel")
    k = kernel_size[-1]
    for i in range(4):
        if not depths[i]:
            continue
        t, one, kh, kw = shape(f"stages.{i}.0.large_kernel.LoRAs.0.weight")
        if kh != k or kw != k or one != 1:
            raise ExportError(f"stage {i}: LoRAs weight is {(t, one, kh, kw)}, but --kernel-size says small kernel {k}")
        reps = rep_count(dims[i], ghost_ratio)
        if reps == 0 or t % reps:
            raise ExportError(f"stage {i}: {t} sub-kernels is not a multiple of R={reps} (C={dims[i]}, "
                              f"ghost_ratio {ghost_ratio}): wrong --ghost-ratio?")
        n = t // reps
        if math.ceil(kernel_size[i] / k) != n:
            raise ExportError(f"stage {i}: the weights have n={n} sub-kernels per channel, so the big kernel is in "
                              f"[{(n - 1) * k + 1}, {n * k}], but --kernel-size gives {kernel_size[i]}")
    if preset is not None:
        want = PRESETS[preset]
        if want["depths"] != depths or want["dims"] != dims:
            raise ExportError(f"--model {preset} expects depths {want['depths']} dims {want['dims']}, the checkpoint "
                              f"has depths {depths} dims {dims}")
    else:
        preset = next((name for name, p in PRESETS.items() if p["depths"] == depths and p["dims"] == dims), None)
    return {
        "in_chans": in_chans, "num_classes": num_classes, "depths": depths, "dims": dims,
        "kernel_size": list(kernel_size), "ghost_ratio": ghost_ratio, "N_path": n_path, "N_rep": n_rep, "bn": bn,
        "layer_scale_init_value": 1.0 if layer_scale else 0.0, "width_factor": 1.0, "model": preset,
    }


def expected_shapes(opts):
    """{name: shape} of the (unmerged-layout) state_dict that opts describes, num_batches_tracked excluded."""
    out = {}

    def bn(prefix, c):
        for s in ("weight", "bias", "running_mean", "running_var"):
            out[f"{prefix}.{s}"] = (c,)

    d, k = opts["dims"], opts["kernel_size"][-1]
    out["downsample_layers.0.0.weight"] = (d[0] // 2, opts["in_chans"], 3, 3)
    out["downsample_layers.0.0.bias"] = (d[0] // 2,)
    out["downsample_layers.0.1.weight"] = out["downsample_layers.0.1.bias"] = (d[0] // 2,)
    out["downsample_layers.0.3.weight"] = (d[0], d[0] // 2, 3, 3)
    out["downsample_layers.0.3.bias"] = out["downsample_layers.0.4.weight"] = out["downsample_layers.0.4.bias"] = (d[0],)
    for i in range(1, 4):
        out[f"downsample_layers.{i}.0.weight"] = (d[i], d[i - 1], 3, 3)
        out[f"downsample_layers.{i}.0.bias"] = out[f"downsample_layers.{i}.1.weight"] = (d[i],)
        out[f"downsample_layers.{i}.1.bias"] = (d[i],)
    for i in range(4):
        c = d[i]
        reps, n = rep_count(c, opts["ghost_ratio"]), math.ceil(opts["kernel_size"][i] / k)
        for j in range(opts["depths"][i]):
            p = f"stages.{i}.{j}."
            for q in range(opts["N_path"]):
                out[f"{p}large_kernel.LoRAs.{q}.weight"] = (reps * n, 1, k, k)
            if opts["bn"]:
                for name in ("bn_lora1", "bn_lora2", "bn_small"):
                    bn(f"{p}large_kernel.{name}", reps)
            bn(p + "norm", c)
            out[p + "se.down.weight"], out[p + "se.down.bias"] = (c // 4, c, 1, 1), (c // 4,)
            out[p + "se.up.weight"], out[p + "se.up.bias"] = (c, c // 4, 1, 1), (c,)
            out[p + "pwconv1.1.weight"], out[p + "pwconv1.1.bias"] = (4 * c, c), (4 * c,)
            out[p + "act.1.gamma"] = out[p + "act.1.beta"] = (1, 1, 1, 4 * c)
            out[p + "pwconv2.0.weight"] = (c, 4 * c)
            bn(p + "pwconv2.2", c)
            if opts["layer_scale_init_value"] > 0:
                out[p + "gamma"] = (c,)
    out["norm.weight"] = out["norm.bias"] = (d[3],)
    out["head.weight"], out["head.bias"] = (opts["num_classes"], d[3]), (opts["num_classes"],)
    return out


def check_shapes(state, opts):
    want = expected_shapes(opts)
    missing = sorted(set(want) - set(state))
    extra = sorted(set(state) - set(want))
    wrong = [f"{k} {tuple(state[k].shape)} (expected {want[k]})" for k in sorted(set(want) & set(state))
             if tuple(state[k].shape) != want[k]]
    if missing or extra or wrong:
        lines = [f"{len(missing)} missing: {missing[:5]}"] if missing else []
        lines += [f"{len(extra)} unexpected: {extra[:5]}"] if extra else []
        lines += [f"{len(wrong)} with the wrong shape: {wrong[:5]}"] if wrong else []
        raise ExportError("the checkpoint does not match the inferred model:\n  " + "\n  ".join(lines))


# ----------------------------------------------------------------------------------------------------------------
# writing

def write_safetensors(path, arrays):
    """Hand-written safetensors: u64 LE header length, JSON header sorted by name (padded with spaces to a
    multiple of 8), then the raw little-endian float32 data in the same order. Atomic."""
    header, offset = {}, 0
    names = sorted(arrays)
    for name in names:
        size = arrays[name].size * 4
        header[name] = {"dtype": "F32", "shape": list(arrays[name].shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in names:
            f.write(np.ascontiguousarray(arrays[name], dtype="<f4").tobytes())
    os.replace(tmp, path)


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in obj.items()) + "\n}\n")
    os.replace(tmp, path)


def export(checkpoint, out_dir, model=None, kernel_size=None, n_rep=4, ghost_ratio=0.23, unsafe_load=False,
           quiet=False):
    """Export one checkpoint; returns the model.json dict."""
    kernel_size = list(kernel_size or DEFAULT_KERNELS)
    state, merged = normalise(load_checkpoint(checkpoint, unsafe_load))
    for k, v in state.items():
        if not torch.is_tensor(v) or not v.is_floating_point():
            raise ExportError(f"'{k}' is not a floating-point tensor ({type(v).__name__})")
    opts = infer_options(state, kernel_size, n_rep, ghost_ratio, model)
    check_shapes(state, opts)
    opts["merged"] = merged
    opts["source"] = os.path.basename(checkpoint)
    arrays = {k: v.detach().cpu().float().numpy() for k, v in state.items()}
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, "weights.safetensors"), arrays)
    write_json(os.path.join(out_dir, "model.json"), opts)
    if not quiet:
        lora = [a for k, a in arrays.items() if ".LoRAs." in k]
        zero = sum(int((np.abs(a).reshape(a.shape[0], -1).sum(1) == 0).sum()) for a in lora)
        subs = sum(a.shape[0] for a in lora)
        print(f"{checkpoint}: {len(arrays)} tensors, {sum(a.size for a in arrays.values()):,} values"
              f"{' (merged SW convs)' if merged else ''}; {zero}/{subs} SW sub-kernels are all zero")
        print(json.dumps(opts))
        print("wrote", os.path.join(out_dir, "weights.safetensors"), "and", os.path.join(out_dir, "model.json"))
    return opts


# ----------------------------------------------------------------------------------------------------------------
# self-test

def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    assert list(header) == sorted(header) and (8 + length) % 8 == 0
    out, end = {}, 0
    for name, info in header.items():
        assert info["dtype"] == "F32"
        lo, hi = info["data_offsets"]
        assert lo == end
        end = hi
        out[name] = np.frombuffer(raw[8 + length + lo:8 + length + hi], dtype="<f4").reshape(info["shape"])
    assert 8 + length + end == len(raw)
    return out


def self_test():
    """Round trip through sw_torch: checkpoint -> export -> model.json + safetensors -> identical outputs."""
    import tempfile
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
    import sw_torch

    def randomised(**kw):
        model = sw_torch.ShiftWiseV2(**kw)
        torch.manual_seed(5)
        with torch.no_grad():
            for name, t in model.state_dict().items():
                if t.is_floating_point():
                    t.copy_(torch.rand_like(t) + 0.5 if "running_var" in name else torch.randn_like(t) * 0.2)
        return model.eval()

    def reload(out_dir):
        opts = json.load(open(os.path.join(out_dir, "model.json")))
        model = sw_torch.build_from_options(opts).eval()
        arrays = read_safetensors(os.path.join(out_dir, "weights.safetensors"))
        missing, extra = model.load_state_dict({k: torch.from_numpy(a.copy()) for k, a in arrays.items()},
                                               strict=False)
        assert not extra and all(k.endswith("num_batches_tracked") for k in missing), (missing, extra)
        return opts, model

    small = dict(in_chans=3, num_classes=7, depths=[1, 2, 1, 1], dims=[16, 32, 48, 64],
                 kernel_size=[13, 11, 7, 5, 3], N_path=2, N_rep=3)
    x = torch.randn(2, 3, 64, 64)
    with tempfile.TemporaryDirectory() as tmp:
        ck = os.path.join(tmp, "ck.pth")

        # 1. official layout, unmerged
        model = randomised(**small)
        torch.save({"model": model.state_dict(), "epoch": 299}, ck)
        export(ck, tmp, kernel_size=small["kernel_size"], n_rep=3, quiet=True)
        opts, back = reload(tmp)
        assert (opts["depths"], opts["dims"], opts["N_path"], opts["N_rep"], opts["num_classes"], opts["merged"],
                opts["bn"], opts["model"]) == (small["depths"], small["dims"], 2, 3, 7, False, True, None), opts
        with torch.no_grad():
            assert torch.equal(model(x), back(x))
        print("unmerged {'model': ...} checkpoint: exported, reloaded, identical logits")

        # 2. merged, bare state_dict, DDP prefix
        model.reparameterize()
        torch.save({"module." + k: v for k, v in model.state_dict().items()}, ck)
        export(ck, tmp, kernel_size=small["kernel_size"], n_rep=3, quiet=True)
        opts, back = reload(tmp)
        assert opts["merged"] and opts["N_path"] == 1
        with torch.no_grad():
            assert torch.equal(model(x), back(x))
        print("merged bare state_dict with 'module.' prefix: N_path 1, merged true, identical logits")

        # 3. no SW BNs, no layer scale
        model = randomised(**dict(small, bn=False, layer_scale_init_value=0))
        torch.save({"model": model.state_dict()}, ck)
        export(ck, tmp, kernel_size=small["kernel_size"], n_rep=3, quiet=True)
        opts, back = reload(tmp)
        assert not opts["bn"] and opts["layer_scale_init_value"] == 0
        with torch.no_grad():
            assert torch.equal(model(x), back(x))
        print("bn=False, no layer scale: identical logits")

        # 4. inconsistent flags are refused
        for kwargs, what in [(dict(), "default kernels on a 13/11/7/5 model"),
                             (dict(kernel_size=[13, 11, 7, 5, 5]), "wrong small kernel"),
                             (dict(kernel_size=small["kernel_size"], ghost_ratio=0.5), "wrong ghost ratio"),
                             (dict(kernel_size=small["kernel_size"], model="sw-tiny"), "wrong preset")]:
            try:
                export(ck, tmp, quiet=True, **kwargs)
            except ExportError:
                continue
            raise AssertionError("accepted: " + what)
        print("inconsistent --kernel-size / --ghost-ratio / --model refused")

        # 5. an official checkpoint also pickles the training args (argparse.Namespace)
        torch.save({"model": model.state_dict(), "args": argparse.Namespace(lr=4e-3, model="ShiftWise_v2_tiny")}, ck)
        try:
            export(ck, tmp, kernel_size=small["kernel_size"], n_rep=3, quiet=True)
            print("checkpoint with an argparse.Namespace: loaded with weights_only=True")
        except ExportError as err:
            assert "--unsafe-load" in str(err)
            export(ck, tmp, kernel_size=small["kernel_size"], n_rep=3, unsafe_load=True, quiet=True)
            print("checkpoint with an argparse.Namespace: refused by weights_only=True on torch "
                  f"{torch.__version__} (with the --unsafe-load hint), accepted with --unsafe-load")

    # 6. expected_shapes agrees with sw_torch's state_dict for the sw-tiny preset
    tiny = sw_torch.ShiftWiseV2()
    have = {k: tuple(v.shape) for k, v in tiny.state_dict().items() if not k.endswith("num_batches_tracked")}
    opts = infer_options(tiny.state_dict(), DEFAULT_KERNELS, 4, 0.23, "sw-tiny")
    assert expected_shapes(opts) == have and opts["N_path"] == 2
    print(f"sw-tiny: inferred options and expected tensor shapes match sw_torch ({len(have)} tensors)")
    print("self-test passed")


def main(argv=None):
    ap = argparse.ArgumentParser(description="Export a ShiftWise_v2 checkpoint for ShiftWise.Compiler.")
    ap.add_argument("checkpoint", nargs="?", help="torch.save file ({'model': state_dict} or a bare state_dict)")
    ap.add_argument("out_dir", nargs="?", help="output folder (created if needed)")
    ap.add_argument("--model", choices=sorted(PRESETS), help="check depths/dims against this preset")
    ap.add_argument("--kernel-size", default=",".join(map(str, DEFAULT_KERNELS)),
                    help="stage big kernels then the small kernel (default %(default)s)")
    ap.add_argument("--n-rep", type=int, default=4, help="N_rep used in training (default %(default)s)")
    ap.add_argument("--ghost-ratio", type=float, default=0.23, help="default %(default)s")
    ap.add_argument("--unsafe-load", action="store_true", help="full unpickling (trusted files only)")
    ap.add_argument("--self-test", action="store_true", help="round-trip test with tools/fixtures/sw_torch.py")
    args = ap.parse_args(argv)
    if args.self_test:
        self_test()
        return 0
    if not args.checkpoint or not args.out_dir:
        ap.error("CHECKPOINT and OUT_DIR are required")
    try:
        kernels = [int(v) for v in args.kernel_size.split(",")]
        export(args.checkpoint, args.out_dir, args.model, kernels, args.n_rep, args.ghost_ratio, args.unsafe_load)
    except (ExportError, ValueError) as err:
        print("error:", err, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
