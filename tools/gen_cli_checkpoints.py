#!/usr/bin/python3
"""Writes the small checkpoints the CLI tests load: tests/Cli.Tests/Fixtures/{good,wrong_shape,merged}.pth.

A ShiftWise_v2 from tools/sw_torch.py with in_chans 1, 4 classes, depths 1,1,1,1, dims 8,16,16,32, kernel sizes
7,5,5,3,3 (torch.manual_seed(0) weights). good.pth: the official layout {'model': state_dict, 'epoch': 1}.
wrong_shape.pth: the same with one tensor of the wrong shape (stages.1.0.se.down.weight transposed).
merged.pth: a bare state_dict after merge_branches (large_kernel.LoRA.weight, N_path 1).

Rerun from the repository root with Debian's python3 (it has torch): /usr/bin/python3 tools/gen_cli_checkpoints.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sw_torch  # noqa: E402

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "Cli.Tests", "Fixtures")
os.makedirs(out, exist_ok=True)


def model():
    m = sw_torch.ShiftWiseV2(in_chans=1, num_classes=4, depths=(1, 1, 1, 1), dims=(8, 16, 16, 32),
                             kernel_size=(7, 5, 5, 3, 3))
    torch.manual_seed(0)  # after construction: the SW layers reseed the global generator
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return m.eval()


def save(obj, name):
    path = os.path.join(out, name)
    torch.save(obj, path + ".tmp")
    os.replace(path + ".tmp", path)
    print("wrote", os.path.normpath(path), os.path.getsize(path), "bytes")


m = model()
save({"model": m.state_dict(), "epoch": 1}, "good.pth")
sd = m.state_dict()
sd["stages.1.0.se.down.weight"] = sd["stages.1.0.se.down.weight"].transpose(0, 1).contiguous()
save({"model": sd, "epoch": 1}, "wrong_shape.pth")
m.reparameterize()
save(m.state_dict(), "merged.pth")
