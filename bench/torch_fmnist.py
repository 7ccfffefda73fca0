#!/usr/bin/python3
"""PyTorch CPU reference run: train a small ShiftWise_v2 on Fashion-MNIST from the same JSON config that
`swc train` reads (default samples/fashion-mnist.json), evaluating on the 10k test set after every epoch.

    /usr/bin/python3 bench/torch_fmnist.py [CONFIG] [--threads 2] [--epochs E] [--json OUT]
                                          [--subset N] [--set train.lr=3e-3 --set model.dims=[16,32,64,128] ...]

The model is tools/fixtures/sw_torch.py's ShiftWiseV2 (pure PyTorch, same layer as the C# model). Recipe, exactly:
  * data: the idx.gz files read here (magic numbers checked), x = (pixel/255 - mean) / std, NCHW float32;
    optional random horizontal flip per sample (data.hflip);
  * every epoch: a permutation of the training set from a torch.Generator seeded once with train.seed, batches of
    train.batch in that order, the last partial batch dropped;
  * loss: cross entropy with label smoothing train.label_smoothing;
  * AdamW (betas 0.9/0.999, eps 1e-8, decoupled weight decay train.weight_decay), no decay for parameters with
    ndim <= 1 or a name ending in ".bias";
  * LR per step s (0-based, S = epochs * steps_per_epoch, W = warmup_epochs * steps_per_epoch):
        s <  W: lr * s / W
        s >= W: min_lr + 0.5 * (lr - min_lr) * (1 + cos(pi * (s - W) / (S - W)))
  * evaluation: model.eval(), no grad, batches of train.eval_batch, top-1 accuracy.
Times are wall-clock (time.perf_counter): training (the epoch's steps, no evaluation) and evaluation separately.
--subset N trains on the first N images of each epoch's permutation (exploration only); --set overrides config
keys (JSON values).
"""
import argparse
import gzip
import json
import math
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools", "fixtures"))
import sw_torch  # noqa: E402


# ----------------------------------------------------------------------------------------------------------------
# Data

def read_idx(path, magic, ndim):
    """uint8 array from an idx file (gzip). magic: 2051 (images, 3 dims) or 2049 (labels, 1 dim)."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    got = int.from_bytes(raw[0:4], "big")
    if got != magic:
        raise ValueError(f"{path}: magic {got}, expected {magic}")
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(dims)):
        raise ValueError(f"{path}: {len(body)} data bytes for dims {dims}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def load_split(directory, prefix, mean, std):
    images = read_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), 2051, 3)
    labels = read_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), 2049, 1)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{prefix}: {images.shape[0]} images but {labels.shape[0]} labels")
    x = (images.astype(np.float32) / 255.0 - np.float32(mean)) / np.float32(std)
    return torch.from_numpy(x[:, None].copy()), torch.from_numpy(labels.astype(np.int64))


# ----------------------------------------------------------------------------------------------------------------
# Model, optimiser, schedule

def build_model(m):
    if m.get("kernel_size")[-1] % 2 != 1 or any(b < m["kernel_size"][-1] for b in m["kernel_size"][:4]):
        raise ValueError("kernel_size: the small kernel (last) must be odd and <= every big kernel")
    return sw_torch.ShiftWiseV2(
        in_chans=m["in_chans"], num_classes=m["num_classes"], depths=m["depths"], dims=m["dims"],
        kernel_size=m["kernel_size"], ghost_ratio=m["ghost_ratio"], N_path=m["n_path"], N_rep=m["n_rep"],
        bn=m.get("bn", True), layer_scale_init_value=m.get("layer_scale_init", 1e-6),
        drop_path_rate=m.get("drop_path", 0.0), stem_stride=m.get("stem_stride", 4))


def param_groups(model, weight_decay):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step, total, warmup, lr, min_lr):
    if step < warmup:
        return lr * step / warmup
    t = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * t))


def count_flops(model, image_size, in_chans):
    """Multiply-adds of the convolutions and linear layers for one image (training form: Q unmerged paths),
    as FLOPs = 2 * MACs. Element-wise work (norms, GELU, shift-add gathers) is not counted."""
    macs = [0]

    def conv_hook(mod, inp, out):
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        macs[0] += out.numel() * k

    def lin_hook(mod, inp, out):
        macs[0] += out.numel() * mod.in_features

    hooks = []
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            hooks.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.Linear):
            hooks.append(mod.register_forward_hook(lin_hook))
    was = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, in_chans, image_size, image_size))
    model.train(was)
    for h in hooks:
        h.remove()
    return 2 * macs[0]


# ----------------------------------------------------------------------------------------------------------------

def evaluate(model, x, y, batch):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            correct += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return correct / x.shape[0]


def apply_override(cfg, text):
    key, _, value = text.partition("=")
    node = cfg
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    try:
        node[parts[-1]] = json.loads(value)
    except json.JSONDecodeError:
        node[parts[-1]] = value


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config", nargs="?", default=os.path.join(ROOT, "samples", "fashion-mnist.json"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--json", default=None, help="write the per-epoch numbers here")
    ap.add_argument("--subset", type=int, default=None, help="train on N images per epoch (exploration)")
    ap.add_argument("--set", action="append", default=[], help="override a config key: train.lr=3e-3")
    args = ap.parse_args()

    with open(args.config) as f:
        cfg = json.load(f)
    for o in args.set:
        apply_override(cfg, o)
    if args.epochs is not None:
        cfg["train"]["epochs"] = args.epochs
    m, d, t = cfg["model"], cfg["data"], cfg["train"]
    if t.get("optimizer", "adamw") != "adamw":
        raise ValueError("only adamw is supported")
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    x_train, y_train = load_split(d["dir"], "train", d["mean"], d["std"])
    x_test, y_test = load_split(d["dir"], "t10k", d["mean"], d["std"])
    t_load = time.perf_counter() - t0

    model = build_model(m)
    torch.manual_seed(t["seed"])  # drop path / flips after the model's own (fixed) reseeding
    n_params = sum(p.numel() for p in model.parameters())
    flops = count_flops(model, m["image_size"], m["in_chans"])
    opt = torch.optim.AdamW(param_groups(model, t["weight_decay"]), lr=t["lr"], betas=(0.9, 0.999), eps=1e-8)

    gen = torch.Generator().manual_seed(t["seed"])
    n_train = x_train.shape[0] if args.subset is None else min(args.subset, x_train.shape[0])
    batch, epochs = t["batch"], t["epochs"]
    steps_per_epoch = n_train // batch
    total_steps = epochs * steps_per_epoch
    warmup_steps = int(round(t["warmup_epochs"] * steps_per_epoch))
    ls = t.get("label_smoothing", 0.0)
    hflip = d.get("hflip", False)
    eval_batch = t.get("eval_batch", 1000)

    print(f"torch {torch.__version__}, {args.threads} thread(s), {platform.processor() or platform.machine()}")
    print(f"config {args.config}: stem_stride {m.get('stem_stride', 4)}, depths {m['depths']}, dims {m['dims']}, "
          f"kernels {m['kernel_size']}, layer scale {m.get('layer_scale_init', 1e-6)}")
    print(f"params {n_params:,}, forward {flops / 1e6:.1f} MFLOP/image; data loaded in {t_load:.1f} s; "
          f"{epochs} epochs x {steps_per_epoch} steps of {batch}, lr {t['lr']} -> {t['min_lr']}, "
          f"warmup {t['warmup_epochs']} ep, wd {t['weight_decay']}, ls {ls}, hflip {hflip}")

    def write_json(total, complete):
        if not args.json:
            return
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        out = dict(config=cfg, config_path=os.path.relpath(os.path.abspath(args.config), ROOT),
                   threads=args.threads, torch=torch.__version__, subset=args.subset, params=n_params,
                   forward_flops_per_image=flops, data_load_s=round(t_load, 3), complete=complete,
                   total_s=round(total, 3), final_test_acc=history[-1]["test_acc"], epochs=history)
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
        os.replace(tmp, args.json)

    history = []
    step = 0
    t_run = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(x_train.shape[0], generator=gen)[:n_train]
        loss_sum, t_start = 0.0, time.perf_counter()
        for b in range(steps_per_epoch):
            idx = perm[b * batch:(b + 1) * batch]
            xb, yb = x_train[idx], y_train[idx]
            if hflip:
                flip = torch.rand(batch, generator=gen) < 0.5
                xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            lr = lr_at(step, total_steps, warmup_steps, t["lr"], t["min_lr"])
            for g in opt.param_groups:
                g["lr"] = lr
            loss = F.cross_entropy(model(xb), yb, label_smoothing=ls)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss)
            step += 1
        train_s = time.perf_counter() - t_start
        t_eval = time.perf_counter()
        acc = evaluate(model, x_test, y_test, eval_batch)
        eval_s = time.perf_counter() - t_eval
        rec = dict(epoch=epoch, train_s=round(train_s, 3), eval_s=round(eval_s, 3),
                   images_per_s=round(steps_per_epoch * batch / train_s, 1),
                   train_loss=round(loss_sum / steps_per_epoch, 5), test_acc=acc,
                   elapsed_s=round(time.perf_counter() - t_run, 3))
        history.append(rec)
        print(f"epoch {epoch:3d}  train {train_s:7.1f} s  eval {eval_s:5.1f} s  {rec['images_per_s']:7.1f} img/s  "
              f"loss {rec['train_loss']:.4f}  test acc {100 * acc:6.2f}%", flush=True)
        write_json(rec["elapsed_s"], epoch == epochs)  # after every epoch, so an interrupted run leaves its numbers
    total = time.perf_counter() - t_run
    print(f"total {total:.1f} s (train {sum(h['train_s'] for h in history):.1f} s, "
          f"eval {sum(h['eval_s'] for h in history):.1f} s; data load {t_load:.1f} s not included); "
          f"final test acc {100 * history[-1]['test_acc']:.2f}%")

    write_json(total, True)


if __name__ == "__main__":
    main()
