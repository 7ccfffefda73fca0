#!/usr/bin/python3
"""Writes tests/Frontend.Tests/Fixtures/sw_v2_golden/: a small ShiftWise_v2 with random weights and its logits.

Model (tools/sw_torch.py): in_chans 3, 10 classes, depths [1,1,2,1], dims [16,32,48,64], kernel_size
[13,11,7,5,3], ghost_ratio 0.23, N_path 2, N_rep 4, SW BNs on, layer scale present. Input 2 x 3 x 64 x 64, so
the stages run at 16, 8, 4 and 2 pixels: every big kernel is wider than its feature map (border handling matters).

Weights (torch.manual_seed(0), drawn module by module in named_modules() order after construction):
  * Conv2d / Linear weights ~ N(0, 1/fan_in) (i.e. N(0, 0.2^2) scaled by sqrt(25/fan_in)); for the SW small
    convs fan_in counts every term summed into one shift-add output, k*k * n * N_rep * N_path, so Y_h/Y_v stay O(1).
  * biases ~ N(0, 0.1^2); BN weight U(0.5,1.5), bias N(0,0.1^2), running_mean N(0,0.2^2), running_var U(0.5,2);
    LayerNorm weight U(0.5,1.5), bias N(0,0.1^2); GRN gamma, beta ~ N(0,0.3^2); layer scale gamma U(0.5,1.5).
  * In each LoRAs.q weight, exactly round(0.3 * R*n) whole k x k sub-kernels are zeroed, chosen independently
    per path (randperm), as sparse training leaves them (SPEC 5.1).
  * Every parameter, buffer and the input are rounded to float32 values; the forward pass then runs in eval mode
    in float64. So weights.safetensors (float32) is exact and logits.npy is the float64 reference.

Files: weights.safetensors (float32, num_batches_tracked omitted), input.npy, logits.npy (2,10), stem.npy
(after downsample_layers.0), stage0.npy (after stages.0), all float64, and options.json.

Run from the repository root: /usr/bin/python3 tools/gen_sw_v2_golden.py
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sw_torch  # noqa: E402

OPTIONS = {
    "in_chans": 3, "num_classes": 10, "depths": [1, 1, 2, 1], "dims": [16, 32, 48, 64],
    "kernel_size": [13, 11, 7, 5, 3], "ghost_ratio": 0.23, "N_path": 2, "N_rep": 4, "bn": True,
    "layer_scale_init_value": 1.0, "width_factor": 1.0,
}
SPARSITY = 0.3
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "Frontend.Tests", "Fixtures",
                   "sw_v2_golden")


def count_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def randomise(model):
    """Non-trivial random weights (see module docstring); returns {LoRAs weight name: zeroed sub-kernels}."""
    torch.manual_seed(0)
    zeroed = {}
    sw_fan_in = {}
    for name, m in model.named_modules():
        if isinstance(m, sw_torch.ShiftWiseConv):
            k = m.small_kernel
            for q in range(len(m.LoRAs)):
                sw_fan_in[f"{name}.LoRAs.{q}"] = k * k * m.nk * m.n_rep * len(m.LoRAs)
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = sw_fan_in.get(name, m.weight[0].numel())
            m.weight.normal_(0, fan_in ** -0.5)
            if m.bias is not None:
                m.bias.normal_(0, 0.1)
            if name in sw_fan_in:  # zero whole k x k sub-kernels, independently per path
                T = m.weight.shape[0]
                off = torch.randperm(T)[:round(SPARSITY * T)]
                m.weight[off] = 0
                zeroed[name + ".weight"] = len(off)
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0, 0.1)
            m.running_mean.normal_(0, 0.2)
            m.running_var.uniform_(0.5, 2.0)
        elif isinstance(m, (nn.LayerNorm, sw_torch.LayerNormChannelsFirst)):
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0, 0.1)
        elif isinstance(m, sw_torch.GRN):
            m.gamma.normal_(0, 0.3)
            m.beta.normal_(0, 0.3)
        elif isinstance(m, sw_torch.Block):
            m.gamma.uniform_(0.5, 1.5)
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            t.copy_(t.float().double())
    return zeroed


def save_npy(path, arr):
    with open(path + ".tmp", "wb") as f:
        np.save(f, arr)
    os.replace(path + ".tmp", path)


def main():
    model = sw_torch.build_from_options(OPTIONS).double().eval()
    zeroed = randomise(model)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64).float().double()

    with torch.no_grad():
        stem = model.downsample_layers[0](x)
        stage0 = model.stages[0](stem)
        logits = model(x)
        feats, h = [], x
        for down, stage in zip(model.downsample_layers, model.stages):
            h = stage(down(h))
            feats.append(h)
        logits32 = model.float()(x.float()).double()
        model.double()

    os.makedirs(OUT, exist_ok=True)
    state = {k: v.detach().cpu().float().numpy() for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    sw_torch.write_safetensors(os.path.join(OUT, "weights.safetensors"), state)
    save_npy(os.path.join(OUT, "input.npy"), x.numpy())
    save_npy(os.path.join(OUT, "logits.npy"), logits.numpy())
    save_npy(os.path.join(OUT, "stem.npy"), stem.numpy())
    save_npy(os.path.join(OUT, "stage0.npy"), stage0.numpy())
    with open(os.path.join(OUT, "options.json.tmp"), "w") as f:
        f.write("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in OPTIONS.items()) + "\n}\n")
    os.replace(os.path.join(OUT, "options.json.tmp"), os.path.join(OUT, "options.json"))

    # reload check: a fresh model loaded from the written files reproduces the logits bit for bit
    fresh = sw_torch.build_from_options(json.load(open(os.path.join(OUT, "options.json")))).double().eval()
    loaded = {k: torch.from_numpy(v.astype(np.float64)) for k, v in
              sw_torch.read_safetensors(os.path.join(OUT, "weights.safetensors")).items()}
    missing, unexpected = fresh.load_state_dict(loaded, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    with torch.no_grad():
        again = fresh(torch.from_numpy(np.load(os.path.join(OUT, "input.npy"))))
    assert torch.equal(again, torch.from_numpy(np.load(os.path.join(OUT, "logits.npy"))))

    print("golden model parameters (trainable):", count_params(model))
    print("state tensors written:", len(state), "values:", sum(v.size for v in state.values()))
    print("zeroed sub-kernels per LoRAs weight:", sorted(set(zeroed.values())), "of R*n =",
          [model.stages[i][0].large_kernel.reps * model.stages[i][0].large_kernel.nk for i in range(4)])
    for i, f in enumerate(feats):
        print(f"stage {i} output {tuple(f.shape)}: mean {f.mean():+.3f} std {f.std():.3f} max|.| {f.abs().max():.3f}")
    print("logits:\n", np.array2string(logits.numpy(), precision=4, max_line_width=140))
    print(f"float32 forward vs float64: max |diff| = {float((logits32 - logits).abs().max()):.3g}")
    print("reload from written files: logits identical")
    total = 0
    for name in sorted(os.listdir(OUT)):
        size = os.path.getsize(os.path.join(OUT, name))
        total += size
        print(f"  {name:22s} {size:9d} bytes")
    print(f"  total {total} bytes")
    assert total < 1.5e6

    tiny = sw_torch.ShiftWiseV2(in_chans=3, num_classes=1000, depths=[3, 3, 18, 3], dims=[80, 160, 320, 640],
                                kernel_size=[51, 49, 47, 13, 3], ghost_ratio=0.23, N_path=2, N_rep=4, bn=True)
    n = count_params(tiny)
    print("sw-tiny preset parameters (trainable):", f"{n:,}", "(SPEC 3.1: 31,790,260)")
    assert n == 31790260


if __name__ == "__main__":
    main()
