#!/usr/bin/env python3
"""Writes the tiny PyTorch checkpoints (.pth) that tests/Frontend.Tests/PthTests.cs reads.

The files are committed, so the tests need neither Python nor torch; rerun this only to change them:

    /usr/bin/python3 tools/gen_pth_fixtures.py

Needs torch and numpy (Debian's /usr/bin/python3 has torch 1.13; the python3 first on PATH may not). Every
checkpoint that should load gets a folder <stem>.expected/ holding one .npy per state_dict entry, written from
the tensor torch itself loads back, so the C# reader is checked bit for bit against torch. numpy has no
bfloat16, so a bf16 entry is written as float32 (exact: bf16 widens losslessly) under <name>.bf16.npy.

torch.save names the zip's root folder after the file's stem (ckpt_v1.pth -> ckpt_v1/), which the reader must
not assume is "archive/"; the fixtures therefore all have different stems.
"""

import collections
import os
import shutil

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "Frontend.Tests", "Fixtures", "pth")


def path(name):
    return os.path.join(OUT, name)


def save(name, obj, **kwargs):
    torch.save(obj, path(name), **kwargs)
    print("wrote", os.path.relpath(path(name)), os.path.getsize(path(name)), "bytes")


def expect(name, state_dict):
    """Writes the expected values of a state_dict as it reads back through torch.load."""
    folder = path(os.path.splitext(name)[0] + ".expected")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for key, t in state_dict.items():
        t = t.detach().contiguous()
        if t.dtype == torch.bfloat16:
            np.save(os.path.join(folder, key + ".bf16.npy"), t.float().numpy(), allow_pickle=False)
        else:
            np.save(os.path.join(folder, key + ".npy"), t.numpy(), allow_pickle=False)


def bare_state_dict():
    g = torch.Generator().manual_seed(7)
    f32 = torch.randn(2, 3, generator=g)
    f32[0, 1] = float("nan")
    f32[1, 2] = -0.0
    base = torch.arange(12, dtype=torch.float32) * 0.5 - 1  # one storage, three views of it
    return {
        "f32": f32,
        "f64": torch.tensor([0.1, -2.5, 1e300, 5e-324], dtype=torch.float64),
        "i64": torch.tensor([[1, -1], [2**62, -(2**63)]], dtype=torch.int64),
        "i32": torch.tensor([7, -2147483648, 2147483647], dtype=torch.int32),
        "f16": torch.tensor([1.0, 0.5, 65504.0, -0.0, 6e-8], dtype=torch.float16),
        "bf16": torch.tensor([1.5, -3.0, 1e38], dtype=torch.bfloat16),
        "scalar": torch.tensor(3.25),
        "empty": torch.zeros(0, 3),
        # Non-contiguous: the saved stride is (1, 3), not (4, 1).
        "transposed": (torch.arange(12, dtype=torch.float32).reshape(3, 4) + 100).t(),
        "shared.whole": base,
        # Same storage as shared.whole, starting at element 5 (storage_offset 5).
        "shared.offset": base[5:9],
        # Same storage again, offset 1 and strided (4, 2): rows of a 3x4 view, every other column.
        "shared.strided": base.view(3, 4)[:, 1::2],
    }


def main():
    os.makedirs(OUT, exist_ok=True)

    sd = bare_state_dict()
    save("bare_sd.pth", sd)
    expect("bare_sd.pth", torch.load(path("bare_sd.pth")))

    # The official layout: {'model': state_dict, ...}; the optimizer state adds int keys, floats, tuples, lists
    # and None, which the reader must parse (all whitelisted) even though it only returns the model.
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(lin.parameters(), lr=0.01)
    lin(torch.ones(1, 3)).sum().backward()
    opt.step()
    save("ckpt_v1.pth", {"model": lin.state_dict(), "optimizer": opt.state_dict(), "epoch": 3})
    expect("ckpt_v1.pth", torch.load(path("ckpt_v1.pth"))["model"])

    # Lightning-style {'state_dict': ...}, written with pickle protocol 4 (FRAME, MEMOIZE, STACK_GLOBAL).
    save("lightning_p4.pth", {"state_dict": {"w": torch.tensor([1.0, 2.0])}, "global_step": 10},
         pickle_protocol=4)
    expect("lightning_p4.pth", torch.load(path("lightning_p4.pth"))["state_dict"])

    # A module state_dict: an OrderedDict with a _metadata attribute (set by BUILD) and BatchNorm's
    # num_batches_tracked (an int64 scalar).
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 2), torch.nn.BatchNorm2d(2))
    net.train()
    net(torch.randn(2, 1, 3, 3))
    save("bn_module.pth", net.state_dict())
    expect("bn_module.pth", torch.load(path("bn_module.pth")))

    # Must be rejected: a truncated copy of a valid file.
    with open(path("bare_sd.pth"), "rb") as f:
        data = f.read()
    with open(path("truncated.pth"), "wb") as f:
        f.write(data[: len(data) // 2])
    print("wrote", os.path.relpath(path("truncated.pth")))

    # Must be rejected, and never run: an object whose reduce names os.getcwd (pickled as 'posix getcwd' on
    # Linux). Pickling only records the name; nothing is called here or when the reader rejects it.
    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    save("evil_global.pth", {"x": Evil()})

    # Must be rejected with a pointer to tools/export_pytorch.py: a real-looking checkpoint whose extra entry
    # (argparse.Namespace, as many training scripts store their args) is outside the whitelist.
    import argparse

    save("ckpt_with_args.pth", {"model": {"w": torch.ones(2)}, "args": argparse.Namespace(lr=0.1)})

    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print("total", total, "bytes")


if __name__ == "__main__":
    main()
